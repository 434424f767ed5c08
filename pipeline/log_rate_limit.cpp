#include "pipeline/log_rate_limit.h"

#include <prometheus/counter.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace nodewarden {
namespace {

constexpr double kNsPerSecond = 1e9;

std::string shortNumber(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", value);
  return buf;
}

std::string sizeText(double bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  } else if (bytes < 1024.0 * 1024) {
    std::snprintf(buf, sizeof buf, "%.0f KiB", bytes / 1024);
  } else if (bytes < 1024.0 * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  }
  std::string out = buf;
  // "10.0 MiB" reads as "10 MiB".
  if (const auto at = out.find(".0 "); at != std::string::npos) out.erase(at, 2);
  return out;
}

std::string periodText(std::int64_t ns) {
  if (ns < 1'000'000'000) {
    const double ms = static_cast<double>(std::max<std::int64_t>(ns, 0)) / 1e6;
    return shortNumber(ms < 10 ? std::round(ms * 10) / 10 : std::round(ms)) + "ms";
  }
  if (ns < 60'000'000'000) {
    std::string s = shortNumber(std::round(static_cast<double>(ns) / 1e8) / 10);
    return s + "s";
  }
  std::int64_t secs = ns / 1'000'000'000;
  std::string out;
  if (secs >= 3600) out += std::to_string(secs / 3600) + "h";
  secs %= 3600;
  if (secs >= 60) out += std::to_string(secs / 60) + "m";
  if (secs % 60 != 0) out += std::to_string(secs % 60) + "s";
  return out;
}

// {namespace="a", pod="b", ...}, for the log.
std::string streamText(const Labels& labels) {
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    if (out.size() > 1) out += ", ";
    out += name + "=\"" + value + "\"";
  }
  return out + "}";
}

void appendKey(std::string& key, const Labels& labels) {
  key.clear();
  for (const auto& [name, value] : labels) {
    key += name;
    key += '\x1f';
    key += value;
    key += '\x1e';
  }
}

}  // namespace

std::string rateLimitMarkerText(std::uint64_t lines, std::uint64_t bytes, std::int64_t period_ns,
                                const std::string& limits) {
  return "nodewarden: dropped " + std::to_string(lines) + (lines == 1 ? " line (" : " lines (") +
         sizeText(static_cast<double>(bytes)) + ") of this stream over " + periodText(period_ns) +
         ": rate limit " + limits;
}

struct RateLimitStage::PodSeries {
  prometheus::Counter* lines = nullptr;
  prometheus::Counter* bytes = nullptr;
  std::uint64_t unpublished_lines = 0;
  std::uint64_t unpublished_bytes = 0;
  std::size_t buckets = 0;  // buckets pointing here; removed with the last
};

struct RateLimitStage::Bucket {
  std::string key;
  Labels labels;
  std::uint64_t stream_id = 0;  // a number of these labels, for the marker's acceptStream
  PodSeries* pod = nullptr;     // set at the first drop
  std::string pod_key;
  std::uint64_t configured_epoch = 0;
  // Limits; a rate of 0 is no limit of that kind.
  double lines_per_second = 0;
  double bytes_per_second = 0;
  double cap_lines = 1;
  double cap_bytes = 1;
  // Tokens and the stream time they were refilled to.
  double lines = 0;
  double bytes = 0;
  std::int64_t clock_ns = 0;
  // Sweeps.
  bool touched = true;
  int idle_sweeps = 0;
  // Drops not yet told by a marker.
  bool pending = false;
  bool episode = false;  // logged; ends when no line was dropped for kEpisodeQuiet
  bool listed = false;   // in pending_
  bool hit_lines = false;
  bool hit_bytes = false;
  std::uint64_t dropped_lines = 0;
  std::uint64_t dropped_bytes = 0;
  std::int64_t first_ns = 0;
  std::int64_t last_ns = 0;
  Clock::time_point first_drop_at{};
  Clock::time_point last_drop_at{};
  LogCheckpoint checkpoint;  // of the stream's latest line while pending
  Labels metadata;           // of the first dropped line, for the marker

  [[nodiscard]] std::string limitsText() const {
    std::string out;
    if (hit_lines || !hit_bytes) out = shortNumber(lines_per_second) + " lines/s";
    if (hit_bytes) {
      if (!out.empty()) out += " and ";
      out += sizeText(bytes_per_second) + "/s";
    }
    return out;
  }
};

