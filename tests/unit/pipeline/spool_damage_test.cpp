// Spool damage accounting: a spool is filled with batches of known line (sample) counts and
// stopped; its files are then damaged the ways a disk, a person or a bad restore damage them
// (a segment cut to half, bytes flipped in several segments, a segment zeroed, emptied, replaced
// by a directory or deleted), and the spool is reopened and drained. Every unit must come out
// exactly once, delivered or counted lost, for the log spool's settings and remote write's.
//
// What a reader gets wrong: "counted lost" is checked across two restarts, not one: a recovery
// that counts a gap and leaves the evidence on disk would count it again at the next start, and
// the delivered batches are compared with what was appended, so a damaged record can neither
// come back altered nor be both delivered and counted.
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "exporters/loki/loki_push_body.h"
#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"
#include "tests/support/temp_dir.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;

// Every TempDir here is named after this test file.
class TempDir : public test_support::TempDir {
 public:
  TempDir() : test_support::TempDir("nodewarden-spool-damage") {}
};

// Text that snappy and zstd cannot shrink to nothing, so that segments hold a few records each.
std::string noise(std::mt19937& rng, std::size_t n) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyz0123456789 ";
  std::string s(n, ' ');
  for (char& c : s) c = kChars[rng() % kChars.size()];
  return s;
}

// The log spool as the agent configures it (push bodies stored as they are, writes deferred
// until sync(), the ack rewritten at most once a second), with small segments.
struct LogSpoolKind {
  using Record = LogBatch;
  static constexpr const char* kName = "logs";
  static SpoolOptions options(const fs::path& dir) {
    SpoolOptions o = logSpoolOptions(dir);
    o.fsync = false;  // the files are damaged by the test, not by a power loss
    o.segment_bytes = 16 << 10;
    o.max_bytes = 1ULL << 30;
    return o;
  }
  static std::unique_ptr<Spool> open(const SpoolOptions& o, ErrorReporter& errors) {
    auto spool = Spool::open(o, errors);
    EXPECT_TRUE(spool.has_value()) << spool.error();
    return spool ? std::move(*spool) : nullptr;
  }
  static Record make(int id, std::uint32_t units, std::mt19937& rng) {
    LogBatch batch;
    LogBatch::Stream s;
    s.labels = {{"namespace", "ns"}, {"pod", "pod-" + std::to_string(id % 5)}};
    for (std::uint32_t i = 0; i < units; ++i) {
      LogEntry e;
      e.timestamp_ns = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(id) * 1'000'000 + i;
      e.line = "batch " + std::to_string(id) + " line " + std::to_string(i) + " " + noise(rng, 40);
      batch.bytes += e.line.size();
      s.entries.push_back(std::move(e));
    }
    batch.lines = units;
    batch.streams.push_back(std::move(s));
    LokiPushWriter().body(batch, batch.encoded_body);
    batch.streams.clear();
    return batch;
  }
  static std::uint64_t units(const Record& r) { return r.lines; }
};

// Remote write's spool as the agent configures it (zstd records, each append fdatasync'ed, the
// ack rewritten on every acknowledgement).
struct MetricSpoolKind {
  using Record = MetricWriteBatch;
  static constexpr const char* kName = "remote_write";
  static SpoolOptions options(const fs::path& dir) {
    SpoolOptions o;
    o.dir = dir;
    o.fsync = false;
    o.zstd_level = 1;
    o.cache_bytes = 8ULL << 20;
    o.segment_bytes = 16 << 10;
    o.max_bytes = 1ULL << 30;
    return o;
  }
  static std::unique_ptr<MetricSpool> open(const SpoolOptions& o, ErrorReporter& errors) {
    auto spool = MetricSpool::open(o, errors);
    EXPECT_TRUE(spool.has_value()) << spool.error();
    return spool ? std::move(*spool) : nullptr;
  }
  static Record make(int id, std::uint32_t units, std::mt19937& rng) {
    MetricWriteBatch batch;
    batch.samples = units;
    batch.timestamp_ms = 1'700'000'000'000 + id;
    batch.request = "request " + std::to_string(id) + " " + noise(rng, 12 * units);
    return batch;
  }
  static std::uint64_t units(const Record& r) { return r.samples; }
};

enum class Damage {
  kTruncateHalf,      // a middle segment cut to half its size
  kTruncateLastHalf,  // the newest segment cut to half its size
  kFlipBytes,         // 20 bytes flipped in each of 5 segments
  kZero,              // a middle segment's bytes all zero, its size kept
  kEmpty,             // a middle segment cut to nothing
  kDirectory,         // a middle segment replaced by a directory of the same name
  kDeleteMiddle,      // a middle segment deleted
  kDeleteFirst,       // the oldest segment (partly acknowledged) deleted
  kDeleteLast,        // the newest segment deleted
};

