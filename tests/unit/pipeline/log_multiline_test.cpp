// MultilineStage: real JVM and Python traces (tests/fixtures/logs/multiline, captured from the
// runtimes) and a Go panic joined into one entry each with nothing else joined; plain lines of
// every common shape never joined; custom start/continue rules chosen by selector; the size, line
// and time bounds; a refusing next sink; the checkpoints passed while lines are held.
//
// What a reader gets wrong: the stage holds the last line of every stream (it may be a JVM
// trace's header), so each test ends with flushDue(force) to see it.
#include "pipeline/log_multiline.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace nodewarden {
namespace {

using Clock = LogStage::Clock;

struct Passed {
  Labels labels;
  LogEntry entry;
  LogCheckpoint checkpoint;
  std::uint64_t stream_id = 0;
};

// The next sink: records what it takes; refuses while `refuse` is set.
class RecordingSink final : public LogSink {
 public:
  bool accept(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp) override {
    return acceptStream(labels, entry, cp, 0);
  }
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& cp,
                    std::uint64_t id) override {
    if (refuse || refuse_after == 0) return false;
    if (refuse_after > 0) --refuse_after;
    passed.push_back(Passed{labels, entry, cp, id});
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return !refuse; }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& p : passed) out.push_back(p.entry.line);
    return out;
  }
  bool refuse = false;
  int refuse_after = -1;  // >= 0: takes this many more, then refuses
  std::vector<Passed> passed;
};

