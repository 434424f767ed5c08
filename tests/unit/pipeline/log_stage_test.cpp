// The log path's stage seam: chain order, refusal, selectors and the pod labels they see.
#include "pipeline/log_stage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/log_selector.h"
#include "tests/support/map_metadata.h"

namespace nodewarden {
namespace {

// The batcher's place: records what it takes, refuses while full.
class RecordingSink final : public LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    if (full) return false;
    lines.push_back(entry.line);
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !full; }
  std::vector<std::string> lines;
  bool full = false;
};

// Appends its tag to every line; counts flushDue calls and can refuse them.
class TagStage final : public LogStage {
 public:
  explicit TagStage(std::string tag, std::vector<std::string>& flushes)
      : tag_(std::move(tag)), flushes_(flushes) {}
  bool accept(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp) override {
    LogEntry tagged = entry;
    tagged.line += tag_;
    return next_->accept(labels, tagged, cp);
  }
  bool flushDue(Clock::time_point, bool force) override {
    flushes_.push_back(tag_ + (force ? "!" : ""));
    return !refuse_flush;
  }
  bool refuse_flush = false;

 private:
  std::string tag_;
  std::vector<std::string>& flushes_;
};

TEST(LogStageChain, PassesEntriesThroughStagesInOrder) {
  RecordingSink sink;
  std::vector<std::string> flushes;
  std::vector<std::unique_ptr<LogStage>> stages;
  stages.push_back(std::make_unique<TagStage>("-a", flushes));
  stages.push_back(std::make_unique<TagStage>("-b", flushes));
  LogStageChain chain(std::move(stages), sink);
  LogEntry entry;
  entry.line = "x";
  ASSERT_TRUE(chain.head().accept({}, entry, {}));
  EXPECT_EQ(sink.lines, (std::vector<std::string>{"x-a-b"}));
  // Refusal at the end comes back to the reader: the line is not taken.
  sink.full = true;
  EXPECT_FALSE(chain.head().hasRoom());
  EXPECT_FALSE(chain.head().accept({}, entry, {}));
  EXPECT_EQ(sink.lines.size(), 1U);
}

TEST(LogStageChain, FlushesFirstToLastAndStopsAtARefusal) {
  RecordingSink sink;
  std::vector<std::string> flushes;
  std::vector<std::unique_ptr<LogStage>> stages;
  stages.push_back(std::make_unique<TagStage>("a", flushes));
  stages.push_back(std::make_unique<TagStage>("b", flushes));
  auto* first = static_cast<TagStage*>(stages.front().get());
  LogStageChain chain(std::move(stages), sink);
  EXPECT_TRUE(chain.flushDue(LogStage::Clock::now(), true));
  EXPECT_EQ(flushes, (std::vector<std::string>{"a!", "b!"}));
  first->refuse_flush = true;
  flushes.clear();
  EXPECT_FALSE(chain.flushDue(LogStage::Clock::now(), false));
  EXPECT_EQ(flushes, (std::vector<std::string>{"a"}));
}

TEST(LogStageChain, WithoutStagesReadersWriteIntoTheLastSink) {
  RecordingSink sink;
  LogStageChain chain({}, sink);
  EXPECT_EQ(&chain.head(), &sink);
  EXPECT_TRUE(chain.flushDue(LogStage::Clock::now(), false));
}

Labels streamLabels(std::string ns, std::string pod, std::string container, std::string stream) {
  return {{"container", std::move(container)},
          {"namespace", std::move(ns)},
          {"pod", std::move(pod)},
          {"stream", std::move(stream)}};
}

TEST(LogSelector, EveryListedFieldMustMatchAndEmptyMatchesAnything) {
  const Labels labels = streamLabels("etl", "spark-driver", "driver", "stderr");
  LogEntry entry;
  LogStreamResolver resolver(nullptr);
  const LogStreamInfo info = resolver.resolve(labels, entry);
  EXPECT_EQ(info.namespace_name, "etl");
  EXPECT_EQ(info.stream, "stderr");
  LogSelector any;
  EXPECT_TRUE(any.matchesEverything());
  EXPECT_TRUE(any.matches(info));
  LogSelector sel;
  sel.namespaces = {"web", "etl"};
  sel.streams = {"stderr"};
  EXPECT_FALSE(sel.matchesEverything());
  EXPECT_TRUE(sel.matches(info));
  sel.containers = {"executor"};
  EXPECT_FALSE(sel.matches(info));
  // The journal's entries have no namespace: a namespace selector never matches them.
  LogSelector ns_only;
  ns_only.namespaces = {"etl"};
  EXPECT_FALSE(ns_only.matches(resolver.resolve({{"unit", "kubelet.service"}}, entry)));
}

TEST(LogSelector, PodLabelsComeFromTheMetadataByTheEntrysPodUid) {
  testing::MapMetadata metadata;
  PodIdentity pod;
  pod.namespace_name = "etl";
  pod.labels = {{"spark-role", "driver"}, {"team", "data"}};
  metadata.pods["uid-1"] = pod;
  LogStreamResolver resolver(&metadata);
  LogEntry entry;
  entry.metadata = {{"pod_uid", "uid-1"}};
  LogSelector sel;
  sel.pod_labels = {{"spark-role", "driver"}};
  const Labels labels = streamLabels("etl", "p", "c", "stdout");
  EXPECT_TRUE(sel.matches(resolver.resolve(labels, entry)));
  sel.pod_labels["team"] = "web";
  EXPECT_FALSE(sel.matches(resolver.resolve(labels, entry)));
  // A pod the metadata does not know matches no pod-label selector (and is asked again: this
  // source has no generation).
  entry.metadata = {{"pod_uid", "uid-unknown"}};
  sel.pod_labels = {{"spark-role", "driver"}};
  const int asked = metadata.asked;
  EXPECT_FALSE(sel.matches(resolver.resolve(labels, entry)));
  EXPECT_FALSE(sel.matches(resolver.resolve(labels, entry)));
  EXPECT_EQ(metadata.asked, asked + 2);
  metadata.pods["uid-unknown"] = pod;
  EXPECT_TRUE(sel.matches(resolver.resolve(labels, entry)));
}

TEST(StreamMemo, ForgetsWhenTheGenerationMovesOrItIsFull) {
  StreamMemo<int> memo(2);
  EXPECT_EQ(memo.find(1, 0), nullptr);
  memo.put(1, 10);
  ASSERT_NE(memo.find(1, 0), nullptr);
  EXPECT_EQ(*memo.find(1, 0), 10);
  EXPECT_EQ(memo.find(1, 1), nullptr);  // the metadata learnt something: decide again
  memo.put(1, 11);
  memo.put(2, 20);
  memo.put(3, 30);  // full: starts over
  EXPECT_EQ(memo.find(1, 1), nullptr);
  EXPECT_NE(memo.find(3, 1), nullptr);
  // Stream 0 is never memoised.
  EXPECT_EQ(memo.put(0, 5), 5);
  EXPECT_EQ(memo.find(0, 1), nullptr);
}

}  // namespace
}  // namespace nodewarden
