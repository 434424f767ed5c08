// NodeBuilder's work against the kernel: hierarchy discovery from mountinfo and /proc/self/cgroup,
// mkdir/rmdir of cgroups, limits (cgroup v1 docs: sched-bwc.rst, memory.rst; v2: cgroup-v2.rst),
// and the kubelet log layout (kubelet's kuberuntime_logs naming).
#include "tests/support/node_builder.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"

namespace nodewarden::testing {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kStalePrefix = "nodewarden-test-";

std::string errnoText(const std::string& what, int err) { return what + ": " + std::strerror(err); }

std::optional<std::string> readFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::expected<void, std::string> writeFile(const fs::path& path, std::string_view value) {
  // One write(2) per value: cgroup files take the whole value in one call.
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) return std::unexpected(errnoText("open " + path.string(), errno));
  std::setvbuf(f, nullptr, _IONBF, 0);
  const std::size_t n = std::fwrite(value.data(), 1, value.size(), f);
  const int err = errno;
  std::fclose(f);
  if (n != value.size()) {
    return std::unexpected(
        errnoText("write '" + std::string(value) + "' to " + path.string(), err));
  }
  return {};
}

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = text.find(sep, start);
    if (end == std::string_view::npos) {
      out.emplace_back(text.substr(start));
      break;
    }
    out.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<pid_t> readProcs(const fs::path& dir) {
  std::vector<pid_t> pids;
  auto text = readFile(dir / "cgroup.procs");
  if (!text) return pids;
  std::istringstream in(*text);
  long pid = 0;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

bool processAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// rmdir with retries: a v1 cgroup whose last task just exited may still be busy for a moment.
// Processes that are still inside are killed on each attempt.
std::expected<void, std::string> rmdirRetrying(const fs::path& dir,
                                               std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
    const int err = errno;
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::unexpected(errnoText("rmdir " + dir.string(), err));
    }
    for (const pid_t pid : readProcs(dir)) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(20ms);
  }
}

// Removes a cgroup tree bottom-up (the kernel's control files are not removable, only dirs).
std::expected<void, std::string> removeTree(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  std::vector<fs::path> subdirs;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) subdirs.push_back(entry.path());
  }
  std::string errors;
  for (const auto& sub : subdirs) {
    if (auto r = removeTree(sub); !r) errors += r.error() + "; ";
  }
  if (auto r = rmdirRetrying(dir); !r) errors += r.error();
  if (!errors.empty()) return std::unexpected(errors);
  return {};
}

std::uint64_t nextRandom() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<std::uint64_t>(::getpid()) ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  // splitmix64
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (counter.fetch_add(1) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string hex(std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  while (out.size() < digits) {
    std::uint64_t v = nextRandom();
    for (int i = 0; i < 16 && out.size() < digits; ++i, v >>= 4) out.push_back(kHex[v & 0xF]);
  }
  return out;
}

std::string underscored(std::string uid) {
  std::replace(uid.begin(), uid.end(), '-', '_');
  return uid;
}

const char* qosDir(PodQos qos) {
  switch (qos) {
    case PodQos::kBurstable:
      return "burstable";
    case PodQos::kBestEffort:
      return "besteffort";
    case PodQos::kGuaranteed:
      break;
  }
  return "";
}

struct ProcStat {
  pid_t ppid = 0;
  std::uint64_t ticks = 0;  // utime + stime + cutime + cstime
};

std::optional<ProcStat> readProcStat(const fs::path& proc_root, pid_t pid) {
  auto text = readFile(proc_root / std::to_string(pid) / "stat");
  if (!text) return std::nullopt;
  // proc(5): "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split after
  // the last ')'. Fields 14-17 are utime, stime, cutime, cstime in clock ticks.
  const std::size_t close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::string f;
  while (fields.size() < 15 && in >> f) fields.push_back(f);
  if (fields.size() < 15) return std::nullopt;
  ProcStat st;
  st.ppid = static_cast<pid_t>(std::stol(fields[1]));
  for (int i = 11; i <= 14; ++i) st.ticks += std::stoull(fields[static_cast<std::size_t>(i)]);
  return st;
}

double ticksPerSecond() {
  static const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return hz;
}

}  // namespace