std::vector<std::string> readLines(const std::string& name) {
  std::ifstream in(std::string(NODEWARDEN_FIXTURES) + "/logs/multiline/" + name);
  EXPECT_TRUE(in) << name;
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string joinRange(const std::vector<std::string>& lines, std::size_t first, std::size_t last) {
  std::string out;
  for (std::size_t i = first; i <= last; ++i) {
    if (i > first) out += '\n';
    out += lines[i];
  }
  return out;
}

Labels streamLabels(const std::string& ns = "default", const std::string& container = "app",
                    const std::string& stream = "stdout") {
  return {{"container", container}, {"namespace", ns}, {"pod", "p"}, {"stream", stream}};
}

class MultilineTest : public ::testing::Test {
 protected:
  void make(MultilineOptions o = {}) {
    auto s = MultilineStage::create(std::move(o), nullptr, registry_);
    ASSERT_TRUE(s.has_value()) << s.error();
    stage_ = std::move(*s);
    chain_ = std::make_unique<LogStageChain>(std::vector<std::unique_ptr<LogStage>>{}, sink_);
    stage_->setNext(sink_);
  }
  // One line of `source` at the next offset; returns what accept said.
  bool feed(const std::string& line, const Labels& labels = streamLabels(),
            const std::string& source = "/var/log/pods/a/0.log", std::uint64_t id = 1) {
    LogEntry e;
    e.timestamp_ns = ++ts_;
    e.line = line;
    e.metadata = {{"filename", source}};
    LogCheckpoint cp;
    cp.source = source;
    cp.offset = offsets_[source] + line.size() + 40;  // as a CRI record's prefix would add
    const bool ok = stage_->acceptStream(labels, e, cp, id);
    if (ok) offsets_[source] = cp.offset;
    return ok;
  }
  void feedAll(const std::vector<std::string>& lines) {
    for (const auto& l : lines) ASSERT_TRUE(feed(l));
  }
  void flushAll() { ASSERT_TRUE(stage_->flushDue(Clock::now(), true)); }
  double counter(const std::string& name, const std::string& label = "") {
    double sum = 0;
    for (const auto& f : registry_.Collect()) {
      if (f.name != name) continue;
      for (const auto& m : f.metric) {
        for (const auto& l : m.label) {
          if (label.empty() || l.value == label) sum += m.counter.value;
        }
      }
    }
    return sum;
  }

  prometheus::Registry registry_;
  RecordingSink sink_;
  std::unique_ptr<MultilineStage> stage_;
  std::unique_ptr<LogStageChain> chain_;
  std::map<std::string, std::uint64_t> offsets_;
  std::int64_t ts_ = 1000;
};

TEST_F(MultilineTest, JavaTraceFromARealJvmIsJoinedAndNothingElse) {
  make();
  const auto lines = readLines("jvm_trace.txt");
  ASSERT_EQ(lines.size(), 29U);
  feedAll(lines);
  flushAll();
  const std::vector<std::string> want = {
      lines[0],
      lines[1],
      joinRange(lines, 2, 14),  // java.lang.RuntimeException: ... through the cause's "... 1 more"
      lines[15],
      joinRange(lines, 16, 28),  // Exception in thread "main" ...
  };
  EXPECT_EQ(sink_.lines(), want);
  // The entry keeps its first line's timestamp and metadata.
  EXPECT_EQ(sink_.passed[2].entry.timestamp_ns, 1000 + 3);
  EXPECT_EQ(counter("nodewarden_log_multiline_joined_lines_total", "jvm"), 12 + 12);
}

TEST_F(MultilineTest, PythonChainedTracebackFromRealPythonIsOneEntry) {
  make();
  const auto lines = readLines("python_traceback.txt");
  feedAll(lines);
  flushAll();
  const std::vector<std::string> want = {lines[0], lines[1], joinRange(lines, 2, lines.size() - 1)};
  EXPECT_EQ(sink_.lines(), want);
  EXPECT_EQ(counter("nodewarden_log_multiline_joined_lines_total", "python"),
            static_cast<double>(lines.size() - 3));
}

TEST_F(MultilineTest, GoPanicWithGoroutinesThroughExitStatusIsOneEntry) {
  make();
  const auto lines = readLines("go_panic.txt");
  ASSERT_EQ(lines.size(), 18U);
  feedAll(lines);
  flushAll();
  const std::vector<std::string> want = {lines[0], joinRange(lines, 1, 16), lines[17]};
  EXPECT_EQ(sink_.lines(), want);
}

TEST_F(MultilineTest, AMessageLineDirectlyFollowedByFramesIsTheHeader) {
  make();
  const std::vector<std::string> lines = {
      "2026-12-07 21:00:00,001 INFO  c.e.Jobs - tick",
      "2026-12-07 21:00:00,002 ERROR c.e.Jobs - task failed: java.io.IOException: disk full",
      "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)",
      "\tat org.apache.spark.rdd.RDD.$anonfun$foreach$1(RDD.scala:1003) ~[spark-core.jar:3.4.1]",
      "\t... 12 common frames omitted",
      "2026-12-07 21:00:00,003 WARN  c.e.Jobs - retrying",
      "2026-12-07 21:00:00,004 ERROR c.e.Jobs - gave up",
      "Caused by: java.lang.IllegalStateException: closed",
      "    at com.example.Jobs.run(Jobs.java:12)",
      "2026-12-07 21:00:00,005 INFO  c.e.Jobs - done",
  };
  feedAll(lines);
  flushAll();
  const std::vector<std::string> want = {lines[0], joinRange(lines, 1, 4), lines[5],
                                         joinRange(lines, 6, 8), lines[9]};
  EXPECT_EQ(sink_.lines(), want);
}

TEST_F(MultilineTest, PlainLinesOfEveryCommonShapeAreNeverJoined) {
  make();
  const std::vector<std::string> lines = {
      "I1207 21:00:00.000000       1 controller.go:123] \"Syncing\" pod=\"default/x\"",
      "  at least 3 replicas are required",
      "\tat the end of the day",
      "{\"level\":\"info\",\"msg\":\"request done\",\"status\":200}",
      "10.0.0.1 - - [07/Dec/2026:21:00:00 +0000] \"GET / HTTP/1.1\" 200 612 \"-\" \"curl/8.0\"",
      "    indented continuation of nothing",
      "Caused by nothing in particular",
      "",
      "... 3 more",
      "ValueError: not after a traceback",
      "goroutine leak suspected",
      "panic attack averted",
      "exit status 2",
      "File \"x.py\", line 3",
  };
  feedAll(lines);
  flushAll();
  EXPECT_EQ(sink_.lines(), lines);
  EXPECT_EQ(counter("nodewarden_log_multiline_joined_lines_total"), 0);
}

TEST_F(MultilineTest, StreamsAreJoinedApart) {
  make();
  const Labels out = streamLabels("default", "app", "stdout");
  const Labels err = streamLabels("default", "app", "stderr");
  ASSERT_TRUE(feed("Traceback (most recent call last):", err, "/f", 2));
  ASSERT_TRUE(feed("stdout line", out, "/f", 1));
  ASSERT_TRUE(feed("  File \"a.py\", line 1, in <module>", err, "/f", 2));
  ASSERT_TRUE(feed("another stdout line", out, "/f", 1));
  ASSERT_TRUE(feed("KeyError: 'x'", err, "/f", 2));
  flushAll();
  std::vector<std::string> got = sink_.lines();
  ASSERT_EQ(got.size(), 3U);
  EXPECT_EQ(got[0], "stdout line");
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"Traceback (most recent call last):\n  File \"a.py\", "
                                           "line 1, in <module>\nKeyError: 'x'",
                                           "another stdout line", "stdout line"}));
}

