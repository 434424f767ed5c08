// LogBatcher: what a closed batch holds (the push body of its entries, the latest position of
// each source), when its sources hear that it is durable, the read counters, and backpressure
// from a full spool that lifts when the spool drains.
//
// What a reader gets wrong: hasRoom() is asked for every line, but the spool's size only once per
// batch (only the batcher's own appends make the spool bigger). The backpressure test therefore
// drains the spool between two questions and expects the answer to change.
#include "pipeline/log_batcher.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "exporters/loki/loki_push_body.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;

double counterValue(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    double sum = 0;
    for (const auto& m : family.metric) sum += m.counter.value;
    return sum;
  }
  return -1;
}

class LogBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nodewarden-batcher-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    batcher_.reset();
    spool_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(LogBatcherOptions o, std::uint64_t spool_max_bytes = 64ULL << 20,
             const std::function<void(SpoolOptions&)>& tweak = {}) {
    batcher_.reset();
    spool_.reset();
    SpoolOptions so;
    so.dir = dir_ / "spool";
    so.fsync = false;
    so.max_bytes = spool_max_bytes;
    so.segment_bytes = 300;  // a few records each: acknowledged segments go
    if (tweak) tweak(so);
    auto spool = Spool::open(so, errors_);
    ASSERT_TRUE(spool.has_value()) << spool.error();
    spool_ = std::move(*spool);
    o.spool_max_bytes = spool_max_bytes;
    batcher_ = std::make_unique<LogBatcher>(
        o, *spool_, [this](const std::vector<LogCheckpoint>& cps) { durable_.push_back(cps); },
        registry_, errors_);
  }

  static LogCheckpoint fileAt(const std::string& path, std::uint64_t offset) {
    LogCheckpoint cp;
    cp.source = path;
    cp.file = {1, 7, 99, 1024};
    cp.offset = offset;
    return cp;
  }
  static LogCheckpoint journalAt(const std::string& cursor) {
    LogCheckpoint cp;
    cp.source = "journal";
    cp.journal_cursor = cursor;
    return cp;
  }
  static LogEntry entry(std::int64_t ts, const std::string& line) {
    LogEntry e;
    e.timestamp_ns = ts;
    e.line = line;
    e.metadata = {{"filename", "/var/log/pods/ns_a_u/app/0.log"}, {"pod_uid", "u"}};
    return e;
  }

  fs::path dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<LogBatcher> batcher_;
  std::vector<std::vector<LogCheckpoint>> durable_;
};

TEST_F(LogBatcherTest, ClosedBatchIsThePushBodyOfItsEntriesAndTheLatestPositionOfEachSource) {
  LogBatcherOptions o;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  start(o);
  const Labels app = {{"container", "app"}, {"namespace", "ns"}, {"pod", "a"}};
  const Labels kubelet = {{"unit", "kubelet.service"}};
  ASSERT_TRUE(batcher_->accept(app, entry(1000, "first"), fileAt("/logs/a", 6)));
  ASSERT_TRUE(batcher_->accept(kubelet, entry(1500, "journal one"), journalAt("c=1")));
  ASSERT_TRUE(batcher_->accept(app, entry(2000, "second"), fileAt("/logs/a", 13)));
  ASSERT_TRUE(batcher_->accept(kubelet, entry(2500, "journal two"), journalAt("c=2")));
  ASSERT_TRUE(batcher_->accept(app, entry(3000, "third"), fileAt("/logs/a", 19)));
  EXPECT_TRUE(durable_.empty());  // nothing is durable before the batch is in the spool
  ASSERT_TRUE(batcher_->flush(true));

  const std::vector<LogCheckpoint> latest = {fileAt("/logs/a", 19), journalAt("c=2")};
  ASSERT_EQ(durable_.size(), 1U);
  EXPECT_EQ(durable_[0], latest);
  const auto batch = spool_->front();
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->checkpoints, latest);
  EXPECT_EQ(batch->lines, 5U);
  EXPECT_EQ(batch->bytes, 5U + 11 + 6 + 11 + 5);
  auto streams = decodeLokiPushBody(batch->encoded_body);
  ASSERT_TRUE(streams.has_value()) << streams.error();
  ASSERT_EQ(streams->size(), 2U);
  EXPECT_EQ((*streams)[0].labels, app);
  EXPECT_EQ(
      (*streams)[0].entries,
      (std::vector<LogEntry>{entry(1000, "first"), entry(2000, "second"), entry(3000, "third")}));
  EXPECT_EQ((*streams)[1].labels, kubelet);
  EXPECT_EQ((*streams)[1].entries,
            (std::vector<LogEntry>{entry(1500, "journal one"), entry(2500, "journal two")}));
}