RateLimitStage::RateLimitStage(RateLimitOptions options, const ContainerMetadata* metadata,
                               prometheus::Registry& registry, ErrorReporter& errors,
                               WallClock wall)
    : options_(std::move(options)),
      resolver_(metadata),
      lines_family_(prometheus::BuildCounter()
                        .Name("nodewarden_log_lines_rate_limited_total")
                        .Help("Log lines dropped by collectors.logs.rate_limit, by pod (the "
                              "journal's with empty labels). A marker line in the stream says how "
                              "many and when.")
                        .Register(registry)),
      bytes_family_(prometheus::BuildCounter()
                        .Name("nodewarden_log_bytes_rate_limited_total")
                        .Help("Bytes of the log lines dropped by collectors.logs.rate_limit.")
                        .Register(registry)),
      errors_(errors),
      wall_(std::move(wall)),
      tick_now_(Clock::now()),
      last_sweep_(tick_now_) {
  wall_cache_ns_ = wallNow();
  generation_ = resolver_.generation();
  selects_pod_labels_ = std::ranges::any_of(
      options_.overrides, [](const RateLimitOverride& o) { return !o.match.pod_labels.empty(); });
  marker_.line.reserve(160);
}

RateLimitStage::~RateLimitStage() = default;

std::int64_t RateLimitStage::wallNow() const {
  if (wall_) return wall_();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t RateLimitStage::streams() const { return buckets_.size(); }
std::size_t RateLimitStage::podSeries() const { return pods_.size(); }
std::size_t RateLimitStage::pendingMarkers() const {
  return static_cast<std::size_t>(
      std::ranges::count_if(pending_, [](const Bucket* b) { return b->pending; }));
}

void RateLimitStage::forgetIds() {
  by_id_.clear();
  recent_ids_[0] = recent_ids_[1] = 0;
  recent_buckets_[0] = recent_buckets_[1] = nullptr;
}

void RateLimitStage::configure(Bucket& bucket, const Labels& labels, const LogEntry& entry,
                               bool fresh) {
  const LogStreamInfo info = resolver_.resolve(labels, entry);
  double lines_per_second = options_.lines_per_second;
  auto bytes_per_second = static_cast<double>(options_.bytes_per_second);
  RateLimitBurst burst = options_.burst;
  for (const auto& o : options_.overrides) {
    if (!o.match.matches(info)) continue;
    if (o.lines_per_second) lines_per_second = *o.lines_per_second;
    if (o.bytes_per_second) bytes_per_second = static_cast<double>(*o.bytes_per_second);
    if (o.burst) burst = *o.burst;
    break;
  }
  const double seconds = std::chrono::duration<double>(burst.duration).count();
  bucket.lines_per_second = lines_per_second;
  bucket.bytes_per_second = bytes_per_second;
  bucket.cap_lines = std::max(1.0, burst.lines > 0 ? burst.lines : lines_per_second * seconds);
  bucket.cap_bytes = std::max(
      1.0, burst.bytes > 0 ? static_cast<double>(burst.bytes) : bytes_per_second * seconds);
  if (fresh) {
    bucket.lines = bucket.cap_lines;
    bucket.bytes = bucket.cap_bytes;
  } else {
    bucket.lines = std::min(bucket.lines, bucket.cap_lines);
    bucket.bytes = std::min(bucket.bytes, bucket.cap_bytes);
  }
  bucket.configured_epoch = config_epoch_;
  // A pod the metadata does not know yet may have labels an override selects on: looked at again
  // after the next tick.
  if (info.pod_labels == nullptr && selects_pod_labels_ &&
      !labelValue(entry.metadata, "pod_uid").empty()) {
    unresolved_ = true;
  }
}

RateLimitStage::Bucket* RateLimitStage::create(const Labels& labels, const LogEntry& entry,
                                               std::string key) {
  if (buckets_.size() >= options_.max_streams && !cap_swept_) {
    // Streams idle since the last sweep go first (once per sweep: not a scan per new stream).
    cap_swept_ = true;
    bool removed = false;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      Bucket& b = *it->second;
      if (!b.touched && !b.pending && !b.episode && !b.listed) {
        releasePod(b);
        it = buckets_.erase(it);
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed) forgetIds();
  }
  if (buckets_.size() >= options_.max_streams) {
    errors_.report("logs", "rate_limit_streams",
                   "more than " + std::to_string(options_.max_streams) +
                       " log streams at once: new streams are not rate limited");
    return nullptr;
  }
  auto bucket = std::make_unique<Bucket>();
  bucket->key = std::move(key);
  bucket->labels = labels;
  configure(*bucket, labels, entry, true);
  Bucket* raw = bucket.get();
  buckets_.emplace(raw->key, std::move(bucket));
  return raw;
}

RateLimitStage::Bucket* RateLimitStage::find(const Labels& labels, const LogEntry& entry,
                                             std::uint64_t stream_id) {
  if (stream_id != 0) {
    if (stream_id == recent_ids_[0]) return recent_buckets_[0];
    if (stream_id == recent_ids_[1]) {
      std::swap(recent_ids_[0], recent_ids_[1]);
      std::swap(recent_buckets_[0], recent_buckets_[1]);
      return recent_buckets_[0];
    }
  }
  Bucket* bucket = nullptr;
  bool known = false;
  if (stream_id != 0) {
    if (const auto it = by_id_.find(stream_id); it != by_id_.end()) {
      bucket = it->second;
      known = true;
    }
  }
  if (!known) {
    appendKey(key_scratch_, labels);
    if (const auto it = buckets_.find(key_scratch_); it != buckets_.end()) {
      bucket = it->second.get();
      if (bucket->configured_epoch != config_epoch_) configure(*bucket, labels, entry, false);
    } else {
      bucket = create(labels, entry, key_scratch_);
    }
    if (stream_id != 0) {
      // Numbers are never reused: the map only grows between sweeps, so it is bounded here.
      if (by_id_.size() >= 4 * options_.max_streams) forgetIds();
      by_id_[stream_id] = bucket;  // null: over max_streams, not limited
    }
  }
  if (stream_id != 0) {
    recent_ids_[1] = recent_ids_[0];
    recent_buckets_[1] = recent_buckets_[0];
    recent_ids_[0] = stream_id;
    recent_buckets_[0] = bucket;
  }
  return bucket;
}

std::int64_t RateLimitStage::lineTime(std::int64_t timestamp_ns) {
  if (timestamp_ns <= 0) return wallNow();
  if (timestamp_ns > wall_cache_ns_ + kFutureSlackNs) {
    wall_cache_ns_ = wallNow();  // the cached one may be a tick old
    if (timestamp_ns > wall_cache_ns_ + kFutureSlackNs) return wall_cache_ns_;
  }
  return timestamp_ns;
}

bool RateLimitStage::accept(const Labels& labels, const LogEntry& entry,
                            const LogCheckpoint& checkpoint) {
  return acceptStream(labels, entry, checkpoint, 0);
}

bool RateLimitStage::acceptStream(const Labels& labels, const LogEntry& entry,
                                  const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  Bucket* b = find(labels, entry, stream_id);
  if (b == nullptr) return next_->acceptStream(labels, entry, checkpoint, stream_id);
  b->touched = true;
  if (stream_id != 0) b->stream_id = stream_id;
  const std::int64_t t = lineTime(entry.timestamp_ns);

  // The refill this line brings, kept aside until the line is taken (a refused line is offered
  // again and must find the bucket as it was).
  std::int64_t clock = b->clock_ns;
  double lines = b->lines;
  double bytes = b->bytes;
  if (clock > wall_cache_ns_ + kFutureSlackNs) clock = t;  // the node's clock went back
  if (t > clock) {
    const auto elapsed = static_cast<double>(t - clock) / kNsPerSecond;
    lines = std::min(b->cap_lines, lines + elapsed * b->lines_per_second);
    bytes = std::min(b->cap_bytes, bytes + elapsed * b->bytes_per_second);
    clock = t;
  }
  const auto size = static_cast<double>(entry.line.size());
  // A line longer than the whole burst passes on a full bucket.
  const double byte_cost = std::min(size, b->cap_bytes);
  const bool lines_ok = b->lines_per_second <= 0 || lines >= 1.0;
  const bool bytes_ok = b->bytes_per_second <= 0 || bytes >= byte_cost;

  if (lines_ok && bytes_ok) {
    if (b->pending) {
      const bool quiet = t - b->last_ns >= kEpisodeQuietNs;
      // The marker keeps the position of the stream's line before this one: this line may yet
      // be refused.
      if (quiet || t - b->first_ns >= kMarkerIntervalNs) {
        if (!emitMarker(*b)) return false;
        if (quiet) b->episode = false;
      }
    }
    if (!next_->acceptStream(labels, entry, checkpoint, stream_id)) return false;
    b->clock_ns = clock;
    b->lines = b->lines_per_second > 0 ? lines - 1.0 : lines;
    b->bytes = b->bytes_per_second > 0 ? bytes - byte_cost : bytes;
    if (b->pending) b->checkpoint = checkpoint;
    return true;
  }

  // Dropped: consumed, counted, and told later by the marker.
  b->clock_ns = clock;
  b->lines = lines;
  b->bytes = bytes;
  if (!b->pending) {
    b->pending = true;
    b->dropped_lines = b->dropped_bytes = 0;
    b->hit_lines = b->hit_bytes = false;
    b->first_ns = t;
    b->first_drop_at = tick_now_;
    b->metadata.clear();
    for (const auto& pair : entry.metadata) {
      if (pair.first != "truncated") b->metadata.push_back(pair);
    }
    if (!b->listed) {
      pending_.push_back(b);
      b->listed = true;
    }
  }
  b->hit_lines = b->hit_lines || !lines_ok;
  b->hit_bytes = b->hit_bytes || !bytes_ok;
  if (!b->episode) {
    b->episode = true;
    spdlog::warn(
        "log rate limit: dropping lines of stream {} (over {}); a marker line in the stream will "
        "count them",
        streamText(labels), b->limitsText());
  }
  ++b->dropped_lines;
  b->dropped_bytes += entry.line.size();
  b->last_ns = t;
  b->last_drop_at = tick_now_;
  b->checkpoint = checkpoint;
  if (b->pod == nullptr) {
    const std::string_view ns = labelValue(labels, "namespace");
    const std::string_view pod = labelValue(labels, "pod");
    std::string key = std::string(ns) + "/" + std::string(pod);
    auto it = pods_.find(key);
    if (it == pods_.end()) {
      auto series = std::make_unique<PodSeries>();
      const prometheus::Labels l{{"namespace", std::string(ns)}, {"pod", std::string(pod)}};
      series->lines = &lines_family_.Add(l);
      series->bytes = &bytes_family_.Add(l);
      it = pods_.emplace(key, std::move(series)).first;
    }
    b->pod = it->second.get();
    b->pod_key = std::move(key);
    ++b->pod->buckets;
  }
  ++b->pod->unpublished_lines;
  b->pod->unpublished_bytes += entry.line.size();
  ++dropped_lines_;
  dropped_bytes_ += entry.line.size();
  return true;
}

bool RateLimitStage::emitMarker(Bucket& b) {
  marker_.timestamp_ns = b.last_ns;
  marker_.line =
      rateLimitMarkerText(b.dropped_lines, b.dropped_bytes, b.last_ns - b.first_ns, b.limitsText());
  marker_.metadata = b.metadata;
  marker_.metadata.emplace_back("dropped_bytes", std::to_string(b.dropped_bytes));
  marker_.metadata.emplace_back("dropped_lines", std::to_string(b.dropped_lines));
  marker_.metadata.emplace_back("nodewarden_marker", "rate_limit");
  std::ranges::sort(marker_.metadata);
  if (!next_->acceptStream(b.labels, marker_, b.checkpoint, b.stream_id)) return false;
  b.pending = false;
  b.dropped_lines = b.dropped_bytes = 0;
  return true;
}

void RateLimitStage::publish() {
  for (auto& [key, pod] : pods_) {
    if (pod->unpublished_lines == 0) continue;
    pod->lines->Increment(static_cast<double>(pod->unpublished_lines));
    pod->bytes->Increment(static_cast<double>(pod->unpublished_bytes));
    pod->unpublished_lines = pod->unpublished_bytes = 0;
  }
}

void RateLimitStage::releasePod(Bucket& b) {
  if (b.pod == nullptr) return;
  PodSeries* pod = b.pod;
  b.pod = nullptr;
  if (--pod->buckets != 0) return;
  // The pod's last stream went idle: its series go (bounded cardinality); counts not yet
  // published are lost with them, as a scrape would no longer see the series anyway.
  lines_family_.Remove(pod->lines);
  bytes_family_.Remove(pod->bytes);
  pods_.erase(b.pod_key);
}

void RateLimitStage::sweep() {
  last_sweep_ = tick_now_;
  cap_swept_ = false;
  bool removed = false;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Bucket& b = *it->second;
    if (b.touched) {
      b.touched = false;
      b.idle_sweeps = 0;
      ++it;
      continue;
    }
    if (++b.idle_sweeps >= kIdleSweeps && !b.pending && !b.episode && !b.listed) {
      releasePod(b);
      it = buckets_.erase(it);
      removed = true;
    } else {
      ++it;
    }
  }
  if (removed) forgetIds();
}

bool RateLimitStage::flushDue(Clock::time_point now, bool force) {
  tick_now_ = now;
  wall_cache_ns_ = wallNow();
  if (const std::uint64_t g = resolver_.generation(); g != generation_ || unresolved_) {
    // Pod labels may select other overrides now: each stream is configured again at its next line.
    generation_ = g;
    unresolved_ = false;
    ++config_epoch_;
    forgetIds();
  }
  publish();
  bool ok = true;
  const auto quiet = std::chrono::nanoseconds(kEpisodeQuietNs);
  const auto interval = std::chrono::nanoseconds(kMarkerIntervalNs);
  for (Bucket* b : pending_) {
    const bool ended = force || now - b->last_drop_at >= quiet;
    if (b->pending && ok && (ended || now - b->first_drop_at >= interval)) {
      if (!emitMarker(*b)) ok = false;  // kept; the rest wait as well (the next sink is full)
    }
    if (!b->pending && ended) b->episode = false;
  }
  std::erase_if(pending_, [](Bucket* b) {
    if (b->pending || b->episode) return false;
    b->listed = false;
    return true;
  });
  if (now - last_sweep_ >= kSweepInterval) sweep();
  return ok;
}

}  // namespace nodewarden