std::string damageName(Damage d) {
  switch (d) {
    case Damage::kTruncateHalf:
      return "TruncateHalf";
    case Damage::kTruncateLastHalf:
      return "TruncateLastHalf";
    case Damage::kFlipBytes:
      return "FlipBytes";
    case Damage::kZero:
      return "Zero";
    case Damage::kEmpty:
      return "Empty";
    case Damage::kDirectory:
      return "Directory";
    case Damage::kDeleteMiddle:
      return "DeleteMiddle";
    case Damage::kDeleteFirst:
      return "DeleteFirst";
    case Damage::kDeleteLast:
      return "DeleteLast";
  }
  return "?";
}

std::vector<fs::path> segmentFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void writeFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void applyDamage(Damage d, const fs::path& dir, std::mt19937& rng) {
  const auto files = segmentFiles(dir);
  ASSERT_GE(files.size(), 8U);
  const fs::path& middle = files[files.size() / 2];
  switch (d) {
    case Damage::kTruncateHalf:
      fs::resize_file(middle, fs::file_size(middle) / 2);
      break;
    case Damage::kTruncateLastHalf:
      fs::resize_file(files.back(), fs::file_size(files.back()) / 2);
      break;
    case Damage::kFlipBytes:
      for (std::size_t i = 1; i <= 5; ++i) {
        const fs::path& f = files[i * (files.size() - 1) / 5];
        std::string bytes = readFile(f);
        for (int k = 0; k < 20; ++k) {
          bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
        }
        writeFile(f, bytes);
      }
      break;
    case Damage::kZero:
      writeFile(middle, std::string(fs::file_size(middle), '\0'));
      break;
    case Damage::kEmpty:
      writeFile(middle, "");
      break;
    case Damage::kDirectory:
      fs::remove(middle);
      fs::create_directory(middle);
      break;
    case Damage::kDeleteMiddle:
      fs::remove(middle);
      break;
    case Damage::kDeleteFirst:
      fs::remove(files.front());
      break;
    case Damage::kDeleteLast:
      fs::remove(files.back());
      break;
  }
}

template <class Kind>
class SpoolDamageTest : public ::testing::Test {
 protected:
  using Record = typename Kind::Record;

  // Appends kBatches batches of 1 to 150 units, delivers (acknowledges) the first kDelivered,
  // and stops the spool. Returns the units left in it.
  std::uint64_t fill() {
    auto spool = Kind::open(options(), errors_);
    for (int i = 0; i < kBatches; ++i) {
      Record batch = Kind::make(i, 1 + static_cast<std::uint32_t>(rng_() % 150), rng_);
      auto seq = spool->append(batch);
      if (!seq) {
        ADD_FAILURE() << seq.error();
        return 0;
      }
      appended_[*seq] = batch;
      if (i % 16 == 15) {
        EXPECT_TRUE(spool->sync().has_value());  // as the batcher commits
      }
    }
    std::uint64_t pending = 0;
    for (const auto& [seq, batch] : appended_) pending += Kind::units(batch);
    for (int i = 0; i < kDelivered; ++i) {
      auto front = spool->front();
      pending -= Kind::units(*front);
      spool->acknowledge(front->sequence);
    }
    EXPECT_EQ(spool->lostUnits(), 0U);
    return pending;
  }

  // Opens the spool, and checks what it hands out against what was appended.
  struct Run {
    std::uint64_t lost = 0;
    std::uint64_t delivered = 0;
    SpoolDamage damage;
  };
  Run reopen(bool drain) {
    Run run;
    auto spool = Kind::open(options(), errors_);
    if (!spool) return run;
    std::uint64_t last = 0;
    while (drain) {
      auto front = spool->front();
      if (!front) break;
      EXPECT_GT(front->sequence, last);
      last = front->sequence;
      auto it = appended_.find(front->sequence);
      if (it == appended_.end()) {
        ADD_FAILURE() << "a batch that was never appended: " << front->sequence;
      } else {
        Record expected = it->second;
        expected.sequence = front->sequence;
        EXPECT_EQ(*front, expected) << front->sequence;
        run.delivered += Kind::units(*front);
      }
      spool->acknowledge(front->sequence);
    }
    run.lost = spool->lostUnits();
    run.damage = spool->damage();
    return run;
  }

  SpoolOptions options() const { return Kind::options(dir_.path() / "spool"); }