TEST_F(MultilineTest, CustomRulesChosenBySelectorReplaceTheBuiltInOnes) {
  MultilineOptions o;
  MultilineRule dated;
  dated.match.namespaces = {"spark"};
  dated.start = R"(^\d{4}-\d\d-\d\d )";
  MultilineRule sql_rule;
  sql_rule.match.containers = {"sql"};
  sql_rule.continue_pattern = R"(^\s*(AND|OR) )";
  o.rules = {dated, sql_rule};
  make(o);
  const Labels spark = streamLabels("spark", "driver");
  const Labels sql = streamLabels("db", "sql");
  const Labels other = streamLabels("default", "web");
  ASSERT_TRUE(feed("2026-12-07 first", spark, "/s", 1));
  ASSERT_TRUE(feed("  more of first", spark, "/s", 1));
  ASSERT_TRUE(feed("and this too", spark, "/s", 1));
  ASSERT_TRUE(feed("2026-12-07 second", spark, "/s", 1));
  ASSERT_TRUE(feed("SELECT 1 WHERE a", sql, "/q", 2));
  ASSERT_TRUE(feed("  AND b", sql, "/q", 2));
  ASSERT_TRUE(feed("SELECT 2", sql, "/q", 2));
  ASSERT_TRUE(feed("  more of nothing", other, "/o", 3));
  ASSERT_TRUE(feed("\tat com.x.Y.z(Y.java:1)", other, "/o", 3));  // built-in JVM rule
  flushAll();
  std::vector<std::string> got = sink_.lines();
  std::sort(got.begin(), got.end());
  std::vector<std::string> want = {"2026-12-07 first\n  more of first\nand this too",
                                   "2026-12-07 second", "SELECT 1 WHERE a\n  AND b", "SELECT 2",
                                   "  more of nothing\n\tat com.x.Y.z(Y.java:1)"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(counter("nodewarden_log_multiline_joined_lines_total", "custom"), 3);
}

TEST_F(MultilineTest, SizeAndLineBoundsPassTheGroupOnAndLoseNothing) {
  MultilineOptions o;
  o.max_lines = 3;
  o.max_bytes = 1 << 20;
  make(o);
  std::vector<std::string> lines = {"java.lang.X: boom"};
  for (int i = 0; i < 7; ++i) lines.push_back("\tat a.B.c" + std::to_string(i) + "(B.java:1)");
  feedAll(lines);
  flushAll();
  EXPECT_EQ(sink_.lines(), (std::vector<std::string>{joinRange(lines, 0, 2), joinRange(lines, 3, 5),
                                                     joinRange(lines, 6, 7)}));
  EXPECT_EQ(counter("nodewarden_log_multiline_flushes_total", "max_lines"), 2);

  sink_.passed.clear();
  MultilineOptions b;
  b.max_bytes = 60;
  make(b);
  feedAll(lines);
  flushAll();
  std::string all;
  for (const auto& l : sink_.lines()) {
    EXPECT_LE(l.size(), 60U);
    all += (all.empty() ? "" : "\n") + l;
  }
  EXPECT_EQ(all, joinRange(lines, 0, lines.size() - 1));
  EXPECT_GT(sink_.passed.size(), 2U);
  EXPECT_EQ(counter("nodewarden_log_multiline_flushes_total", "max_bytes"),
            static_cast<double>(sink_.passed.size() - 1));
}

TEST_F(MultilineTest, AHeldGroupGoesAfterTheFlushTimeout) {
  MultilineOptions o;
  o.flush_timeout = std::chrono::milliseconds(500);
  make(o);
  ASSERT_TRUE(feed("Traceback (most recent call last):"));
  ASSERT_TRUE(feed("  File \"a.py\", line 1, in <module>"));
  const Clock::time_point t0 = Clock::now();
  ASSERT_TRUE(stage_->flushDue(t0, false));  // starts its clock
  ASSERT_TRUE(stage_->flushDue(t0 + std::chrono::milliseconds(499), false));
  EXPECT_TRUE(sink_.passed.empty());
  EXPECT_EQ(stage_->heldStreams(), 1U);
  ASSERT_TRUE(stage_->flushDue(t0 + std::chrono::milliseconds(500), false));
  ASSERT_EQ(sink_.passed.size(), 1U);
  EXPECT_EQ(sink_.passed[0].entry.line,
            "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>");
  EXPECT_EQ(stage_->heldStreams(), 0U);
  EXPECT_EQ(counter("nodewarden_log_multiline_flushes_total", "timeout"), 1);
  // What comes after the timeout starts anew: a late frame line is not joined to anything.
  ASSERT_TRUE(feed("ValueError: late"));
  flushAll();
  EXPECT_EQ(sink_.passed.back().entry.line, "ValueError: late");
}

TEST_F(MultilineTest, ARefusingNextSinkNeverLosesALine) {
  make();
  const auto lines = readLines("jvm_trace.txt");
  // Refuse every other attempt to pass something on; re-offer what was refused, as the tailer does.
  std::size_t attempts = 0;
  for (const auto& line : lines) {
    for (;;) {
      sink_.refuse = (attempts++ % 2) == 0;
      if (feed(line)) break;
      sink_.refuse = false;
    }
  }
  sink_.refuse = true;
  EXPECT_FALSE(stage_->flushDue(Clock::now(), true));
  sink_.refuse = false;
  flushAll();
  ASSERT_EQ(lines.size(), 29U);
  const std::vector<std::string> want = {lines[0], lines[1], joinRange(lines, 2, 14), lines[15],
                                         joinRange(lines, 16, 28)};
  EXPECT_EQ(sink_.lines(), want);
}

TEST_F(MultilineTest, OtherEntriesOfAHeldSourceCarryThePositionBeforeTheGroup) {
  make();
  const Labels out = streamLabels("default", "app", "stdout");
  const Labels err = streamLabels("default", "app", "stderr");
  const std::string file = "/var/log/pods/a/0.log";
  ASSERT_TRUE(feed("first", out, file, 1));  // held (may be a header) until the next line
  const std::uint64_t before_trace = offsets_[file];
  ASSERT_TRUE(feed("Traceback (most recent call last):", err, file, 2));
  ASSERT_TRUE(feed("  File \"a.py\", line 1, in <module>", err, file, 2));
  ASSERT_TRUE(feed("second", out, file, 1));  // passes "first" on
  ASSERT_EQ(sink_.passed.size(), 1U);
  EXPECT_EQ(sink_.passed[0].entry.line, "first");
  // A crash now must read the traceback again: "first"'s position is before it anyway.
  EXPECT_LE(sink_.passed[0].checkpoint.offset, before_trace);
  ASSERT_TRUE(feed("third", out, file, 1));  // passes "second": after the trace in the file
  ASSERT_EQ(sink_.passed.size(), 2U);
  EXPECT_EQ(sink_.passed[1].checkpoint.offset, before_trace);
  ASSERT_TRUE(feed("KeyError: 'x'", err, file, 2));
  const std::uint64_t after_trace = offsets_[file];
  flushAll();
  ASSERT_EQ(sink_.passed.size(), 4U);
  for (const auto& p : sink_.passed) {
    if (p.entry.line.starts_with("Traceback")) {
      // Its own position, but not past "third" which is still held then.
      EXPECT_LE(p.checkpoint.offset, after_trace);
    }
  }
  EXPECT_EQ(sink_.passed.back().checkpoint.offset, after_trace);
}

TEST_F(MultilineTest, AGroupOfASourceSeenForTheFirstTimeHoldsItsOtherStreamAtZero) {
  make();
  const std::string file = "/var/log/pods/a/0.log";
  ASSERT_TRUE(
      feed("Traceback (most recent call last):", streamLabels("d", "a", "stderr"), file, 2));
  ASSERT_TRUE(feed("x", streamLabels("d", "a", "stdout"), file, 1));
  ASSERT_TRUE(feed("y", streamLabels("d", "a", "stdout"), file, 1));
  ASSERT_EQ(sink_.passed.size(), 1U);
  EXPECT_EQ(sink_.passed[0].checkpoint.offset, 0U);
  EXPECT_EQ(sink_.passed[0].checkpoint.source, file);
}

TEST_F(MultilineTest, ATraceSplitByRotationIsJoinedAndKeepsTheOlderFilesPosition) {
  make();
  const Labels labels = streamLabels();
  ASSERT_TRUE(feed("plain", labels, "/old", 1));
  ASSERT_TRUE(feed("Traceback (most recent call last):", labels, "/old", 1));
  ASSERT_TRUE(feed("  File \"a.py\", line 1, in <module>", labels, "/old", 1));
  const std::uint64_t old_end = offsets_["/old"];
  // The new file after the rotation: new stream number, same labels.
  ASSERT_TRUE(feed("    main()", labels, "/new", 7));
  ASSERT_TRUE(feed("RuntimeError: boom", labels, "/new", 7));
  ASSERT_TRUE(feed("after", labels, "/new", 7));
  flushAll();
  ASSERT_EQ(sink_.lines(), (std::vector<std::string>{"plain",
                                                     "Traceback (most recent call last):\n  File "
                                                     "\"a.py\", line 1, in <module>\n    "
                                                     "main()\nRuntimeError: boom",
                                                     "after"}));
  EXPECT_EQ(sink_.passed[1].checkpoint.source, "/old");
  EXPECT_EQ(sink_.passed[1].checkpoint.offset, old_end);
  EXPECT_EQ(sink_.passed[2].checkpoint.source, "/new");
}

// A blank line after a traceback's last line waits to see whether a chained traceback follows;
// when it does not, the traceback goes on with its own last line's position, not the blank line's
// (which is still held, now alone: a crash must read it again).
TEST_F(MultilineTest, ATracebackPassedBeforeAHeldBlankLineDoesNotCarryItsPosition) {
  make();
  ASSERT_TRUE(feed("Traceback (most recent call last):"));
  ASSERT_TRUE(feed("  File \"a.py\", line 1, in <module>"));
  ASSERT_TRUE(feed("ValueError: x"));
  const std::uint64_t blank_start = offsets_["/var/log/pods/a/0.log"];
  ASSERT_TRUE(feed(""));
  sink_.refuse_after = 1;  // takes the traceback, then refuses the blank line
  EXPECT_FALSE(feed("next"));
  ASSERT_EQ(sink_.passed.size(), 1U);
  EXPECT_EQ(
      sink_.passed[0].entry.line,
      "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nValueError: x");
  EXPECT_LE(sink_.passed[0].checkpoint.offset, blank_start);
  sink_.refuse_after = -1;
  ASSERT_TRUE(feed("next"));
  flushAll();
  EXPECT_EQ(sink_.lines().back(), "next");
  EXPECT_EQ(sink_.passed.size(), 3U);
}

TEST_F(MultilineTest, WithoutTheJvmRuleOrdinaryLinesAreNotHeld) {
  MultilineOptions o;
  o.jvm = false;
  make(o);
  ASSERT_TRUE(feed("plain"));
  EXPECT_EQ(sink_.passed.size(), 1U);
  EXPECT_EQ(stage_->heldStreams(), 0U);
  ASSERT_TRUE(feed("panic: boom"));
  EXPECT_EQ(stage_->heldStreams(), 1U);
}

TEST(MultilineChecks, LineShapes) {
  using namespace multiline;
  EXPECT_TRUE(isJvmFrame("\tat java.base/java.lang.Thread.run(Thread.java:833)"));
  EXPECT_TRUE(isJvmFrame("    at com.x.Y.<init>(Y.java:1)"));
  EXPECT_FALSE(isJvmFrame("at com.x.Y.z(Y.java:1)"));
  EXPECT_FALSE(isJvmFrame("  at least (3) replicas"));
  EXPECT_FALSE(isJvmFrame("\tat noDots(x)"));
  EXPECT_TRUE(isJvmContinuation("\t... 12 more"));
  EXPECT_TRUE(isJvmContinuation("... 3 common frames omitted"));
  EXPECT_FALSE(isJvmContinuation("... 3 apples"));
  EXPECT_TRUE(isJvmContinuation("\tSuppressed: java.io.IOException: x"));
  EXPECT_FALSE(isJvmContinuation("Suppressed: at top level is not a trace line"));
  EXPECT_TRUE(isPythonExceptionLine("requests.exceptions.HTTPError: 500"));
  EXPECT_TRUE(isPythonExceptionLine("KeyboardInterrupt"));
  EXPECT_FALSE(isPythonExceptionLine("some words: here"));
  EXPECT_TRUE(isGoroutineHeader("goroutine 1 [running]:"));
  EXPECT_TRUE(isGoroutineHeader("goroutine 18 gp=0xc000102000 m=nil [chan receive]:"));
  EXPECT_FALSE(isGoroutineHeader("goroutine leak [suspected]"));
}

}  // namespace
}  // namespace nodewarden
