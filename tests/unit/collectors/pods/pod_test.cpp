// The one Pod decoder (collectors/pods/pod.h): what it keeps, what it reports as a field problem,
// when it rejects an item, and the owner rule both sources share.
#include "collectors/pods/pod.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string_view>

namespace nodewarden::pods {
namespace {

using nlohmann::json;

std::expected<PodInfo, PodRejection> decode(std::string_view text, PodFieldProblems& problems) {
  return decodePod(json::parse(text), problems);
}

TEST(PodDecoder, ReadsTheModelWithRuntimeAndResourceVersion) {
  PodFieldProblems problems;
  const auto pod = decode(R"({"metadata":{"uid":"u","name":"n","namespace":"ns",
      "resourceVersion":"42","labels":{"app":"web"}},
      "spec":{"nodeName":"worker-1"},
      "status":{"phase":"Running","qosClass":"Burstable","startTime":"2024-03-01T10:00:00Z",
        "initContainerStatuses":[{"name":"init","containerID":"cri-o://abc","restartCount":0,
          "state":{"terminated":{"exitCode":0,"reason":"Completed"}}}],
        "containerStatuses":[{"name":"app","containerID":"def","image":"img","restartCount":2,
          "state":{"running":{"startedAt":"2024-03-01T10:00:05Z"}},
          "lastState":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}})",
                          problems);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(problems.count, 0U) << problems.first;
  EXPECT_EQ(pod->resource_version, "42");
  EXPECT_EQ(pod->node_name, "worker-1");
  EXPECT_EQ(pod->phase, PodPhase::kRunning);
  EXPECT_EQ(pod->qos_class, QosClass::kBurstable);
  EXPECT_EQ(pod->start_time, parseRfc3339("2024-03-01T10:00:00Z"));
  ASSERT_EQ(pod->init_containers.size(), 1U);
  EXPECT_EQ(pod->init_containers[0].runtime, "cri-o");
  EXPECT_EQ(pod->init_containers[0].container_id, "abc");
  ASSERT_EQ(pod->containers.size(), 1U);
  EXPECT_EQ(pod->containers[0].runtime, "");  // no scheme written
  EXPECT_EQ(pod->containers[0].container_id, "def");
  EXPECT_EQ(pod->containers[0].state.kind, ContainerStateKind::kRunning);
  EXPECT_EQ(pod->containers[0].last_state.signal, 9);  // 137 = 128 + SIGKILL, not reported
  EXPECT_EQ(findContainer(*pod, "abc"), &pod->init_containers[0]);
  EXPECT_EQ(findContainer(*pod, "def"), &pod->containers[0]);
  EXPECT_EQ(findContainer(*pod, "nope"), nullptr);
  const PodIdentity id = podIdentity(*pod);
  EXPECT_EQ(id.namespace_name, "ns");
  EXPECT_EQ(id.pod_name, "n");
  EXPECT_EQ(id.qos_class, "Burstable");
  EXPECT_EQ(id.labels.at("app"), "web");
}

TEST(PodDecoder, OnlyTheControllerIsTheOwner) {
  PodFieldProblems problems;
  const auto controlled = decode(R"({"metadata":{"uid":"u","name":"n","namespace":"ns",
      "ownerReferences":[{"kind":"ConfigMap","name":"c"},
                         {"kind":"StatefulSet","name":"db","controller":true}]}})",
                                 problems);
  ASSERT_TRUE(controlled.has_value());
  EXPECT_EQ(controlled->owner, (OwnerRef{"StatefulSet", "db"}));
  const auto uncontrolled = decode(R"({"metadata":{"uid":"u","name":"n","namespace":"ns",
      "ownerReferences":[{"kind":"ConfigMap","name":"c","controller":false}]}})",
                                   problems);
  ASSERT_TRUE(uncontrolled.has_value());
  EXPECT_EQ(uncontrolled->owner, OwnerRef{});
  EXPECT_EQ(problems.count, 0U);
}

TEST(PodDecoder, BadFieldsAreLeftEmptyAndReportedWithTheirKind) {
  PodFieldProblems problems;
  const auto pod = decode(R"({"metadata":{"uid":"u","name":"n","namespace":"ns",
      "labels":{"a":"1","b":2},"ownerReferences":[7]},
      "status":{"startTime":"yesterday","containerStatuses":[{"restartCount":1},"x",
        {"name":"ok","restartCount":99999999999}]}})",
                          problems);
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->labels.size(), 1U);
  EXPECT_EQ(pod->start_time, std::nullopt);
  ASSERT_EQ(pod->containers.size(), 1U);  // the nameless one and the string are left out
  EXPECT_EQ(pod->containers[0].restart_count, 0);
  // label b, the ownerReference, startTime, the nameless status, the string, restartCount
  EXPECT_EQ(problems.count, 6U);
  EXPECT_EQ(problems.first, "label b is not a string");
  EXPECT_EQ(problems.first_kind, PodFieldProblem::kBadValue);

  PodFieldProblems nameless;
  ASSERT_TRUE(decode(R"({"metadata":{"uid":"u","name":"n","namespace":"ns"},
      "status":{"containerStatuses":[{"image":"i"}]}})",
                     nameless)
                  .has_value());
  EXPECT_EQ(nameless.count, 1U);
  EXPECT_EQ(nameless.first_kind, PodFieldProblem::kMissingName);
}

TEST(PodDecoder, RejectsOnlyWhatIsNoPod) {
  PodFieldProblems problems;
  EXPECT_EQ(decode("[]", problems).error().kind, PodRejection::Kind::kNotObject);
  EXPECT_EQ(decode("{}", problems).error().kind, PodRejection::Kind::kMissingField);
  EXPECT_EQ(decode(R"({"metadata":[]})", problems).error().kind, PodRejection::Kind::kBadValue);
  EXPECT_EQ(decode(R"({"metadata":{"name":"n","namespace":"ns"}})", problems).error().kind,
            PodRejection::Kind::kMissingField);
  EXPECT_EQ(decode(R"({"metadata":{"uid":7,"name":"n","namespace":"ns"}})", problems).error().kind,
            PodRejection::Kind::kBadValue);
  EXPECT_EQ(problems.count, 0U);  // a rejected item adds no field problems
}

}  // namespace
}  // namespace nodewarden::pods