const char* driverName(CgroupDriver driver) {
  return driver == CgroupDriver::kSystemd ? "systemd" : "cgroupfs";
}

const char* runtimeName(ContainerRuntime runtime) {
  switch (runtime) {
    case ContainerRuntime::kCrio:
      return "crio";
    case ContainerRuntime::kDocker:
      return "docker";
    case ContainerRuntime::kContainerd:
      break;
  }
  return "containerd";
}

const char* qosName(PodQos qos) {
  switch (qos) {
    case PodQos::kBurstable:
      return "Burstable";
    case PodQos::kBestEffort:
      return "BestEffort";
    case PodQos::kGuaranteed:
      break;
  }
  return "Guaranteed";
}

bool Hierarchy::has(std::string_view controller) const {
  if (v2) return controller == "unified" || pure_v2;
  return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
}

std::string makePodUid() {
  const std::string h = hex(32);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string makeContainerId() { return hex(64); }

ContainerSpec containerSpec(std::string name, std::int64_t cpu_quota_us,
                            std::int64_t memory_limit_bytes) {
  ContainerSpec spec;
  spec.name = std::move(name);
  spec.cpu_quota_us = cpu_quota_us;
  spec.memory_limit_bytes = memory_limit_bytes;
  return spec;
}

double processesCpuSeconds(const std::vector<pid_t>& pids, const fs::path& proc_root) {
  std::uint64_t ticks = 0;
  for (const pid_t pid : pids) {
    if (auto st = readProcStat(proc_root, pid)) ticks += st->ticks;
  }
  return static_cast<double>(ticks) / ticksPerSecond();
}

double processTreeCpuSeconds(pid_t root, const fs::path& proc_root) {
  std::multimap<pid_t, pid_t> children;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(proc_root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    if (auto st = readProcStat(proc_root, pid)) children.emplace(st->ppid, pid);
  }
  std::vector<pid_t> tree{root};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    auto [begin, end] = children.equal_range(tree[i]);
    for (auto it = begin; it != end; ++it) tree.push_back(it->second);
  }
  return processesCpuSeconds(tree, proc_root);
}

// ---------------------------------------------------------------------------------------------
// Container

Container::Container(Pod& pod, ContainerSpec spec, fs::path relative)
    : pod_(pod), spec_(std::move(spec)), relative_(std::move(relative)) {}

Container::~Container() {
  kill(2s);
  reapStarted();
}

std::optional<fs::path> Container::cgroupDir(std::string_view controller) const {
  for (const auto& h : pod_.node().hierarchies()) {
    if (h.has(controller)) return h.base / pod_.node().parent() / relative_;
  }
  return std::nullopt;
}

std::vector<fs::path> Container::cgroupDirs() const {
  std::vector<fs::path> dirs;
  for (const auto& h : pod_.node().hierarchies()) {
    dirs.push_back(h.base / pod_.node().parent() / relative_);
  }
  return dirs;
}

std::expected<std::uint64_t, std::string> Container::readUint(std::string_view controller,
                                                              std::string_view file) const {
  auto dir = cgroupDir(controller);
  if (!dir) return std::unexpected("no hierarchy with " + std::string(controller));
  auto text = readFile(*dir / file);
  if (!text) return std::unexpected("cannot read " + (*dir / file).string());
  try {
    return std::stoull(*text);
  } catch (const std::exception&) {
    return std::unexpected("not a number in " + (*dir / file).string() + ": " + *text);
  }
}

namespace {
std::expected<std::uint64_t, std::string> readKeyIn(const std::optional<fs::path>& dir,
                                                    std::string_view controller,
                                                    std::string_view file, std::string_view key) {
  if (!dir) return std::unexpected("no hierarchy with " + std::string(controller));
  auto text = readFile(*dir / file);
  if (!text) return std::unexpected("cannot read " + (*dir / file).string());
  std::istringstream in(*text);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::unexpected("no " + std::string(key) + " in " + (*dir / file).string());
}
}  // namespace