TEST_F(LogBatcherTest, ReadCountersAreUpToDateAfterEachFlush) {
  start(LogBatcherOptions{});
  const Labels app = {{"pod", "a"}};
  ASSERT_TRUE(batcher_->accept(app, entry(1, "abc"), fileAt("/logs/a", 4)));
  ASSERT_TRUE(batcher_->accept(app, entry(2, "defgh"), fileAt("/logs/a", 10)));
  EXPECT_FALSE(batcher_->flush());  // not due: the counters are brought up to date all the same
  EXPECT_EQ(counterValue(registry_, "nodewarden_log_lines_read_total"), 2);
  EXPECT_EQ(counterValue(registry_, "nodewarden_log_bytes_read_total"), 8);
  ASSERT_TRUE(batcher_->accept(app, entry(3, "ij"), fileAt("/logs/a", 13)));
  EXPECT_TRUE(batcher_->flush(true));
  EXPECT_EQ(counterValue(registry_, "nodewarden_log_lines_read_total"), 3);
  EXPECT_EQ(counterValue(registry_, "nodewarden_log_bytes_read_total"), 10);
  EXPECT_EQ(counterValue(registry_, "nodewarden_log_batches_spooled_total"), 1);
}

TEST_F(LogBatcherTest, StopsTakingLinesWhileTheSpoolIsFullAndResumesWhenItDrains) {
  LogBatcherOptions o;
  o.batch_bytes = 200;
  o.spool_headroom_bytes = 512;  // full at 1536 bytes, before the spool would drop anything
  start(o, 2048);
  const Labels app = {{"pod", "a"}};
  const std::string line(100, 'x');
  std::uint64_t offset = 0;
  int batches = 0;
  // Full batches until the spool is over its bound less the headroom.
  while (batcher_->hasRoom() && batches < 100) {
    ASSERT_TRUE(batcher_->accept(app, entry(1, line), fileAt("/logs/a", offset += 101)));
    if (batcher_->flush()) ++batches;
  }
  ASSERT_LT(batches, 100) << "the spool never filled";
  EXPECT_GE(spool_->bytes(), 2048U - 512);
  EXPECT_EQ(spool_->lostUnits(), 0U);
  EXPECT_FALSE(batcher_->hasRoom());
  EXPECT_FALSE(batcher_->accept(app, entry(1, line), fileAt("/logs/a", offset + 101)));
  EXPECT_FALSE(batcher_->hasRoom());  // asked again: still full
  // The destination takes what was spooled: room again.
  while (const auto front = spool_->front()) spool_->acknowledge(front->sequence);
  EXPECT_TRUE(batcher_->hasRoom());
  EXPECT_TRUE(batcher_->accept(app, entry(1, line), fileAt("/logs/a", offset += 101)));
}

