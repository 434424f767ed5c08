#include "collectors/jobs/job_tracker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <system_error>

namespace nodewarden::jobs {
namespace {

constexpr const char* kComponent = "jobs";

}  // namespace

JobTracker::JobTracker(JobTrackerOptions options, ErrorReporter& errors)
    : options_(std::move(options)), errors_(errors) {
  load();
}

JobTracker::Clock::time_point JobTracker::now() const {
  return options_.now ? options_.now() : Clock::now();
}

Timestamp JobTracker::wallNow() const {
  const auto w = options_.wall ? options_.wall() : std::chrono::system_clock::now();
  return std::chrono::time_point_cast<std::chrono::seconds>(w);
}

void JobTracker::observeStatus(const PodStatus& status, std::string_view cronjob) {
  if (status.job.empty() || status.uid.empty() || recorded_.contains(status.uid)) return;
  auto [it, added] = pods_.try_emplace(status.uid);
  Tracked& t = it->second;
  if (added) t.first_seen = wallNow();
  t.last_touch = now();
  if (!cronjob.empty()) t.cronjob = std::string(cronjob);
  // The two sources lag differently: an end, once seen, is not undone by a staler status.
  if (t.status && isTerminal(*t.status) && !isTerminal(status)) return;
  t.status = status;
  if (isTerminal(status) && !t.terminal_since) t.terminal_since = now();
}

void JobTracker::observeCgroup(const CgroupSample& s, bool gone) {
  const auto it = pods_.find(s.pod_uid);
  if (it == pods_.end()) return;
  Tracked& t = it->second;
  if (s.isPod()) {
    if (gone) {
      if (t.pod_seen && !t.gone_at) {
        t.gone_at = now();
        t.gone_wall = wallNow();
      }
      return;
    }
    t.pod_seen = true;
    t.seen_this_cycle = true;
    t.gone_at.reset();
    t.gone_wall.reset();
  }
  if (gone) return;  // a container's cgroup gone: its last readings stay
  PerContainer& c = s.isPod() ? t.pod : t.containers[s.container_id];
  using F = CgroupField;
  if (s.has(F::kCpuUsageNs)) {
    c.cpu_ns = s.get(F::kCpuUsageNs);
    c.has_cpu = true;
  }
  if (s.has(F::kMemMaxUsageBytes)) {
    c.peak = std::max(c.peak, s.get(F::kMemMaxUsageBytes));
    c.has_peak = true;
  } else if (s.has(F::kMemUsageBytes)) {
    // No high-water mark file: the highest usage seen is the best lower bound there is.
    c.peak = std::max(c.peak, s.get(F::kMemUsageBytes));
    c.has_peak = true;
  }
  if (s.has(F::kMemLimitBytes)) c.limit = s.get(F::kMemLimitBytes);
  if (s.has(F::kOomKills)) c.oom_kills = std::max(c.oom_kills, s.get(F::kOomKills));
}

void JobTracker::endCycle() {
  for (auto& [uid, t] : pods_) {
    if (t.pod_seen && !t.seen_this_cycle && !t.gone_at) {
      t.gone_at = now();
      t.gone_wall = wallNow();
    }
    t.seen_this_cycle = false;
  }
}

bool JobTracker::wants(std::string_view pod_uid) const { return pods_.contains(pod_uid); }

CgroupEvidence JobTracker::evidence(const Tracked& t) const {
  CgroupEvidence e;
  e.seen = t.pod_seen || !t.containers.empty();
  std::uint64_t cpu_sum = 0;
  bool any_cpu = false;
  std::uint64_t peak = 0;
  bool any_peak = false;
  std::uint64_t ooms = 0;
  std::uint64_t limit = 0;
  for (const auto& [id, c] : t.containers) {
    cpu_sum += c.cpu_ns;
    any_cpu = any_cpu || c.has_cpu;
    peak = std::max(peak, c.peak);
    any_peak = any_peak || c.has_peak;
    // cgroup v1 counts an OOM kill in the victim's own cgroup only (v2 also in its parents).
    ooms += c.oom_kills;
    limit = std::max(limit, c.limit);
  }
  if (t.pod.has_cpu) {
    e.cpu_ns = t.pod.cpu_ns;  // hierarchical: includes containers already removed
  } else if (any_cpu) {
    e.cpu_ns = cpu_sum;
  }
  if (t.pod.has_peak) {
    e.peak_memory_bytes = std::max(t.pod.peak, peak);
  } else if (any_peak) {
    e.peak_memory_bytes = peak;
  }
  e.oom_kills = std::max(t.pod.oom_kills, ooms);
  if (t.pod.limit > 0) limit = t.pod.limit;
  if (limit > 0) e.memory_limit_bytes = limit;
  return e;
}

std::vector<JobOutcome> JobTracker::settle() {
  std::vector<JobOutcome> out;
  const auto t_now = now();
  for (auto it = pods_.begin(); it != pods_.end();) {
    Tracked& t = it->second;
    const CgroupEvidence e = evidence(t);
    const bool terminal = t.status && isTerminal(*t.status);
    bool decide_now = false;
    if (terminal) {
      // Readings are final once the status is terminal (the processes have exited); a pod whose
      // cgroup was never read gets one collection to find it.
      decide_now = e.seen || t_now - *t.terminal_since >= options_.cgroup_wait;
    } else if (t.gone_at) {
      decide_now = t_now - *t.gone_at >= options_.status_wait;
    }
    if (!decide_now) {
      ++it;
      continue;
    }
    if (t.cronjob.empty() && options_.cronjob_of) t.cronjob = options_.cronjob_of(it->first);
    JobOutcome o =
        decide(t.status ? &*t.status : nullptr, e, it->first, t.cronjob, t.gone_wall, t.first_seen);
    if (o.job.empty()) o.job = t.status ? t.status->job : std::string();
    o.recorded_at_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (options_.wall ? options_.wall() : std::chrono::system_clock::now()).time_since_epoch())
            .count();
    out.push_back(o);
    record(std::move(o));
    it = pods_.erase(it);
  }
  prune();
  if (dirty_) save();
  return out;
}