std::expected<std::uint64_t, std::string> Container::readKey(std::string_view controller,
                                                             std::string_view file,
                                                             std::string_view key) const {
  return readKeyIn(cgroupDir(controller), controller, file, key);
}

std::expected<pid_t, std::string> Container::run(const std::vector<std::string>& argv) {
  SpawnOptions options;
  const fs::path run_dir = pod_.node().tempDir() / "run";
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  options.output = run_dir / (pod_.name() + "_" + spec_.name + ".out");
  for (const auto& dir : cgroupDirs()) options.join_cgroup_procs.push_back(dir / "cgroup.procs");
  auto pid = spawnProcess(argv, options);
  if (pid) started_.push_back(*pid);
  return pid;
}

std::vector<pid_t> Container::pids() const {
  std::set<pid_t> all;
  for (const auto& dir : cgroupDirs()) {
    for (const pid_t pid : readProcs(dir)) all.insert(pid);
  }
  return {all.begin(), all.end()};
}

void Container::reapStarted() {
  std::erase_if(started_, [](pid_t pid) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
  });
}

bool Container::kill(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Direct children first, so they can be reaped and leave; then whatever is in the cgroups
    // (forked workers, or a process that joined by itself).
    for (const pid_t pid : started_) ::kill(pid, SIGKILL);
    reapStarted();
    const auto left = pids();
    if (left.empty() && started_.empty()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    for (const pid_t pid : left) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(10ms);
  }
}