// With a spool that holds batches in memory (defer_writes), a full batch that would not fit there
// waits while the consumer is taking batches, instead of making the spool write it; it goes as
// soon as the consumer acknowledged the one before. Nothing is written to disk on the way.
TEST_F(LogBatcherTest, AFullBatchWaitsForAConsumerThatTakesBatchesInsteadOfBeingWritten) {
  LogBatcherOptions o;
  o.batch_bytes = 200;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  // Positions, and so the spool's sync that writes what it holds, once an hour after the first.
  o.commit_interval = std::chrono::hours(1);
  const Labels app = {{"pod", "a"}};
  std::uint64_t offset = 0;
  int n = 0;
  const auto fill = [&] {  // one full batch of lines that do not compress much
    while (batcher_->hasRoom()) {
      std::string line;
      for (int i = 0; i < 100; ++i) line += static_cast<char>('a' + (n * 7 + i * i) % 26);
      ++n;
      ASSERT_TRUE(batcher_->accept(app, entry(n, line), fileAt("/logs/a", offset += 101)));
    }
  };
  const auto deferred = [](std::uint64_t cache) {
    return [cache](SpoolOptions& so) {
      so.sync_each_append = false;
      so.defer_writes = true;
      so.cache_bytes = cache;
      so.hold_wait = std::chrono::hours(1);
    };
  };
  // How much one such batch holds in the spool's memory.
  start(o, 64ULL << 20, deferred(1 << 20));
  fill();
  ASSERT_TRUE(batcher_->flush());
  const std::uint64_t one = spool_->cachedBytes();
  ASSERT_GT(one, 0U);
  fs::remove_all(dir_ / "spool");

  // Memory for one held batch.
  start(o, 64ULL << 20, deferred(one + 100));  // batch_bytes (200) more would not fit
  fill();
  ASSERT_TRUE(batcher_->flush());  // nothing acknowledged yet; written by the first commit
  EXPECT_FALSE(batcher_->waitingForConsumer());
  const std::uint64_t written = spool_->bytes();
  spool_->acknowledge(spool_->front()->sequence);  // the consumer takes it
  fill();
  ASSERT_TRUE(batcher_->flush());  // fits again
  fill();
  EXPECT_FALSE(batcher_->flush());  // would not fit, and the consumer is taking batches: waits
  EXPECT_TRUE(batcher_->waitingForConsumer());
  EXPECT_FALSE(batcher_->hasRoom());
  EXPECT_EQ(spool_->batches(), 1U);
  spool_->acknowledge(spool_->front()->sequence);
  EXPECT_TRUE(batcher_->flush());  // room: held
  EXPECT_FALSE(batcher_->waitingForConsumer());
  EXPECT_TRUE(batcher_->hasRoom());
  EXPECT_EQ(spool_->heldBatches(), 1U);
  EXPECT_EQ(spool_->bytes(), written);  // no batch after the first was written to disk
  // A forced flush never waits.
  fill();
  EXPECT_TRUE(batcher_->flush(true));
  EXPECT_GT(spool_->bytes(), written);
  EXPECT_EQ(spool_->heldBatches(), 0U);
}

// Positions follow acknowledgements: every commit_interval the positions of the batches the
// destination acknowledged are committed, with no sync, even while a younger batch waits in the
// spool's memory (reading them again after a kill would only send them twice). A batch not yet
// acknowledged is synced (written) and committed once it has waited commit_grace, and at once when
// it is on disk already. The clock is the test's.
TEST_F(LogBatcherTest, AcknowledgedBatchesAreCommittedWithinOneIntervalWhileYoungerOnesWait) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  Clock::time_point now = Clock::now();
  LogBatcherOptions o;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  o.batch_wait = milliseconds(0);  // every flush closes the open batch
  o.commit_interval = milliseconds(1000);
  o.commit_grace = milliseconds(250);
  o.now = [&now] { return now; };
  start(o, 64ULL << 20, [](SpoolOptions& so) {
    so.sync_each_append = false;
    so.defer_writes = true;
    so.cache_bytes = 1 << 20;
  });
  const Labels app = {{"pod", "a"}};
  const auto line = [&](int n) {
    ASSERT_TRUE(batcher_->accept(app, entry(n, "line " + std::to_string(n)),
                                 fileAt("/logs/a", static_cast<std::uint64_t>(n) * 10)));
    ASSERT_TRUE(batcher_->flush());
  };
  const auto acknowledgeFront = [&] {
    auto front = spool_->front();
    ASSERT_NE(front, nullptr);
    spool_->acknowledge(front->sequence);
  };

  line(1);
  EXPECT_TRUE(durable_.empty());  // the first commit is due, but the batch is young and held
  acknowledgeFront();
  now += milliseconds(10);
  EXPECT_FALSE(batcher_->flush());
  ASSERT_EQ(durable_.size(), 1U);  // acknowledged: committed without a sync
  EXPECT_EQ(durable_.back().front().offset, 10U);

  now += milliseconds(490);
  line(2);
  acknowledgeFront();
  now += milliseconds(450);
  line(3);                         // young, not acknowledged
  EXPECT_EQ(durable_.size(), 1U);  // within the interval
  now += milliseconds(60);         // one interval after the last commit
  EXPECT_FALSE(batcher_->flush());
  ASSERT_EQ(durable_.size(), 2U);  // batch 2 is, and does not wait for batch 3
  EXPECT_EQ(durable_.back().front().offset, 20U);
  EXPECT_EQ(spool_->heldBatches(), 1U);
  EXPECT_EQ(spool_->bytes(), 0U);  // nothing was written

  acknowledgeFront();
  now += milliseconds(500);
  EXPECT_FALSE(batcher_->flush());
  EXPECT_EQ(durable_.size(), 2U);  // acknowledged, but within the interval
  now += milliseconds(500);
  EXPECT_FALSE(batcher_->flush());
  ASSERT_EQ(durable_.size(), 3U);
  EXPECT_EQ(durable_.back().front().offset, 30U);

  // Not acknowledged: the due commit waits commit_grace for it, then writes and commits it.
  now += milliseconds(900);
  line(4);
  now += milliseconds(200);  // due, the batch 200 ms old
  EXPECT_FALSE(batcher_->flush());
  EXPECT_EQ(durable_.size(), 3U);
  now += milliseconds(50);
  EXPECT_FALSE(batcher_->flush());
  ASSERT_EQ(durable_.size(), 4U);
  EXPECT_EQ(durable_.back().front().offset, 40U);
  EXPECT_EQ(spool_->heldBatches(), 0U);
  EXPECT_GT(spool_->bytes(), 0U);  // the sync wrote it
  acknowledgeFront();
  EXPECT_EQ(spool_->batches(), 0U);
}