void JobTracker::record(JobOutcome outcome) {
  recorded_.insert(outcome.pod_uid);
  pending_events_.insert(outcome.pod_uid);
  recent_.push_back(std::move(outcome));
  dirty_ = true;
}

std::vector<const JobOutcome*> JobTracker::pendingEvents() const {
  std::vector<const JobOutcome*> out;
  for (const auto& o : recent_) {
    if (pending_events_.contains(o.pod_uid)) out.push_back(&o);
  }
  return out;
}

void JobTracker::eventDurable(std::string_view pod_uid) {
  if (const auto it = pending_events_.find(pod_uid); it != pending_events_.end()) {
    pending_events_.erase(it);
    dirty_ = true;
    save();
  }
}

void JobTracker::prune() {
  const auto wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          (options_.wall ? options_.wall() : std::chrono::system_clock::now()).time_since_epoch())
          .count();
  const auto keep_ms = options_.retention.count();
  while (!recent_.empty() && (recent_.size() > static_cast<std::size_t>(options_.max_recent) ||
                              wall_ms - recent_.front().recorded_at_ms > keep_ms)) {
    recorded_.erase(recent_.front().pod_uid);
    pending_events_.erase(recent_.front().pod_uid);
    recent_.pop_front();
    dirty_ = true;
  }
  // A pod no status or reading has mentioned for the retention period (deleted while Pending,
  // before any cgroup existed) is forgotten without an outcome: there is nothing to say of it.
  const auto t_now = now();
  std::erase_if(pods_, [&](const auto& kv) {
    const Tracked& t = kv.second;
    return !t.gone_at && !t.pod_seen && t_now - t.last_touch > options_.retention;
  });
}

void JobTracker::load() {
  if (options_.state_file.empty()) return;
  std::ifstream in(options_.state_file);
  if (!in) return;  // first start
  std::string line;
  std::size_t bad = 0;
  while (std::getline(in, line)) {
    if (line.size() < 3 || (line[0] != '0' && line[0] != '1') || line[1] != ' ') {
      ++bad;
      continue;
    }
    auto o = fromJson(std::string_view(line).substr(2));
    if (!o || recorded_.contains(o->pod_uid)) {
      ++bad;
      continue;
    }
    recorded_.insert(o->pod_uid);
    if (line[0] == '1') pending_events_.insert(o->pod_uid);
    recent_.push_back(std::move(*o));
  }
  if (bad > 0) {
    errors_.report(kComponent, "state_file_bad_line",
                   options_.state_file.string() + ": " + std::to_string(bad) + " line(s) skipped");
  }
  prune();
}

void JobTracker::save() {
  dirty_ = false;
  if (options_.state_file.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(options_.state_file.parent_path(), ec);
  const auto tmp = options_.state_file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& o : recent_) {
      out << (pending_events_.contains(o.pod_uid) ? "1 " : "0 ") << toJson(o) << '\n';
    }
    out.flush();
    if (!out) {
      errors_.report(kComponent, "state_file_write", tmp + ": write failed");
      dirty_ = true;
      return;
    }
  }
  std::filesystem::rename(tmp, options_.state_file, ec);
  if (ec) {
    errors_.report(kComponent, "state_file_write",
                   options_.state_file.string() + ": " + ec.message());
    dirty_ = true;
  }
}

}  // namespace nodewarden::jobs
