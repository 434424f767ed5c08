// Builds kubelet's cgroupfs layout as real cgroups and removes it again, also on signals.
#include "bench/real_cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <span>
#include <string_view>
#include <utility>

namespace nodewarden::bench {
namespace {

namespace fs = std::filesystem;

// Every cgroup directory created and not yet removed, in creation order (parents first). The
// vector's capacity is reserved before the first mkdir, so the signal handler can walk it while
// build() appends: an element is published by the release store of g_count after it is complete.
std::vector<std::string> g_dirs;
std::atomic<std::size_t> g_count{0};
pid_t g_owner = 0;

// Removes the registered directories, deepest first; async-signal-safe (rmdir only).
std::size_t rmdirRegistered() {
  std::size_t failed = 0;
  for (std::size_t n = g_count.load(std::memory_order_acquire); n > 0; --n) {
    if (::rmdir(g_dirs[n - 1].c_str()) != 0 && errno != ENOENT) ++failed;
    g_count.store(n - 1, std::memory_order_release);
  }
  return failed;
}

extern "C" void onFatalSignal(int sig) {
  // The floor's forked child inherits this handler: only the process that made the cgroups
  // removes them.
  if (::getpid() == g_owner) rmdirRegistered();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void installHandlers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  g_owner = ::getpid();
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS}) {
    struct sigaction sa {};
    sa.sa_handler = onFatalSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(sig, &sa, nullptr);
  }
}

// splitmix64 (as synthetic_tree.cpp), seeded with the pid so that two runs never share ids.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + next() % (hi - lo + 1); }

 private:
  std::uint64_t state_;
};

std::string hex(Rng& rng, std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  while (s.size() < digits) {
    std::uint64_t v = rng.next();
    for (int i = 0; i < 16 && s.size() < digits; ++i, v >>= 4) s.push_back(kHex[v & 15]);
  }
  return s;
}