// A batch that went to disk (it did not fit in the spool's memory: the destination stalls) is
// synced and committed at the next due commit, with no grace: a kill would otherwise send it from
// the spool and read its lines again.
TEST_F(LogBatcherTest, ABatchOnDiskIsCommittedAtTheNextDueCommitWithoutGrace) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  Clock::time_point now = Clock::now();
  LogBatcherOptions o;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  o.batch_wait = milliseconds(0);
  o.commit_interval = milliseconds(1000);
  o.commit_grace = std::chrono::hours(1);
  o.now = [&now] { return now; };
  start(o, 64ULL << 20, [](SpoolOptions& so) {
    so.sync_each_append = false;
    so.defer_writes = true;
    so.cache_bytes = 1;  // nothing is held
  });
  const Labels app = {{"pod", "a"}};
  ASSERT_TRUE(batcher_->accept(app, entry(1, "one"), fileAt("/logs/a", 10)));
  ASSERT_TRUE(batcher_->flush());
  EXPECT_EQ(spool_->heldBatches(), 0U);
  ASSERT_EQ(durable_.size(), 1U);  // the first commit, with a sync: the batch is on disk
  EXPECT_EQ(durable_.back().front().offset, 10U);
  now += milliseconds(500);
  ASSERT_TRUE(batcher_->accept(app, entry(2, "two"), fileAt("/logs/a", 20)));
  ASSERT_TRUE(batcher_->flush());
  EXPECT_EQ(durable_.size(), 1U);
  now += milliseconds(500);
  EXPECT_FALSE(batcher_->flush());
  ASSERT_EQ(durable_.size(), 2U);
  EXPECT_EQ(durable_.back().front().offset, 20U);
}

