// Pod label keys checked as the API server checks them, and sanitized into Prometheus / Loki
// label names (for streams) and kube-state-metrics' label_<name> spelling (for metrics).
#include "pipeline/pod_labels.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace nodewarden {
namespace {

TEST(PodLabelKey, KubernetesLabelKeysAreAccepted) {
  for (const std::string& key :
       std::vector<std::string>{"app", "app.kubernetes.io/name", "pod-template-hash", "team_a",
                                "Tier", "a", "batch.kubernetes.io/job-name", "example.com/x.y-z_1",
                                "9to5", std::string(63, 'x'), std::string(253, 'p') + "/name"}) {
    const auto ok = checkPodLabelKey(key);
    EXPECT_TRUE(ok.has_value()) << key << ": " << ok.error();
  }
}

TEST(PodLabelKey, OtherKeysAreRefusedWithTheReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "the name part is empty"},
      {"app/", "the name part is empty"},
      {"/name", "the prefix before '/' is empty"},
      {"a/b/c", "holds more than one '/'"},
      {"-app", "the name part \"-app\" must begin and end with a letter or digit"},
      {"app.", "the name part \"app.\" must begin and end with a letter or digit"},
      {"team name", "the name part \"team name\" may hold only letters, digits, '-', '_' and '.'"},
      {"app:name", "the name part \"app:name\" may hold only letters, digits, '-', '_' and '.'"},
      {std::string(64, 'x'),
       "the name part \"" + std::string(64, 'x') + "\" is longer than 63 characters"},
      {"Example.com/name",
       "the prefix \"Example.com\" is not a DNS subdomain (lower-case letters, digits, '-' and "
       "'.', e.g. app.kubernetes.io)"},
      {"example..com/name",
       "the prefix \"example..com\" is not a DNS subdomain (lower-case letters, digits, '-' and "
       "'.', e.g. app.kubernetes.io)"},
      {"-example.com/name",
       "the prefix \"-example.com\" is not a DNS subdomain (lower-case letters, digits, '-' and "
       "'.', e.g. app.kubernetes.io)"},
      {"ex_ample.com/name",
       "the prefix \"ex_ample.com\" is not a DNS subdomain (lower-case letters, digits, '-' and "
       "'.', e.g. app.kubernetes.io)"},
      {std::string(254, 'p') + "/name", "the prefix is longer than 253 characters"},
  };
  for (const auto& [key, reason] : cases) {
    const auto result = checkPodLabelKey(key);
    ASSERT_FALSE(result.has_value()) << key;
    EXPECT_EQ(result.error(), reason) << key;
  }
}

TEST(SanitizeLabelName, EveryOtherCharacterBecomesAnUnderscore) {
  EXPECT_EQ(sanitizeLabelName("app"), "app");
  EXPECT_EQ(sanitizeLabelName("app.kubernetes.io/name"), "app_kubernetes_io_name");
  EXPECT_EQ(sanitizeLabelName("pod-template-hash"), "pod_template_hash");
  EXPECT_EQ(sanitizeLabelName("Team_A"), "Team_A");
  EXPECT_EQ(sanitizeLabelName("example.com/x.y-z_1"), "example_com_x_y_z_1");
  EXPECT_EQ(sanitizeLabelName("9to5"), "_9to5");         // a name never starts with a digit
  EXPECT_EQ(sanitizeLabelName("caf\xc3\xa9"), "caf__");  // bytes, not characters
  EXPECT_EQ(sanitizeLabelName(""), "_");
}

TEST(PodLabelMetricName, KubeStateMetricsSpelling) {
  EXPECT_EQ(podLabelMetricName("app"), "label_app");
  EXPECT_EQ(podLabelMetricName("app.kubernetes.io/name"), "label_app_kubernetes_io_name");
  EXPECT_EQ(podLabelMetricName("9to5"), "label_9to5");  // the prefix makes it a valid name
  EXPECT_EQ(podLabelMetricName("pod-template-hash"), "label_pod_template_hash");
}

}  // namespace
}  // namespace nodewarden