bool Container::stop(std::chrono::milliseconds grace) {
  for (const pid_t pid : pids()) ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    reapStarted();
    if (pids().empty() && started_.empty()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return kill();
}

// ---------------------------------------------------------------------------------------------
// Pod

Pod::Pod(NodeBuilder& node, std::string ns, std::string name, std::string uid, PodQos qos,
         fs::path relative)
    : node_(node),
      namespace_(std::move(ns)),
      name_(std::move(name)),
      uid_(std::move(uid)),
      qos_(qos),
      relative_(std::move(relative)) {}

std::optional<fs::path> Pod::cgroupDir(std::string_view controller) const {
  for (const auto& h : node_.hierarchies()) {
    if (h.has(controller)) return h.base / node_.parent() / relative_;
  }
  return std::nullopt;
}

std::expected<std::uint64_t, std::string> Pod::readKey(std::string_view controller,
                                                       std::string_view file,
                                                       std::string_view key) const {
  return readKeyIn(cgroupDir(controller), controller, file, key);
}

fs::path Pod::logDir() const { return node_.logRoot() / (namespace_ + "_" + name_ + "_" + uid_); }

Container* Pod::container(std::string_view name) const {
  for (const auto& c : containers_) {
    if (c->name() == name) return c.get();
  }
  return nullptr;
}

std::expected<Container*, std::string> Pod::addContainer(ContainerSpec spec) {
  if (spec.name.empty()) return std::unexpected("container name is empty");
  if (container(spec.name) != nullptr) return std::unexpected("duplicate container " + spec.name);
  if (spec.id.empty()) spec.id = makeContainerId();
  if (spec.id.size() != 64) return std::unexpected("container id must be 64 hex: " + spec.id);
  if (qos_ == PodQos::kBestEffort && (spec.cpu_quota_us >= 0 || spec.memory_limit_bytes >= 0)) {
    return std::unexpected("a BestEffort pod has no limits");
  }
  const fs::path relative = relative_ / node_.containerDirName(spec.id);
  if (auto r = node_.makeCgroup(relative); !r) return std::unexpected(r.error());
  containers_.push_back(std::make_unique<Container>(*this, std::move(spec), relative));
  Container& c = *containers_.back();

  // The pod's limits first: in v1 a child's CFS quota may not exceed its parent's (EINVAL).
  if (auto r = updatePodLimits(); !r) return std::unexpected(r.error());
  const ContainerSpec& s = c.spec();
  for (const auto& h : node_.hierarchies()) {
    const fs::path dir = h.base / node_.parent() / relative;
    if (s.cpu_quota_us >= 0) {
      if (!h.v2 && h.has("cpu")) {
        if (auto r = writeFile(dir / "cpu.cfs_period_us", std::to_string(s.cpu_period_us)); !r)
          return std::unexpected(r.error());
        if (auto r = writeFile(dir / "cpu.cfs_quota_us", std::to_string(s.cpu_quota_us)); !r)
          return std::unexpected(r.error());
      } else if (h.v2 && fs::exists(dir / "cpu.max")) {
        const std::string max =
            std::to_string(s.cpu_quota_us) + " " + std::to_string(s.cpu_period_us);
        if (auto r = writeFile(dir / "cpu.max", max); !r) return std::unexpected(r.error());
      }
    }
    if (s.memory_limit_bytes >= 0) {
      if (!h.v2 && h.has("memory")) {
        if (auto r = writeFile(dir / "memory.limit_in_bytes", std::to_string(s.memory_limit_bytes));
            !r)
          return std::unexpected(r.error());
      } else if (h.v2 && fs::exists(dir / "memory.max")) {
        if (auto r = writeFile(dir / "memory.max", std::to_string(s.memory_limit_bytes)); !r)
          return std::unexpected(r.error());
      }
    }
  }

  // Kubelet's log layout: /var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log, and the
  // /var/log/containers/<pod>_<ns>_<container>-<id>.log symlink to it.
  std::error_code ec;
  const fs::path dir = logDir() / s.name;
  fs::create_directories(dir, ec);
  if (ec) return std::unexpected("mkdir " + dir.string() + ": " + ec.message());
  c.log_file_ = dir / "0.log";
  {
    std::ofstream log(c.log_file_, std::ios::trunc);
    log << "2026-11-21T10:00:00.000000000Z stdout F hello from " << s.name << "\n"
        << "2026-11-21T10:00:00.500000000Z stderr P partial line from " << s.name << " \n"
        << "2026-11-21T10:00:00.500000001Z stderr F continued\n"
        << "2026-11-21T10:00:01.000000000Z stdout F ready\n";
    if (!log) return std::unexpected("cannot write " + c.log_file_.string());
  }
  fs::create_directories(node_.containerLogDir(), ec);
  c.log_link_ =
      node_.containerLogDir() / (name_ + "_" + namespace_ + "_" + s.name + "-" + s.id + ".log");
  fs::remove(c.log_link_, ec);
  fs::create_symlink(c.log_file_, c.log_link_, ec);
  if (ec) return std::unexpected("symlink " + c.log_link_.string() + ": " + ec.message());
  return &c;
}

std::expected<void, std::string> Pod::updatePodLimits() {
  if (qos_ == PodQos::kBestEffort) return {};
  std::int64_t quota = 0;
  std::int64_t period = 100000;
  std::int64_t memory = 0;
  bool all_cpu = true;
  bool all_memory = true;
  for (const auto& c : containers_) {
    const ContainerSpec& s = c->spec();
    if (s.cpu_quota_us < 0) {
      all_cpu = false;
    } else {
      // Kubelet converts each container's limit to the pod's period; all tests use one period.
      period = s.cpu_period_us;
      quota += s.cpu_quota_us;
    }
    if (s.memory_limit_bytes < 0) {
      all_memory = false;
    } else {
      memory += s.memory_limit_bytes;
    }
  }
  for (const auto& h : node_.hierarchies()) {
    const fs::path dir = h.base / node_.parent() / relative_;
    if (!h.v2 && h.has("cpu")) {
      if (all_cpu) {
        if (auto r = writeFile(dir / "cpu.cfs_period_us", std::to_string(period)); !r) return r;
      }
      if (auto r = writeFile(dir / "cpu.cfs_quota_us", std::to_string(all_cpu ? quota : -1)); !r)
        return r;
    } else if (h.v2 && fs::exists(dir / "cpu.max")) {
      const std::string max =
          (all_cpu ? std::to_string(quota) : std::string("max")) + " " + std::to_string(period);
      if (auto r = writeFile(dir / "cpu.max", max); !r) return r;
    }
    if (!h.v2 && h.has("memory")) {
      const std::string limit = all_memory ? std::to_string(memory) : std::string("-1");
      if (auto r = writeFile(dir / "memory.limit_in_bytes", limit); !r) return r;
    } else if (h.v2 && fs::exists(dir / "memory.max")) {
      if (auto r = writeFile(dir / "memory.max", all_memory ? std::to_string(memory) : "max"); !r)
        return r;
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// NodeBuilder

NodeBuilder::NodeBuilder(NodeBuilderOptions options) : options_(std::move(options)) {}

NodeBuilder::~NodeBuilder() { (void)cleanup(); }

std::expected<std::vector<Hierarchy>, std::string> NodeBuilder::discoverHierarchies(
    const fs::path& cgroup_root, const fs::path& proc_root) {
  static const std::set<std::string> kWanted = {"cpu", "cpuacct", "memory", "blkio", "pids"};
  auto mountinfo = readFile(proc_root / "self" / "mountinfo");
  auto self_cgroup = readFile(proc_root / "self" / "cgroup");
  if (!mountinfo || !self_cgroup) {
    return std::unexpected("cannot read " + (proc_root / "self").string() + "/{mountinfo,cgroup}");
  }
  // /proc/self/cgroup: "<id>:<controllers>:<path>"; v2 is "0::<path>".
  std::map<std::set<std::string>, std::string> own;  // controller set ({} for v2) -> path
  for (const auto& line : split(*self_cgroup, '\n')) {
    const std::size_t a = line.find(':');
    const std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::set<std::string> set;
    if (!controllers.empty()) {
      for (auto& c : split(controllers, ',')) set.insert(c);
    }
    own[set] = line.substr(b + 1);
  }
  const std::string root = fs::weakly_canonical(cgroup_root).string();
  std::vector<Hierarchy> out;
  for (const auto& line : split(*mountinfo, '\n')) {
    // mountinfo (proc(5)): id parent major:minor root mount-point options ... - fstype src super
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash));
    std::istringstream tail(line.substr(dash + 3));
    std::string id, parent, dev, mroot, mpoint, fstype, source, super;
    head >> id >> parent >> dev >> mroot >> mpoint;
    tail >> fstype >> source >> super;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    if (mpoint != root && !mpoint.starts_with(root + "/")) continue;
    Hierarchy h;
    h.mount = mpoint;
    std::string own_path;
    if (fstype == "cgroup2") {
      h.v2 = true;
      h.pure_v2 = mpoint == root;
      auto it = own.find({});
      if (it == own.end()) continue;
      own_path = it->second;
    } else {
      std::set<std::string> set;
      for (auto& opt : split(super, ',')) {
        if (kWanted.contains(opt)) h.controllers.push_back(opt);
        if (opt.starts_with("name=") || kWanted.contains(opt) || opt == "cpuset" ||
            opt == "devices" || opt == "freezer" || opt == "net_cls" || opt == "net_prio" ||
            opt == "perf_event" || opt == "hugetlb" || opt == "rdma" || opt == "misc") {
          set.insert(opt);
        }
      }
      if (h.controllers.empty()) continue;
      auto it = own.find(set);
      if (it == own.end()) {
        return std::unexpected("no line for " + super + " in /proc/self/cgroup");
      }
      own_path = it->second;
    }
    // Inside a cgroup namespace or a bind mount the mount's root is not "/": our path is relative
    // to it.
    if (mroot != "/" && own_path.starts_with(mroot)) own_path = own_path.substr(mroot.size());
    while (!own_path.empty() && own_path.front() == '/') own_path.erase(0, 1);
    h.base = own_path.empty() ? h.mount : h.mount / own_path;
    out.push_back(std::move(h));
  }
  if (out.empty()) return std::unexpected("no cgroup hierarchy mounted below " + root);
  return out;
}

std::size_t NodeBuilder::sweepStaleParents(const std::vector<Hierarchy>& hierarchies) {
  std::size_t removed = 0;
  for (const auto& h : hierarchies) {
    std::error_code ec;
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(h.base, ec)) {
      const std::string name = entry.path().filename().string();
      if (!name.starts_with(kStalePrefix) || !entry.is_directory(ec)) continue;
      const std::string rest = name.substr(kStalePrefix.size());
      const std::size_t dash = rest.find('-');
      if (dash == 0 || dash == std::string::npos) continue;
      const std::string pid_text = rest.substr(0, dash);
      if (!std::all_of(pid_text.begin(), pid_text.end(), ::isdigit)) continue;
      if (processAlive(static_cast<pid_t>(std::stol(pid_text)))) continue;
      stale.push_back(entry.path());
    }
    for (const auto& dir : stale) {
      if (removeTree(dir)) ++removed;
    }
  }
  return removed;
}

std::expected<std::unique_ptr<NodeBuilder>, std::string> NodeBuilder::create(
    NodeBuilderOptions options) {
  static std::atomic<int> counter{0};
  if (options.parent.empty()) {
    options.parent = std::string(kStalePrefix) + std::to_string(::getpid()) + "-" +
                     std::to_string(counter.fetch_add(1));
  }
  if (options.parent.find('/') != std::string::npos) {
    return std::unexpected("parent must be one directory name: " + options.parent);
  }
  auto hierarchies = discoverHierarchies(options.cgroup_root, options.proc_root);
  if (!hierarchies) return std::unexpected(hierarchies.error());
  std::unique_ptr<NodeBuilder> node(new NodeBuilder(std::move(options)));
  node->hierarchies_ = std::move(*hierarchies);
  if (node->options_.sweep_stale) sweepStaleParents(node->hierarchies_);
  std::error_code ec;
  if (node->options_.temp_dir.empty()) {
    std::string tmpl = (fs::temp_directory_path(ec) / (node->options_.parent + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      return std::unexpected(errnoText("mkdtemp " + tmpl, errno));
    node->options_.temp_dir = tmpl;
    node->own_temp_dir_ = true;
  }
  fs::create_directories(node->logRoot(), ec);
  if (ec) return std::unexpected("mkdir " + node->logRoot().string() + ": " + ec.message());
  fs::create_directories(node->containerLogDir(), ec);
  if (auto r = node->makeCgroup({}); !r) return std::unexpected(r.error());
  return node;
}

fs::path NodeBuilder::logRoot() const { return options_.temp_dir / "var" / "log" / "pods"; }

fs::path NodeBuilder::containerLogDir() const {
  return options_.temp_dir / "var" / "log" / "containers";
}

std::vector<fs::path> NodeBuilder::parentDirs() const {
  std::vector<fs::path> dirs;
  for (const auto& h : hierarchies_) dirs.push_back(h.base / options_.parent);
  return dirs;
}

Pod* NodeBuilder::pod(std::string_view name) const {
  for (const auto& p : pods_) {
    if (p->name() == name) return p.get();
  }
  return nullptr;
}

fs::path NodeBuilder::podRelativePath(const std::string& uid, PodQos qos) const {
  if (options_.driver == CgroupDriver::kCgroupfs) {
    fs::path p = "kubepods";
    if (qos != PodQos::kGuaranteed) p /= qosDir(qos);
    return p / ("pod" + uid);
  }
  fs::path p = "kubepods.slice";
  const std::string u = underscored(uid);
  if (qos == PodQos::kGuaranteed) return p / ("kubepods-pod" + u + ".slice");
  const std::string q = qosDir(qos);
  return p / ("kubepods-" + q + ".slice") / ("kubepods-" + q + "-pod" + u + ".slice");
}

std::string NodeBuilder::containerDirName(const std::string& id) const {
  if (options_.driver == CgroupDriver::kCgroupfs) {
    // containerd and dockershim/cri-dockerd use the bare id; CRI-O prefixes it even here.
    return options_.runtime == ContainerRuntime::kCrio ? "crio-" + id : id;
  }
  switch (options_.runtime) {
    case ContainerRuntime::kCrio:
      return "crio-" + id + ".scope";
    case ContainerRuntime::kDocker:
      return "docker-" + id + ".scope";
    case ContainerRuntime::kContainerd:
      break;
  }
  return "cri-containerd-" + id + ".scope";
}

std::expected<void, std::string> NodeBuilder::makeCgroup(const fs::path& relative) {
  // Every prefix of relative, shortest first, so created_ stays in creation order.
  std::vector<fs::path> prefixes{fs::path{}};
  fs::path acc;
  for (const auto& part : relative) {
    acc /= part;
    prefixes.push_back(acc);
  }
  for (const auto& rel : prefixes) {
    if (std::find(created_.begin(), created_.end(), rel) != created_.end()) continue;
    for (const auto& h : hierarchies_) {
      const fs::path dir = rel.empty() ? h.base / options_.parent : h.base / options_.parent / rel;
      if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        return std::unexpected(errnoText("mkdir " + dir.string(), errno));
      }
      // Pure v2: pass every available controller down, except into a container (a leaf).
      if (h.pure_v2 && rel != relative) {
        if (auto avail = readFile(dir / "cgroup.controllers")) {
          for (const auto& c : split(*avail, ' ')) {
            std::string name = c;
            while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) {
              name.pop_back();
            }
            if (!name.empty()) (void)writeFile(dir / "cgroup.subtree_control", "+" + name);
          }
        }
      }
    }
    created_.push_back(rel);
  }
  return {};
}

std::expected<void, std::string> NodeBuilder::removeCgroup(const fs::path& relative) {
  std::string errors;
  for (const auto& h : hierarchies_) {
    const fs::path dir =
        relative.empty() ? h.base / options_.parent : h.base / options_.parent / relative;
    if (auto r = rmdirRetrying(dir); !r) errors += r.error() + "; ";
  }
  std::erase(created_, relative);
  if (!errors.empty()) return std::unexpected(errors);
  return {};
}

std::expected<void, std::string> NodeBuilder::removeLogs(Pod& pod) {
  std::error_code ec;
  for (const auto& c : pod.containers_) {
    if (!c->log_link_.empty()) fs::remove(c->log_link_, ec);
  }
  fs::remove_all(pod.logDir(), ec);
  if (ec) return std::unexpected("remove " + pod.logDir().string() + ": " + ec.message());
  return {};
}

std::expected<Pod*, std::string> NodeBuilder::addPod(std::string ns, std::string name,
                                                     std::string uid, PodQos qos) {
  if (ns.empty() || name.empty()) return std::unexpected("pod needs a namespace and a name");
  if (pod(name) != nullptr) return std::unexpected("duplicate pod " + name);
  if (uid.empty()) uid = makePodUid();
  fs::path relative = podRelativePath(uid, qos);
  if (auto r = makeCgroup(relative); !r) return std::unexpected(r.error());
  pods_.push_back(
      std::make_unique<Pod>(*this, std::move(ns), std::move(name), std::move(uid), qos, relative));
  std::error_code ec;
  fs::create_directories(pods_.back()->logDir(), ec);
  return pods_.back().get();
}

std::expected<void, std::string> NodeBuilder::removePod(Pod& pod) {
  std::string errors;
  for (const auto& c : pod.containers_) {
    if (!c->kill()) errors += "processes left in " + c->name() + "; ";
  }
  for (auto it = pod.containers_.rbegin(); it != pod.containers_.rend(); ++it) {
    if (auto r = removeCgroup((*it)->relativePath()); !r) errors += r.error();
  }
  if (auto r = removeCgroup(pod.relativePath()); !r) errors += r.error();
  if (auto r = removeLogs(pod); !r) errors += r.error();
  std::erase_if(pods_, [&](const auto& p) { return p.get() == &pod; });
  if (!errors.empty()) return std::unexpected(errors);
  return {};
}

std::expected<void, std::string> NodeBuilder::cleanup() {
  std::string errors;
  while (!pods_.empty()) {
    if (auto r = removePod(*pods_.back()); !r) errors += r.error();
  }
  // What is left are the shared parents (kubepods, QoS classes, the node's parent), newest first.
  while (!created_.empty()) {
    const fs::path rel = created_.back();
    if (auto r = removeCgroup(rel); !r) errors += r.error();
  }
  std::error_code ec;
  if (own_temp_dir_) {
    fs::remove_all(options_.temp_dir, ec);
    own_temp_dir_ = false;
  }
  if (!errors.empty()) return std::unexpected(errors);
  return {};
}

}  // namespace nodewarden::testing