// Bodies are written into buffers of earlier bodies (the batcher's own, or one the spool let go
// of once it was sent): every body must still be exactly its own batch's entries, whether the
// buffer was bigger or smaller, and whichever way the spool held the batch.
TEST_F(LogBatcherTest, EveryBodyIsItsOwnBatchWhenBuffersAreReused) {
  for (const std::uint64_t cache_bytes : {std::uint64_t{4} << 20, std::uint64_t{0}}) {
    SCOPED_TRACE(cache_bytes);
    TearDown();
    SetUp();
    SpoolOptions so;
    so.dir = dir_ / "spool";
    so.fsync = false;
    so.cache_bytes = cache_bytes;
    auto spool = Spool::open(so, errors_);
    ASSERT_TRUE(spool.has_value()) << spool.error();
    spool_ = std::move(*spool);
    LogBatcherOptions o;
    o.encoder = std::make_shared<LokiBatchEncoder>();
    batcher_ = std::make_unique<LogBatcher>(
        o, *spool_, [](const std::vector<LogCheckpoint>&) {}, registry_, errors_);
    const Labels app = {{"pod", "a"}};
    std::int64_t ts = 0;
    // Lines per batch: large, small, large, ... so each buffer is reused both ways.
    const std::vector<int> sizes = {3000, 2, 2500, 40, 1, 3100, 700, 5};
    std::size_t next = 0;    // the batch expected next: each arrives once, in order
    std::size_t reused = 0;  // small bodies in a buffer of a large one
    for (std::size_t b = 0; b < sizes.size(); ++b) {
      std::vector<LogEntry> want;
      for (int i = 0; i < sizes[b]; ++i) {
        want.push_back(entry(++ts, "batch " + std::to_string(b) + " line " + std::to_string(i)));
        ASSERT_TRUE(batcher_->accept(app, want.back(), fileAt("/logs/a", ts)));
      }
      ASSERT_TRUE(batcher_->flush(true));
      // Sent at once when b is even; else left queued for one more batch.
      if (b % 2 == 1) continue;
      while (auto batch = spool_->front()) {
        auto streams = decodeLokiPushBody(batch->encoded_body);
        ASSERT_TRUE(streams.has_value()) << streams.error();
        ASSERT_EQ(streams->size(), 1U);
        const auto& got = (*streams)[0].entries;
        ASSERT_FALSE(got.empty());
        // The batch's first line names its batch; its entries are exactly that batch's.
        const std::string name = got.front().line.substr(0, got.front().line.find(" line "));
        const std::size_t index = std::stoul(name.substr(6));
        ASSERT_EQ(index, next);
        ++next;
        if (sizes[index] < 100 &&
            batch->encoded_body.capacity() > 10 * batch->encoded_body.size()) {
          ++reused;
        }
        EXPECT_EQ(got.size(), static_cast<std::size_t>(sizes[index]));
        for (std::size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i].line, name + " line " + std::to_string(i));
        }
        spool_->acknowledge(batch->sequence);
      }
    }
    EXPECT_EQ(next, sizes.size() - 1);  // the last batch is still queued
    EXPECT_GT(reused, 0U);
  }
}