  // Every unit not delivered before the damage comes out once: delivered, or counted lost (by the
  // first start after the damage; the second counts nothing more).
  void checkDamage(Damage d, std::string_view reason) {
    SCOPED_TRACE(damageName(d));
    const std::uint64_t pending = fill();
    applyDamage(d, options().dir, rng_);
    const Run first = reopen(false);
    const Run second = reopen(true);
    EXPECT_GT(first.lost, 0U) << "the damage took nothing: the test damaged the wrong thing";
    EXPECT_EQ(first.lost + second.lost + second.delivered, pending)
        << "lost " << first.lost << " + " << second.lost << ", delivered " << second.delivered;
    EXPECT_EQ(second.lost, 0U) << "counted again after a restart";
    EXPECT_EQ(first.damage.units, first.lost);  // all of it damage, none of it a full spool
    EXPECT_EQ(first.damage.unknown_bytes, 0U);  // the records say how many units they held
    EXPECT_GE(errors_.count("spool", reason), 1.0) << reason;
    // And the spool goes on: a new batch is appended and read back after a restart.
    {
      auto spool = Kind::open(options(), errors_);
      Record batch = Kind::make(kBatches, 3, rng_);
      auto seq = spool->append(batch);
      ASSERT_TRUE(seq.has_value()) << seq.error();
      EXPECT_EQ(appended_.count(*seq), 0U) << "a sequence was used twice";
      appended_[*seq] = batch;
    }
    const Run after = reopen(true);
    EXPECT_EQ(after.delivered, 3U);
    EXPECT_EQ(after.lost, 0U);
  }

  static constexpr int kBatches = 200;
  static constexpr int kDelivered = 10;
  TempDir dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::mt19937 rng_{42};
  std::map<std::uint64_t, Record> appended_;
};

using Kinds = ::testing::Types<LogSpoolKind, MetricSpoolKind>;
class KindNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};
TYPED_TEST_SUITE(SpoolDamageTest, Kinds, KindNames);

TYPED_TEST(SpoolDamageTest, SegmentCutToHalf) {
  this->checkDamage(Damage::kTruncateHalf, "truncated");
}
TYPED_TEST(SpoolDamageTest, NewestSegmentCutToHalf) {
  this->checkDamage(Damage::kTruncateLastHalf, "truncated");
}
TYPED_TEST(SpoolDamageTest, BytesFlippedInFiveSegments) {
  this->checkDamage(Damage::kFlipBytes, "checksum");
}
TYPED_TEST(SpoolDamageTest, SegmentZeroed) { this->checkDamage(Damage::kZero, "checksum"); }
TYPED_TEST(SpoolDamageTest, SegmentEmptied) { this->checkDamage(Damage::kEmpty, "sequence_gap"); }
TYPED_TEST(SpoolDamageTest, SegmentReplacedByADirectory) {
  this->checkDamage(Damage::kDirectory, "not_a_file");
}
TYPED_TEST(SpoolDamageTest, MiddleSegmentDeleted) {
  this->checkDamage(Damage::kDeleteMiddle, "sequence_gap");
}
TYPED_TEST(SpoolDamageTest, OldestSegmentDeleted) {
  this->checkDamage(Damage::kDeleteFirst, "sequence_gap");
}
TYPED_TEST(SpoolDamageTest, NewestSegmentDeleted) {
  this->checkDamage(Damage::kDeleteLast, "sequence_gap");
}

// What the agent publishes: the damage's units under reason="spool_corrupt" of the owner's
// dropped family, its unknown bytes per spool, both only growing as damage() grows.
TYPED_TEST(SpoolDamageTest, DamageIsPublishedAsCounters) {
  const std::uint64_t pending = this->fill();
  applyDamage(Damage::kDeleteMiddle, this->options().dir, this->rng_);
  prometheus::Registry registry;
  auto& dropped =
      prometheus::BuildCounter().Name("dropped_total").Help("by reason").Register(registry);
  SpoolDamageCounters counters(dropped, registry, TypeParam::kName);
  auto spool = TypeParam::open(this->options(), this->errors_);
  counters.update(spool->damage());
  const double corrupt = dropped.Add({{"reason", "spool_corrupt"}}).Value();
  EXPECT_GT(corrupt, 0.0);
  EXPECT_EQ(corrupt, static_cast<double>(spool->lostUnits()));
  counters.update(spool->damage());  // nothing new: nothing added
  EXPECT_EQ(dropped.Add({{"reason", "spool_corrupt"}}).Value(), corrupt);
  std::uint64_t delivered = 0;
  while (auto front = spool->front()) {
    delivered += TypeParam::units(*front);
    spool->acknowledge(front->sequence);
  }
  EXPECT_EQ(static_cast<std::uint64_t>(corrupt) + delivered, pending);
  const auto families = registry.Collect();
  const auto unknown = std::find_if(families.begin(), families.end(), [](const auto& f) {
    return f.name == "nodewarden_spool_unknown_lost_bytes_total";
  });
  ASSERT_NE(unknown, families.end());
  ASSERT_EQ(unknown->metric.size(), 1U);
  EXPECT_EQ(unknown->metric[0].label[0].value, TypeParam::kName);
  EXPECT_EQ(unknown->metric[0].counter.value, 0.0);
}

