// The placement feed's patch bodies: our taint added and removed with every other taint kept as
// it was, the condition's strategic merge patch, the annotation's JSON and what counts as a
// material change.
#include "exporters/kube/node_patches.h"

#include <gtest/gtest.h>

#include <chrono>

namespace nodewarden::kube {
namespace {

using nlohmann::json;
using std::chrono::seconds;
using std::chrono::system_clock;

constexpr const char* kKey = "nodewarden.io/noisy-neighbor";

json otherTaints() {
  return json::parse(R"([
    {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    {"key": "nodewarden.io/noisy-neighbor", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
     "timeAdded": "2024-05-01T12:00:00Z"}
  ])");
}

TEST(NodePatchesTest, AddsOurTaintAfterTheOthersKeepingThemExactly) {
  const json taints = otherTaints();
  EXPECT_FALSE(hasTaint(taints, kKey));  // same key, other effect: someone else's
  const json out = taintsWith(taints, kKey, true);
  ASSERT_EQ(out.size(), 4U);
  for (std::size_t i = 0; i < taints.size(); ++i) EXPECT_EQ(out[i], taints[i]) << i;
  EXPECT_EQ(out[3], (json{{"key", kKey}, {"effect", "PreferNoSchedule"}}));
  EXPECT_TRUE(hasTaint(out, kKey));
  EXPECT_EQ(taintsWith(out, kKey, true), out);  // present already: unchanged, no duplicate
}

TEST(NodePatchesTest, RemovesOnlyOurTaint) {
  json taints = otherTaints();
  taints.insert(taints.begin() + 1, json{{"key", kKey}, {"effect", "PreferNoSchedule"}});
  EXPECT_EQ(taintsWith(taints, kKey, false), otherTaints());
  EXPECT_EQ(taintsWith(json(), kKey, false), json::array());  // no spec.taints at all
  EXPECT_EQ(taintsWith(json(), kKey, true).size(), 1U);
}

TEST(NodePatchesTest, TaintPatchCarriesTheResourceVersion) {
  const json patch = taintPatch(json::array(), "4711");
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "4711");
  EXPECT_TRUE(patch["spec"]["taints"].is_array());
}

TEST(NodePatchesTest, ConditionPatchListsOnlyOurCondition) {
  const system_clock::time_point t{seconds(1714564800)};  // 2024-05-01T12:00:00Z
  const json patch = conditionPatch("NoisyNeighbor", {.status = true,
                                                      .message = "cpu: a/b stalled by c/d",
                                                      .heartbeat = t + seconds(5),
                                                      .transition = rfc3339(t)});
  const json& conditions = patch["status"]["conditions"];
  ASSERT_EQ(conditions.size(), 1U);
  EXPECT_EQ(conditions[0]["type"], "NoisyNeighbor");
  EXPECT_EQ(conditions[0]["status"], "True");
  EXPECT_EQ(conditions[0]["reason"], "InterferenceHigh");
  EXPECT_EQ(conditions[0]["message"], "cpu: a/b stalled by c/d");
  EXPECT_EQ(conditions[0]["lastTransitionTime"], "2024-05-01T12:00:00Z");
  EXPECT_EQ(conditions[0]["lastHeartbeatTime"], "2024-05-01T12:00:05Z");
  EXPECT_EQ(patch.size(), 1U);  // status only
}

TEST(NodePatchesTest, AnnotationValueLeavesUnknownFiguresOut) {
  detector::NodeSignals s;
  s.interference_score = 0.123456;
  s.saturation[0] = 0.9;
  s.headroom[0] = 0.1;
  s.pressure[2] = 0.25;
  s.victims = 2;
  s.antagonists = 1;
  const json value = json::parse(annotationValue(s, true, system_clock::time_point{seconds(0)}));
  EXPECT_DOUBLE_EQ(value["interference_score"].get<double>(), 0.123);
  EXPECT_EQ(value["saturation"], (json{{"cpu", 0.9}}));
  EXPECT_EQ(value["headroom"], (json{{"cpu", 0.1}}));
  EXPECT_EQ(value["pressure"], (json{{"io", 0.25}}));
  EXPECT_EQ(value["victims"], 2);
  EXPECT_EQ(value["antagonists"], 1);
  EXPECT_EQ(value["tainted"], true);
  EXPECT_EQ(value["updated"], "1970-01-01T00:00:00Z");
  const json patch = annotationPatch("nodewarden.io/signals", "{}");
  EXPECT_EQ(patch["metadata"]["annotations"]["nodewarden.io/signals"], "{}");
}

TEST(NodePatchesTest, MaterialChanges) {
  detector::NodeSignals a;
  a.interference_score = 0.30;
  a.saturation[1] = 0.50;
  detector::NodeSignals b = a;
  b.interference_score = 0.34;
  b.saturation[1] = 0.54;
  b.summary = "different text";
  EXPECT_FALSE(materiallyChanged(a, b));
  b.interference_score = 0.36;
  EXPECT_TRUE(materiallyChanged(a, b));
  b = a;
  b.saturation[1].reset();
  EXPECT_TRUE(materiallyChanged(a, b));
  b = a;
  b.victims = 1;
  EXPECT_TRUE(materiallyChanged(a, b));
}

}  // namespace
}  // namespace nodewarden::kube