// A collector's stream numbers (acceptStream) find the stream of their labels: numbers that
// alternate, two numbers of equal labels (one stream), a number with no labels compared, and the
// numbers of the last batch, which mean nothing in the next.
TEST_F(LogBatcherTest, StreamNumbersFindTheStreamOfTheirLabels) {
  LogBatcherOptions o;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  start(o);
  const Labels out = {{"pod", "a"}, {"stream", "stdout"}};
  const Labels err = {{"pod", "a"}, {"stream", "stderr"}};
  const Labels other = {{"pod", "b"}, {"stream", "stdout"}};
  const std::uint64_t n_out = newLogStreamId();
  const std::uint64_t n_err = newLogStreamId();
  const std::uint64_t n_out_again = newLogStreamId();  // e.g. the rotated file of the same stream
  const std::uint64_t n_other = newLogStreamId();
  EXPECT_NE(n_out, 0U);
  EXPECT_NE(n_out, n_err);
  const auto cp = fileAt("/logs/a", 1);
  ASSERT_TRUE(batcher_->acceptStream(out, entry(1, "o1"), cp, n_out));
  ASSERT_TRUE(batcher_->acceptStream(err, entry(2, "e1"), cp, n_err));
  ASSERT_TRUE(batcher_->acceptStream(out, entry(3, "o2"), cp, n_out));
  ASSERT_TRUE(batcher_->acceptStream(err, entry(4, "e2"), cp, n_err));
  ASSERT_TRUE(batcher_->acceptStream(other, entry(5, "x1"), cp, n_other));
  ASSERT_TRUE(batcher_->acceptStream(out, entry(6, "o3"), cp, n_out_again));
  ASSERT_TRUE(batcher_->accept(err, entry(7, "e3"), cp));
  ASSERT_TRUE(batcher_->acceptStream(out, entry(8, "o4"), cp, n_out));
  ASSERT_TRUE(batcher_->flush(true));
  // The next batch: its first stream is `other`, under a number last seen for another stream.
  ASSERT_TRUE(batcher_->acceptStream(other, entry(9, "x2"), cp, n_other));
  ASSERT_TRUE(batcher_->acceptStream(err, entry(10, "e4"), cp, n_err));
  ASSERT_TRUE(batcher_->acceptStream(other, entry(11, "x3"), cp, n_other));
  ASSERT_TRUE(batcher_->flush(true));

  const auto first = spool_->front();
  ASSERT_NE(first, nullptr);
  auto streams = decodeLokiPushBody(first->encoded_body);
  ASSERT_TRUE(streams.has_value()) << streams.error();
  ASSERT_EQ(streams->size(), 3U);
  EXPECT_EQ((*streams)[0].labels, out);
  EXPECT_EQ((*streams)[0].entries, (std::vector<LogEntry>{entry(1, "o1"), entry(3, "o2"),
                                                          entry(6, "o3"), entry(8, "o4")}));
  EXPECT_EQ((*streams)[1].labels, err);
  EXPECT_EQ((*streams)[1].entries,
            (std::vector<LogEntry>{entry(2, "e1"), entry(4, "e2"), entry(7, "e3")}));
  EXPECT_EQ((*streams)[2].labels, other);
  EXPECT_EQ((*streams)[2].entries, std::vector<LogEntry>{entry(5, "x1")});
  spool_->acknowledge(first->sequence);
  const auto second = spool_->front();
  ASSERT_NE(second, nullptr);
  streams = decodeLokiPushBody(second->encoded_body);
  ASSERT_TRUE(streams.has_value()) << streams.error();
  ASSERT_EQ(streams->size(), 2U);
  EXPECT_EQ((*streams)[0].labels, other);
  EXPECT_EQ((*streams)[0].entries, (std::vector<LogEntry>{entry(9, "x2"), entry(11, "x3")}));
  EXPECT_EQ((*streams)[1].labels, err);
  EXPECT_EQ((*streams)[1].entries, std::vector<LogEntry>{entry(10, "e4")});
}

// A spool that records when it was synced (and can fail to), around a real one.
class SyncRecordingSpool final : public Spool {
 public:
  SyncRecordingSpool(Spool& real, std::vector<std::string>& events)
      : real_(real), events_(events) {}
  std::expected<std::uint64_t, std::string> append(const LogBatch& b) override {
    return real_.append(b);
  }
  std::expected<std::uint64_t, std::string> append(LogBatch&& b) override {
    return real_.append(std::move(b));
  }
  std::expected<void, std::string> sync() override {
    events_.push_back(fail_sync ? "sync failed" : "sync");
    if (fail_sync) return std::unexpected("fdatasync: Input/output error");
    return real_.sync();
  }
  std::shared_ptr<const LogBatch> front() override { return real_.front(); }
  void acknowledge(std::uint64_t sequence) override { real_.acknowledge(sequence); }
  [[nodiscard]] std::uint64_t acknowledgedThrough() const override {
    return real_.acknowledgedThrough();
  }
  std::string takeSpareBody() override { return real_.takeSpareBody(); }
  [[nodiscard]] bool waitForConsumer(std::uint64_t next_bytes) const override {
    return real_.waitForConsumer(next_bytes);
  }
  [[nodiscard]] std::uint64_t bytes() const override { return real_.bytes(); }
  [[nodiscard]] std::uint64_t heldBatches() const override { return real_.heldBatches(); }
  [[nodiscard]] std::uint64_t heldBytes() const override { return real_.heldBytes(); }
  [[nodiscard]] std::uint64_t writtenBytes() const override { return real_.writtenBytes(); }
  [[nodiscard]] std::uint64_t batches() const override { return real_.batches(); }
  [[nodiscard]] std::uint64_t lostUnits() const override { return real_.lostUnits(); }
  [[nodiscard]] SpoolDamage damage() const override { return real_.damage(); }
  [[nodiscard]] std::uint64_t cachedBytes() const override { return real_.cachedBytes(); }
  [[nodiscard]] std::chrono::milliseconds oldestAge() const override { return real_.oldestAge(); }
  bool fail_sync = false;