// Root reads a file whatever its mode, so a segment made unreadable with chmod 000 is only
// unreadable to others; the agent runs as root, and so do these tests as a rule.
TYPED_TEST(SpoolDamageTest, UnreadableSegment) {
  // Root reads a chmod 000 file, so the spool is reopened in a child process that runs as an
  // unprivileged user (the spool's directory handed to it), and reports through its exit status.
  constexpr uid_t kNobody = 65534;
  const std::uint64_t pending = this->fill();
  const fs::path dir = this->options().dir;
  const auto files = segmentFiles(dir);
  if (::geteuid() == 0) {
    for (const auto& entry : fs::recursive_directory_iterator(dir.parent_path())) {
      ASSERT_EQ(::chown(entry.path().c_str(), kNobody, kNobody), 0) << entry.path();
    }
    ASSERT_EQ(::chown(dir.parent_path().c_str(), kNobody, kNobody), 0);
  }
  fs::permissions(files[files.size() / 2], fs::perms::none);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) ::_exit(10);
    const auto first = this->reopen(true);
    if (first.lost == 0) ::_exit(11);
    if (first.lost + first.delivered != pending) ::_exit(12);
    if (this->errors_.count("spool", "unreadable_segment") < 1.0) ::_exit(13);
    ::_exit(::testing::Test::HasFailure() ? 14 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died by a signal";
  // 10: cannot drop privileges; 11: nothing counted lost; 12: delivered + lost != spooled;
  // 13: no unreadable_segment error; 14: an expectation inside reopen() failed.
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A crash (kill -9) while the newest record was being written leaves it cut short: its batch was
// never durable and its producer still has it (positions are committed only after a sync), so it
// is cut off and reported, not counted lost.
TYPED_TEST(SpoolDamageTest, ACrashCutTheNewestRecordShort) {
  const SpoolOptions o = this->options();
  std::vector<typename TypeParam::Record> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(TypeParam::make(i, 10, this->rng_));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    prometheus::Registry registry;
    ErrorReporter errors(registry);
    auto spool = TypeParam::open(o, errors);
    for (const auto& batch : batches) {
      if (!spool || !spool->append(batch) || !spool->sync()) ::_exit(1);
    }
    ::_exit(0);  // no destructor: the process dies as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const auto files = segmentFiles(o.dir);
  ASSERT_FALSE(files.empty());
  // The newest record cut short: 30 bytes of it gone.
  fs::resize_file(files.back(), fs::file_size(files.back()) - 30);
  auto spool = TypeParam::open(o, this->errors_);
  std::uint64_t delivered = 0;
  while (auto front = spool->front()) {
    delivered += TypeParam::units(*front);
    spool->acknowledge(front->sequence);
  }
  EXPECT_EQ(delivered, 50U);
  EXPECT_EQ(spool->lostUnits(), 0U);
  EXPECT_EQ(this->errors_.count("spool", "torn_tail"), 1.0);
}

// A crash while nothing is acknowledged (the destination is down): each closed segment still
// moved the ack's durable units on, so losing the newest segments is counted up to the last one
// closed; the records of the segment being written when the process died are the crash's.
TYPED_TEST(SpoolDamageTest, ACrashWhileTheDestinationIsDownThenTheNewestSegmentsLost) {
  SpoolOptions o = this->options();
  o.segment_bytes = 1;  // one record per segment
  std::vector<typename TypeParam::Record> batches;
  for (int i = 0; i < 5; ++i) batches.push_back(TypeParam::make(i, 10, this->rng_));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    prometheus::Registry registry;
    ErrorReporter errors(registry);
    auto spool = TypeParam::open(o, errors);
    for (const auto& batch : batches) {
      if (!spool || !spool->append(batch) || !spool->sync()) ::_exit(1);
    }
    ::_exit(0);  // no destructor: the process dies as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto files = segmentFiles(o.dir);
  ASSERT_EQ(files.size(), 5U);
  fs::remove(files[3]);
  fs::remove(files[4]);
  auto spool = TypeParam::open(o, this->errors_);
  std::uint64_t delivered = 0;
  while (auto front = spool->front()) {
    delivered += TypeParam::units(*front);
    spool->acknowledge(front->sequence);
  }
  EXPECT_EQ(delivered, 30U);
  EXPECT_EQ(spool->lostUnits(), 10U);  // the fourth; the fifth was being written
}

}  // namespace
}  // namespace nodewarden