std::string podUid(Rng& rng) {
  std::string h = hex(rng, 32);
  h[12] = '4';
  h[16] = "89ab"[rng.next() % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

// The hierarchies a hybrid node's collector reads, with the files it reads in each (kFileSpecs in
// collectors/cgroup/cgroup_files.cpp; blkio's names are the _recursive ones it prefers).
struct HierarchySpec {
  const char* dir;         // below the cgroup root
  const char* controller;  // in /proc/self/cgroup; "" = the v2 line ("0::/path")
  std::vector<const char*> files;
};

const std::array<HierarchySpec, 6>& hierarchySpecs() {
  static const std::array<HierarchySpec, 6> specs = {
      HierarchySpec{
          "cpu", "cpu", {"cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"}},
      HierarchySpec{
          "cpuacct", "cpuacct", {"cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys"}},
      HierarchySpec{"memory",
                    "memory",
                    {"memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat",
                     "memory.oom_control", "memory.max_usage_in_bytes", "memory.failcnt",
                     "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes"}},
      HierarchySpec{
          "blkio",
          "blkio",
          {"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"}},
      HierarchySpec{"pids", "pids", {"pids.current", "pids.max"}},
      // cgroup.procs: the process series are read in the v2 tree on a hybrid host.
      HierarchySpec{
          "unified", "", {"cpu.pressure", "memory.pressure", "io.pressure", "cgroup.procs"}},
  };
  return specs;
}

// This process's cgroup path in the hierarchy of `controller` ("" = v2), from /proc/self/cgroup.
std::expected<std::string, std::string> selfCgroup(std::string_view controller) {
  std::ifstream in("/proc/self/cgroup");
  if (!in) return std::unexpected(std::string("cannot read /proc/self/cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string_view ctrls = std::string_view(line).substr(a + 1, b - a - 1);
    bool match = controller.empty() ? ctrls.empty() : false;
    for (std::size_t pos = 0; !controller.empty() && pos <= ctrls.size();) {
      const auto comma = std::min(ctrls.find(',', pos), ctrls.size());
      if (ctrls.substr(pos, comma - pos) == controller) match = true;
      pos = comma + 1;
    }
    if (match) return line.substr(b + 1);
  }
  return std::unexpected("no " + std::string(controller.empty() ? "v2" : controller) +
                         " line in /proc/self/cgroup");
}

bool writeValue(const fs::path& file, const std::string& value) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::write(fd, value.data(), value.size());
  ::close(fd);
  return n == static_cast<ssize_t>(value.size());
}

enum class Qos : std::uint8_t { kGuaranteed, kBurstable, kBestEffort };

struct PlannedCgroup {
  std::string rel;  // below kubepods
  std::int64_t quota_us = -1;
  std::uint64_t shares = 2;
  std::uint64_t limit_bytes = 0;  // 0: unlimited
  bool listed = false;            // a pod or container (its files are read)
  bool pod = false;
};

}  // namespace

RealCgroupTree::~RealCgroupTree() { remove(); }

std::expected<void, std::string> RealCgroupTree::build(const RealTreeOptions& options) {
  installHandlers();
  if (g_count.load() != 0) return std::unexpected(std::string("another real tree exists"));
  tree_ = SyntheticTree{};
  tree_.root = options.cgroup_root;
  tree_.layout = TreeLayout::kHybrid;
  parent_ = "nodewarden-bench-" + std::to_string(::getpid());
  created_ = 0;
  bases_.clear();
  hierarchy_names_.clear();
  for (const HierarchySpec& h : hierarchySpecs()) {
    auto self = selfCgroup(h.controller);
    if (!self) return std::unexpected(self.error());
    const fs::path mount = options.cgroup_root / h.dir;
    struct stat st {};
    if (::stat(mount.c_str(), &st) != 0) {
      return std::unexpected(mount.string() + " does not exist (needs a hybrid v1 host)");
    }
    std::string base = mount.string();
    if (*self != "/") base += *self;
    bases_.push_back(std::move(base));
    hierarchy_names_.push_back(h.dir);
  }

  // Pods as in synthetic_tree.cpp: 20% Guaranteed, 50% Burstable, 30% BestEffort; 2, 3, 4
  // containers in turn. Limits as kubelet writes them: quota and memory limit for limited
  // containers and for Guaranteed pods (their sum), shares for all.
  Rng rng(options.seed ^ (static_cast<std::uint64_t>(::getpid()) << 32));
  std::vector<PlannedCgroup> plan;
  plan.push_back({"", -1, 1024, 0, false, false});
  plan.push_back({"burstable", -1, 2, 0, false, false});
  plan.push_back({"besteffort", -1, 2, 0, false, false});
  std::size_t made = 0;
  for (std::size_t pod = 0; made < options.containers; ++pod) {
    const std::size_t slot = pod % 10;
    const Qos qos = slot < 2 ? Qos::kGuaranteed : slot < 7 ? Qos::kBurstable : Qos::kBestEffort;
    const std::size_t want = std::min<std::size_t>(2 + pod % 3, options.containers - made);
    const std::string qdir = qos == Qos::kGuaranteed  ? ""
                             : qos == Qos::kBurstable ? "burstable/"
                                                      : "besteffort/";
    PlannedCgroup p{qdir + "pod" + podUid(rng), -1, 0, 0, true, true};
    const std::size_t pod_index = plan.size();
    plan.push_back(p);
    for (std::size_t c = 0; c < want; ++c) {
      PlannedCgroup cn{p.rel + "/" + hex(rng, 64), -1, 2, 0, true, false};
      const std::uint64_t millicores = rng.between(1, 40) * 50;
      const bool limited =
          qos == Qos::kGuaranteed || (qos == Qos::kBurstable && rng.next() % 2 == 0);
      if (qos != Qos::kBestEffort) cn.shares = millicores * 1024 / 1000;
      if (limited) {
        cn.quota_us = static_cast<std::int64_t>(millicores * 100);
        cn.limit_bytes = rng.between(64, 8192) * 1024 * 1024;
      }
      plan[pod_index].shares += cn.shares;
      if (qos == Qos::kGuaranteed) {
        plan[pod_index].quota_us =
            std::max<std::int64_t>(plan[pod_index].quota_us, 0) + cn.quota_us;
        plan[pod_index].limit_bytes += cn.limit_bytes;
      }
      plan.push_back(std::move(cn));
    }
    if (plan[pod_index].shares < 2) plan[pod_index].shares = 2;
    ++tree_.pods;
    made += want;
  }
  tree_.containers = made;

  const std::size_t hierarchies = bases_.size();
  g_dirs.clear();
  g_dirs.reserve((plan.size() + 2) * hierarchies);
  const auto makeDir = [&](const std::string& dir) -> std::expected<void, std::string> {
    if (g_dirs.size() == g_dirs.capacity()) return std::unexpected(std::string("registry full"));
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return std::unexpected("mkdir " + dir + ": " + std::strerror(errno));
    }
    g_dirs.push_back(dir);
    g_count.store(g_dirs.size(), std::memory_order_release);
    ++created_;
    return {};
  };
  const auto fail = [&](std::string why) -> std::expected<void, std::string> {
    remove();
    return std::unexpected(std::move(why));
  };

  for (const std::string& base : bases_) {
    if (auto r = makeDir(base + "/" + parent_); !r) return fail(r.error());
  }
  std::size_t write_failures = 0;
  for (const PlannedCgroup& c : plan) {
    for (std::size_t h = 0; h < hierarchies; ++h) {
      std::string dir = bases_[h] + "/" + parent_ + "/kubepods";
      if (!c.rel.empty()) dir += "/" + c.rel;
      if (auto r = makeDir(dir); !r) return fail(r.error());
      const fs::path d = dir;
      if (hierarchy_names_[h] == "cpu") {
        if (!writeValue(d / "cpu.shares", std::to_string(c.shares))) ++write_failures;
        if (c.quota_us > 0 && !writeValue(d / "cpu.cfs_quota_us", std::to_string(c.quota_us))) {
          ++write_failures;
        }
      } else if (hierarchy_names_[h] == "memory" && c.limit_bytes > 0) {
        if (!writeValue(d / "memory.limit_in_bytes", std::to_string(c.limit_bytes))) {
          ++write_failures;
        }
      }
      if (c.listed || (options.aggregates && !c.pod && c.rel.find('/') == std::string::npos)) {
        for (const char* f : hierarchySpecs()[h].files) {
          fs::path p = d / f;
          struct stat st {};
          if (::stat(p.c_str(), &st) == 0) tree_.read_files.push_back(std::move(p));
        }
      }
      if (c.rel.empty() || c.rel == "burstable" || c.rel == "besteffort" || c.pod) {
        tree_.list_dirs.push_back(d);
      }
    }
  }
  if (options.aggregates) {
    for (const HierarchySpec& h : hierarchySpecs()) {
      for (const char* f : h.files) {
        fs::path p = options.cgroup_root / h.dir / f;
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) tree_.read_files.push_back(std::move(p));
      }
    }
    tree_.read_files.emplace_back("/proc/meminfo");
  }
  (void)write_failures;  // limits are realism only; a kernel refusing one changes no read path
  tree_.files_written = created_;
  return {};
}

std::size_t RealCgroupTree::remove() {
  if (g_owner != ::getpid()) return 0;
  const std::size_t failed = rmdirRegistered();
  g_dirs.clear();
  return failed;
}

std::vector<std::string> RealCgroupTree::leftovers() const {
  std::vector<std::string> out;
  for (const std::string& base : bases_) {
    const std::string p = base + "/" + parent_;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) out.push_back(p);
  }
  return out;
}

}  // namespace nodewarden::bench