 private:
  Spool& real_;
  std::vector<std::string>& events_;
};

// Positions are committed only after the spool synced every batch before them, at most once per
// commit_interval (the first at once), each source at its latest position, and all of them at
// flush(true); a failed sync commits nothing until one succeeds.
TEST_F(LogBatcherTest, PositionsAreCommittedAfterASyncAtMostOncePerInterval) {
  SpoolOptions so;
  so.dir = dir_ / "spool";
  so.fsync = false;
  so.sync_each_append = false;
  auto real = Spool::open(so, errors_);
  ASSERT_TRUE(real.has_value()) << real.error();
  std::vector<std::string> events;
  SyncRecordingSpool spool(**real, events);
  LogBatcherOptions o;
  o.encoder = std::make_shared<LokiBatchEncoder>();
  o.batch_bytes = 1;  // every line closes its batch at the next flush()
  o.commit_interval = std::chrono::hours(1);
  LogBatcher batcher(
      o, spool,
      [&](const std::vector<LogCheckpoint>& cps) {
        events.push_back("durable");
        durable_.push_back(cps);
      },
      registry_, errors_);
  const Labels app = {{"pod", "a"}};
  const Labels other = {{"pod", "b"}};
  using Events = std::vector<std::string>;

  ASSERT_TRUE(batcher.accept(app, entry(1, "one"), fileAt("/logs/a", 4)));
  ASSERT_TRUE(batcher.flush());
  EXPECT_EQ(events, (Events{"sync", "durable"}));  // the first commit: at once
  ASSERT_EQ(durable_.size(), 1U);
  EXPECT_EQ(durable_[0], std::vector<LogCheckpoint>{fileAt("/logs/a", 4)});

  // Three more batches within the interval: spooled, not committed.
  ASSERT_TRUE(batcher.accept(app, entry(2, "two"), fileAt("/logs/a", 8)));
  ASSERT_TRUE(batcher.flush());
  ASSERT_TRUE(batcher.accept(other, entry(3, "three"), fileAt("/logs/b", 6)));
  ASSERT_TRUE(batcher.flush());
  ASSERT_TRUE(batcher.accept(app, entry(4, "four"), fileAt("/logs/a", 13)));
  ASSERT_TRUE(batcher.flush());
  EXPECT_EQ(spool.batches(), 4U);
  EXPECT_EQ(events, (Events{"sync", "durable"}));
  ASSERT_EQ(durable_.size(), 1U);

  // flush(true) with no open batch commits them: after a sync, each source at its latest.
  EXPECT_FALSE(batcher.flush(true));
  EXPECT_EQ(events, (Events{"sync", "durable", "sync", "durable"}));
  ASSERT_EQ(durable_.size(), 2U);
  EXPECT_EQ(durable_[1], (std::vector<LogCheckpoint>{fileAt("/logs/a", 13), fileAt("/logs/b", 6)}));

  // A failed sync commits nothing; the next one that succeeds commits what waited.
  spool.fail_sync = true;
  ASSERT_TRUE(batcher.accept(app, entry(5, "five"), fileAt("/logs/a", 18)));
  ASSERT_TRUE(batcher.flush(true));
  EXPECT_EQ(events.back(), "sync failed");
  EXPECT_EQ(durable_.size(), 2U);
  EXPECT_EQ(errors_.count("spool", "sync_failed"), 1.0);
  spool.fail_sync = false;
  EXPECT_FALSE(batcher.flush(true));
  EXPECT_EQ(events.back(), "durable");
  ASSERT_EQ(durable_.size(), 3U);
  EXPECT_EQ(durable_[2], std::vector<LogCheckpoint>{fileAt("/logs/a", 18)});
  EXPECT_FALSE(batcher.flush(true));  // nothing left to commit
  EXPECT_EQ(durable_.size(), 3U);
}

}  // namespace
}  // namespace nodewarden
