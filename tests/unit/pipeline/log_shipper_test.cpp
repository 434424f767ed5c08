// LogShipper: errors are counted under the exporter's name, and a batch spooled as its body is
// split with the decoder the shipper is given (or dropped, counted, without one). Each test waits
// for the shipper's on_batch_done event: it fires once the batch left the spool, after every error
// it caused was reported.
//
// What a reader gets wrong: the file exporter is used as it is (not a stand-in) for the error
// names, since the defect was its errors being counted as component "loki".
#include "pipeline/log_shipper.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "exporters/file/file_log_exporter.h"
#include "exporters/loki/loki_push_body.h"
#include "pipeline/self_metrics.h"
#include "tests/support/temp_dir.h"

namespace nodewarden {
namespace {

// Every TempDir here is named after this test file.
class TempDir : public test_support::TempDir {
 public:
  TempDir() : test_support::TempDir("nodewarden-log-shipper") {}
};

LogBatch fourLines() {
  LogBatch batch;
  LogBatch::Stream s{{{"app", "web"}, {"namespace", "default"}}, {}};
  for (int n = 0; n < 4; ++n) {
    s.entries.push_back(LogEntry{1'700'000'000'000'000'000 + n, "line " + std::to_string(n), {}});
    batch.bytes += s.entries.back().line.size();
  }
  batch.lines = 4;
  batch.streams.push_back(std::move(s));
  LogCheckpoint cp;
  cp.source = "/var/log/pods/default_web_uid/app/0.log";
  cp.offset = 400;
  batch.checkpoints.push_back(cp);
  return batch;
}

// The batch as the batcher spools it for Loki's protobuf API: its entries only in the body.
LogBatch withLokiBody(LogBatch batch) {
  LokiPushWriter().body(batch, batch.encoded_body);
  batch.streams.clear();
  return batch;
}

// Answers from a script (then kOk) and keeps what it was sent, entries expanded.
class ScriptedExporter final : public LogExporter {
 public:
  explicit ScriptedExporter(std::vector<SendResult> script) : script_(std::move(script)) {}
  [[nodiscard]] std::string_view name() const override { return "scripted"; }
  SendResult send(const LogBatch& batch) override {
    std::lock_guard lock(mu_);
    LogBatch copy = batch;
    EXPECT_TRUE(expandLokiBody(copy).has_value());
    sent_.push_back(std::move(copy));
    if (next_ < script_.size()) return script_[next_++];
    return {SendStatus::kOk, 204, {}, {}};
  }
  std::vector<LogBatch> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }

 private:
  std::mutex mu_;
  std::vector<SendResult> script_;
  std::size_t next_ = 0;
  std::vector<LogBatch> sent_;
};

class LogShipperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SpoolOptions so;
    so.dir = dir_.path() / "spool";
    so.fsync = false;
    auto spool = Spool::open(so, errors_);
    ASSERT_TRUE(spool.has_value()) << spool.error();
    spool_ = std::move(*spool);
  }

  // Ships one batch through exporter and returns once it has left the spool.
  void shipOne(const LogBatch& batch, LogExporter& exporter, LogShipperOptions options = {}) {
    ASSERT_TRUE(spool_->append(batch).has_value());
    std::promise<void> done;
    auto left = done.get_future();
    options.initial_backoff = std::chrono::milliseconds(1);
    options.on_batch_done = [&done] { done.set_value(); };
    LogShipper shipper(options, *spool_, exporter, registry_, errors_);
    shipper.start();
    ASSERT_EQ(left.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    shipper.stop(std::chrono::seconds(5));
  }

  TempDir dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::unique_ptr<Spool> spool_;
};

TEST_F(LogShipperTest, TheFileExportersErrorsAreCountedAsTheFileExporters) {
  // A body the file exporter has no decoder for: dropped (kDrop), counted as "rejected".
  FileLogExporter file(dir_.path() / "logs" / "out.jsonl", 1 << 20);
  LogBatch garbled = fourLines();
  garbled.streams.clear();
  garbled.encoded_body = "not a push body";
  shipOne(garbled, file);
  EXPECT_EQ(errors_.count("file", "rejected"), 1);
  EXPECT_EQ(errors_.count("loki", "rejected"), 0);
}

TEST_F(LogShipperTest, RetriesAreCountedUnderTheExportersName) {
  ScriptedExporter exporter({{SendStatus::kRetry, 503, "busy", {}}});
  shipOne(fourLines(), exporter);
  EXPECT_EQ(errors_.count("scripted", "retry"), 1);
  EXPECT_EQ(errors_.count("loki", "retry"), 0);
  EXPECT_EQ(exporter.sent().size(), 2U);
}

TEST_F(LogShipperTest, ABodyRefusedAsTooLargeIsSplitWithTheDecoder) {
  ScriptedExporter exporter({{SendStatus::kTooLarge, 413, "too big", {}}});
  LogShipperOptions options;
  options.body_decoder = std::make_shared<LokiBatchEncoder>();
  const LogBatch original = fourLines();
  shipOne(withLokiBody(original), exporter, options);
  const auto sent = exporter.sent();
  ASSERT_EQ(sent.size(), 3U);  // the whole body, then its halves
  EXPECT_EQ(sent[0].streams, original.streams);
  ASSERT_EQ(sent[1].streams.size(), 1U);
  ASSERT_EQ(sent[2].streams.size(), 1U);
  EXPECT_EQ(sent[1].lines, 2U);
  EXPECT_EQ(sent[2].lines, 2U);
  std::vector<LogEntry> joined = sent[1].streams[0].entries;
  joined.insert(joined.end(), sent[2].streams[0].entries.begin(), sent[2].streams[0].entries.end());
  EXPECT_EQ(joined, original.streams[0].entries);
  // The positions go with the second half only.
  EXPECT_TRUE(sent[1].checkpoints.empty());
  EXPECT_EQ(sent[2].checkpoints, original.checkpoints);
  EXPECT_EQ(errors_.count("scripted", "too_large"), 0);
}

TEST_F(LogShipperTest, ABodyRefusedAsTooLargeWithoutADecoderIsDroppedAndCounted) {
  ScriptedExporter exporter({{SendStatus::kTooLarge, 413, "too big", {}}});
  shipOne(withLokiBody(fourLines()), exporter);
  EXPECT_EQ(exporter.sent().size(), 1U);
  EXPECT_EQ(errors_.count("scripted", "too_large"), 1);
}

}  // namespace
}  // namespace nodewarden
