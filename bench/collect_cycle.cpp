// bench_collect_cycle: CPU time and heap allocations of one CgroupCollector cycle on kubelet trees
// of 100..5000 containers, printed next to the floor (the same files, only read). Two kinds of
// tree: --tree=tmpfs writes synthetic trees as regular files (any host, hybrid and v2 layouts);
// --tree=real makes real cgroups on this kernel (hybrid v1 + unified host, root), where every read
// runs the kernel's seq_file show function as on a node. Default: both.
//
// What a reader gets wrong: the figures are not pass/fail. Collector and floor cycles are
// interleaved (and their order flipped every round) so machine noise falls on both; compare the
// ratio and the growth per container, not the absolute microseconds, which depend on the host.
// On tmpfs a read is a page-cache copy, so only the real-cgroup ratio says what a node pays.
#include <fcntl.h>
#include <malloc.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "bench/alloc_counter.h"
#include "bench/read_floor.h"
#include "bench/real_cgroups.h"
#include "bench/synthetic_tree.h"
#include "collectors/cgroup/cgroup_collector.h"
#include "pipeline/container_metadata.h"
#include "pipeline/self_metrics.h"
#include "pipeline/snapshot.h"

namespace nodewarden::bench {
namespace {

namespace fs = std::filesystem;

enum class Only : std::uint8_t { kBoth, kCollector, kFloor };

struct Args {
  std::vector<std::size_t> sizes{100, 1000, 5000};
  std::vector<TreeLayout> layouts{TreeLayout::kHybrid, TreeLayout::kV2};
  bool tmpfs = true;
  bool real = true;
  Only only = Only::kBoth;  // kCollector/kFloor: run one side only (for perf record)
  int cycles = 0;           // 0: 50 up to 1000 containers, 15 above
  int warmup = 3;
  double real_build_budget_s = 120;  // skip a real size whose mkdirs would take longer
  bool metadata = false;             // --metadata: names from a metadata source (BenchMetadata)
  bool aggregates = false;  // --aggregates: also the root, kubepods and QoS cgroups, both sides
  // --fd-scan-interval=MS, --max-fd-scan=N: the descriptor count's cadence and per-cycle budget
  // (the agent's defaults unless given; 0 ms counts every due container every cycle).
  std::optional<long> fd_scan_interval_ms;
  std::optional<std::size_t> max_fd_scan;
  int process = 0;  // the process every synthetic container's cgroup.procs lists
};

// --metadata: a source that names every pod and container from its uid or id, except the pods
// and containers whose uid or id ends in '0' (one in 16), which it does not know: their cgroups
// stay unnamed, as a new pod's do until a source lists it. Its view never changes, so the
// figures are the collector's steady state with a metadata source and some unnamed cgroups.
class BenchMetadata final : public ContainerMetadata {
 public:
  void refresh() override {}
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override {
    if (id.empty() || id.back() == '0') return std::nullopt;
    return ContainerIdentity{"",
                             "bench",
                             "pod-" + std::string(id.substr(0, 12)),
                             "c-" + std::string(id.substr(0, 8)),
                             "registry.example/bench:1",
                             false};
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    if (uid.empty() || uid.back() == '0') return std::nullopt;
    PodIdentity p;
    p.namespace_name = "bench";
    p.pod_name = "pod-" + std::string(uid.substr(0, 8));
    return p;
  }
};

// Which samples, descriptors and paths belong to the tree under test: everything for a tmpfs
// tree; on real cgroups only what contains the tree's parent name (other kubepods trees on the
// host are found and read by the collector too, and must not be counted as ours).
struct Ownership {
  std::string marker;  // "" = all
  [[nodiscard]] bool owns(std::string_view path_or_id) const {
    return marker.empty() || path_or_id.find(marker) != std::string_view::npos;
  }
};

struct Summary {
  double median = 0;
  double p90 = 0;
  double min = 0;
};

Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  s.median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.p90 = v[std::min(n - 1, (n * 9 + 9) / 10 - 1)];
  s.min = v.front();
  return s;
}

struct Row {
  std::size_t containers = 0;
  std::size_t pods = 0;
  std::size_t read_files = 0;
  std::size_t samples = 0;
  int cycles = 0;
  double first_cycle_us = 0;
  std::uint64_t first_cycle_allocs = 0;
  Summary cpu_us, wall_us, user_us, sys_us;
  double allocs_median = 0;
  std::uint64_t allocs_max = 0;
  std::uint64_t alloc_bytes_total = 0;
  double heap_kib = 0;
  Summary floor_us, orc_us, ls_us;
  std::size_t floor_kept = 0;
  std::size_t collector_files = 0;  // files the collector holds open (CgroupCollectorStats)
};

double us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::size_t heapInUse() {
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Every descriptor this process holds, by target path.
std::vector<std::string> openFdTargets() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
    std::error_code lec;
    const fs::path target = fs::read_symlink(e.path(), lec);
    if (!lec) out.push_back(target.string());
  }
  return out;
}

void raiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::size_t fdLimit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// Compares the files the collector holds open with the generator's read list, by file name, so
// that a floor reading a different set than the collector is visible in the output.
// Returns how many files of the tree the collector holds open.
std::size_t printFdCheck(const SyntheticTree& tree, const std::vector<std::string>& held_all,
                         const Ownership& own) {
  const std::string prefix = tree.root.string() + "/";
  const std::string proc_prefix = tree.proc_root.empty() ? prefix : tree.proc_root.string() + "/";
  std::set<std::string> held;
  for (const auto& t : held_all) {
    std::error_code ec;
    if ((t.starts_with(prefix) || t.starts_with(proc_prefix)) && own.owns(t) &&
        !fs::is_directory(t, ec)) {
      held.insert(t);
    }
  }
  std::map<std::string, std::size_t> read_not_held, held_not_read;
  std::set<std::string> listed;
  for (const auto& p : tree.read_files) {
    listed.insert(p.string());
    if (!held.contains(p.string())) ++read_not_held[p.filename().string()];
  }
  for (const auto& h : held) {
    if (!listed.contains(h)) ++held_not_read[fs::path(h).filename().string()];
  }
  std::printf(
      "    fd check: collector holds %zu files of the tree open; floor list has %zu files\n",
      held.size(), tree.read_files.size());
  const auto dump = [](const char* what, const std::map<std::string, std::size_t>& m) {
    if (m.empty()) return;
    std::printf("      %s:", what);
    for (const auto& [name, n] : m) std::printf(" %s x%zu", name.c_str(), n);
    std::printf("\n");
  };
  dump("in floor list, not held open by the collector", read_not_held);
  dump("held open by the collector, not in floor list", held_not_read);
  return held.size();
}

void printErrors(SelfMetrics& metrics) {
  const std::string text = prometheus::TextSerializer().Serialize(metrics.registry().Collect());
  std::size_t start = 0;
  bool any = false;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    if (line.starts_with("nodewarden_errors_total")) {
      std::printf("    error counter: %.*s\n", static_cast<int>(line.size()), line.data());
      any = true;
    }
    start = end + 1;
  }
  if (!any) std::printf("    error counters: none\n");
}

// NaN (printed "nan") when a side did not run (--only).
double ratio(double a, double b) {
  return a > 0 && b > 0 ? a / b : std::numeric_limits<double>::quiet_NaN();
}

// Collector vs floor on one built tree: discovery cycle, warm-up, then interleaved A/B cycles.
std::expected<Row, std::string> measure(const SyntheticTree& tree, const Ownership& own,
                                        const fs::path& log_root, const Args& args) {
  Row row;
  row.containers = tree.containers;
  row.pods = tree.pods;
  row.read_files = tree.read_files.size();
  row.cycles = args.cycles > 0 ? args.cycles : (tree.containers <= 1000 ? 50 : 15);
  const bool run_collector = args.only != Only::kFloor;
  const bool run_floor = args.only != Only::kCollector;

  // The floor runs in its own process (own descriptor table), forked before the collector exists.
  std::optional<FloorProcess> floor;
  if (run_floor) {
    floor.emplace(tree.read_files, tree.list_dirs);
    if (!floor->ok()) return std::unexpected("cannot start the floor process");
    row.floor_kept = floor->keptOpen();
  }

  SelfMetrics metrics;
  ErrorReporter errors(metrics.registry());
  CgroupCollectorOptions copt;
  copt.cgroup_root = tree.root;
  // A tmpfs tree brings its own /proc with each pod's net/dev; real cgroups use the host's (their
  // cgroups hold no process, so no pod network is read there).
  copt.proc_root = tree.proc_root.empty() ? fs::path("/proc") : tree.proc_root;
  copt.log_root = log_root;
  copt.aggregates = args.aggregates;
  if (args.fd_scan_interval_ms) {
    copt.fd_scan_interval = std::chrono::milliseconds(*args.fd_scan_interval_ms);
  }
  if (args.max_fd_scan) copt.max_fd_scan_processes = *args.max_fd_scan;
  BenchMetadata metadata;
  if (args.metadata) copt.metadata = &metadata;
  const std::size_t heap0 = heapInUse();
  std::optional<CgroupCollector> collector;
  Snapshot snapshot;
  if (run_collector) {
    collector.emplace(copt, errors);
    // First cycle: discovery (finds kubepods, opens files). Reported apart from steady state.
    {
      const AllocCounter allocs;
      const CostMeter meter;
      snapshot.reset();
      collector->collect(snapshot);
      row.first_cycle_us = us(meter.stop().cpu_ns);
      row.first_cycle_allocs = allocs.count().allocs;
    }
    for (int i = 1; i < args.warmup; ++i) {
      snapshot.reset();
      collector->collect(snapshot);
    }
    row.heap_kib = static_cast<double>(heapInUse() - std::min(heap0, heapInUse())) / 1024.0;
    std::size_t with_cpu = 0, with_ws = 0, with_psi = 0, with_io = 0, with_net = 0, foreign = 0;
    for (const CgroupSample* s : snapshot.cgroups) {
      if (!own.owns(s->id)) {
        ++foreign;
        continue;
      }
      ++row.samples;
      with_cpu += s->has(CgroupField::kCpuUsageNs) ? 1 : 0;
      with_ws += s->has(CgroupField::kMemWorkingSetBytes) ? 1 : 0;
      with_psi += s->has(CgroupField::kPsiCpuSomeUs) ? 1 : 0;
      with_io += s->io_present ? 1 : 0;
      with_net += s->net_present ? 1 : 0;
    }
    const CgroupCollectorStats st = collector->stats();
    std::printf(
        "    collector: %zu samples (expected %zu); cpu usage in %zu, working set in %zu, "
        "cpu PSI in %zu, io in %zu, network in %zu; stats: pods %zu containers %zu hierarchies "
        "%zu kubepods roots %zu open files %zu\n",
        row.samples, tree.pods + tree.containers, with_cpu, with_ws, with_psi, with_io, with_net,
        st.pods, st.containers, st.hierarchies, st.kubepods_roots, st.open_files);
    if (foreign > 0) {
      std::printf(
          "    WARNING: the collector also reads %zu cgroups of other kubepods trees on this host; "
          "its cycle cost includes them, the floor's does not\n",
          foreign);
    }
    row.collector_files = printFdCheck(tree, openFdTargets(), own);
  }
  if (floor && floor->keptOpen() < floor->files()) {
    std::printf(
        "    floor: RLIMIT_NOFILE %zu lets its process keep %zu of %zu files open; the rest "
        "are opened in chunks each cycle, outside the timed pread()s\n",
        fdLimit(), floor->keptOpen(), floor->files());
  }
  FloorRound round;
  if (floor) {
    for (int i = 0; i < 2; ++i) floor->round(round);
  }

  std::vector<double> cpu, wall, user, sys, allocs, fl, orc, ls;
  std::size_t floor_errors = 0;
  const auto collectorCycle = [&] {
    if (!collector) return;
    const AllocCounter counter;
    const CostMeter meter;
    snapshot.reset();
    collector->collect(snapshot);
    const CycleCost c = meter.stop();
    const AllocCount a = counter.count();
    cpu.push_back(us(c.cpu_ns));
    wall.push_back(us(c.wall_ns));
    user.push_back(static_cast<double>(c.user_us));
    sys.push_back(static_cast<double>(c.sys_us));
    allocs.push_back(static_cast<double>(a.allocs));
    row.allocs_max = std::max(row.allocs_max, a.allocs);
    row.alloc_bytes_total += a.bytes;
  };
  const auto floorCycles = [&] {
    if (!floor) return true;
    if (!floor->round(round)) return false;
    fl.push_back(us(round.pread.cpu_ns));
    orc.push_back(us(round.open_read_close.cpu_ns));
    ls.push_back(us(round.list.cpu_ns));
    floor_errors += round.pread.errors + round.open_read_close.errors + round.list.errors;
    return true;
  };
  for (int i = 0; i < row.cycles; ++i) {
    bool floor_ok = true;
    if (i % 2 == 0) {
      collectorCycle();
      floor_ok = floorCycles();
    } else {
      floor_ok = floorCycles();
      collectorCycle();
    }
    if (!floor_ok) return std::unexpected("the floor process stopped answering");
  }
  if (floor_errors != 0) std::printf("    floor: %zu read errors\n", floor_errors);
  row.cpu_us = summarize(cpu);
  row.wall_us = summarize(wall);
  row.user_us = summarize(user);
  row.sys_us = summarize(sys);
  row.allocs_median = summarize(allocs).median;
  row.floor_us = summarize(fl);
  row.orc_us = summarize(orc);
  row.ls_us = summarize(ls);
  if (collector) printErrors(metrics);
  return row;
}

std::expected<Row, std::string> runTmpfs(TreeLayout layout, std::size_t containers,
                                         const Args& args) {
  auto dir = makeTempDir("nodewarden-bench");
  if (!dir) return std::unexpected(dir.error());
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{*dir};

  SyntheticTreeOptions topt;
  topt.root = *dir / "cgroup";
  topt.proc_root = *dir / "proc";
  topt.containers = containers;
  topt.layout = layout;
  topt.aggregates = args.aggregates;
  topt.process = args.process;
  const CostMeter build_meter;
  auto tree = buildSyntheticTree(topt);
  if (!tree) return std::unexpected(tree.error());
  const CycleCost build = build_meter.stop();
  std::printf("  %s, %zu containers: %zu pods, %zu files written (%zu read per cycle) in %.0f ms\n",
              layoutName(layout), tree->containers, tree->pods, tree->files_written,
              tree->read_files.size(), static_cast<double>(build.wall_ns) / 1e6);
  return measure(*tree, Ownership{}, *dir / "no-such-log-root", args);
}

// Real cgroups: builds, measures, removes (also when measuring fails) and checks that nothing of
// the tree is left. build_s receives the time the mkdirs took.
std::expected<Row, std::string> runReal(std::size_t containers, const Args& args, double& build_s) {
  RealCgroupTree real;
  RealTreeOptions ropt;
  ropt.containers = containers;
  ropt.aggregates = args.aggregates;
  const CostMeter build_meter;
  if (auto r = real.build(ropt); !r) return std::unexpected("real cgroups: " + r.error());
  const CycleCost build = build_meter.stop();
  build_s = static_cast<double>(build.wall_ns) / 1e9;
  const SyntheticTree& tree = real.tree();
  std::printf(
      "  real cgroups, %zu containers: %zu pods, %zu cgroups made in %zu hierarchies under "
      "<base>/%s (%zu files read per cycle) in %.0f ms\n",
      tree.containers, tree.pods, real.created(), real.bases().size(), real.parentName().c_str(),
      tree.read_files.size(), build_s * 1e3);
  std::printf("    bases:");
  for (const auto& b : real.bases()) std::printf(" %s", b.c_str());
  std::printf("\n");
  auto row = measure(tree, Ownership{"/" + real.parentName() + "/"},
                     "/run/nodewarden-bench-no-such-log-root", args);
  const CostMeter rm_meter;
  const std::size_t failed = real.remove();
  const double rm_ms = static_cast<double>(rm_meter.stop().wall_ns) / 1e6;
  const auto left = real.leftovers();
  std::printf("    cleanup: rmdir of %zu cgroups in %.0f ms, %zu failed; left behind: %s\n",
              real.created(), rm_ms, failed, left.empty() ? "nothing" : "");
  for (const auto& l : left) std::printf("      LEFT: %s\n", l.c_str());
  if (!left.empty()) return std::unexpected("real cgroups were left behind");
  return row;
}

void printTable(const std::string& title, const std::vector<Row>& rows) {
  std::printf("\n== %s: CgroupCollector::collect() per cycle vs the read floor ==\n",
              title.c_str());
  std::printf(
      "thread CPU µs per cycle (CLOCK_THREAD_CPUTIME_ID), medians unless noted; user/sys: "
      "getrusage(RUSAGE_SELF) deltas, tick-sampled split\n");
  std::printf(
      "%10s %5s %6s %6s %7s %3s | %8s %8s %7s %6s %6s %8s | %6s %4s %7s | %7s %7s %6s | "
      "%5s %6s %5s\n",
      "containers", "pods", "files", "open", "samples", "cyc", "median", "p90", "µs/ctr", "user",
      "sys", "wall", "allocs", "max", "1st-cyc", "floor", "open+rd", "list", "x flr", "x mix",
      "x o+l");
  for (const Row& r : rows) {
    const double per_ctr = r.cpu_us.median / static_cast<double>(r.containers);
    // The floor of a collector that keeps `open` files and must open the rest each cycle.
    const double files = static_cast<double>(r.read_files);
    const double kept = static_cast<double>(std::min(r.collector_files, r.read_files));
    const double mixed_floor =
        r.floor_us.median * kept / files + r.orc_us.median * (files - kept) / files;
    std::printf(
        "%10zu %5zu %6zu %6zu %7zu %3d | %8.0f %8.0f %7.2f %6.0f %6.0f %8.0f | %6.0f %4llu %7llu | "
        "%7.0f %7.0f %6.0f | %5.2f %6.2f %5.2f\n",
        r.containers, r.pods, r.read_files, r.collector_files, r.samples, r.cycles, r.cpu_us.median,
        r.cpu_us.p90, per_ctr, r.user_us.median, r.sys_us.median, r.wall_us.median, r.allocs_median,
        static_cast<unsigned long long>(r.allocs_max),
        static_cast<unsigned long long>(r.first_cycle_allocs), r.floor_us.median, r.orc_us.median,
        r.ls_us.median, ratio(r.cpu_us.median, r.floor_us.median),
        ratio(r.cpu_us.median, mixed_floor),
        ratio(r.cpu_us.median, r.orc_us.median + r.ls_us.median));
  }
  std::printf(
      "files = files the tree has for the collector to read per cycle (pod and container dirs), "
      "open = files the collector holds open; allocs = median heap allocations per steady-state "
      "cycle, max = worst cycle, 1st-cyc = allocations of the discovery cycle; floor = pread() of "
      "every file on kept descriptors (separate process); open+rd = open+read+close of every "
      "file; list = open+getdents64+close of every kubepods, QoS and pod directory in every "
      "hierarchy; x flr = collector/floor; x mix = collector/(floor for `open` files + "
      "open+rd for the rest), the floor of a collector whose descriptor budget is `open`; x o+l = "
      "collector/(open+rd + list)\n");
  for (const Row& r : rows) {
    std::printf(
        "  %zu containers: first cycle %.0f µs; collector heap after warm-up %.0f KiB; "
        "collector min %.0f µs; floor p90 %.0f µs, min %.0f µs; floor kept %zu of %zu "
        "files open; bytes allocated in all steady-state cycles %llu\n",
        r.containers, r.first_cycle_us, r.heap_kib, r.cpu_us.min, r.floor_us.p90, r.floor_us.min,
        r.floor_kept, r.read_files, static_cast<unsigned long long>(r.alloc_bytes_total));
  }
  if (rows.size() > 1) {
    const double base = rows.front().cpu_us.median / static_cast<double>(rows.front().containers);
    const double fbase =
        rows.front().floor_us.median / static_cast<double>(rows.front().containers);
    std::printf("linearity, µs per container (relative to %zu):", rows.front().containers);
    for (const Row& r : rows) {
      const double per = r.cpu_us.median / static_cast<double>(r.containers);
      const double fper = r.floor_us.median / static_cast<double>(r.containers);
      std::printf("  %zu: collector %.2f (x%.2f) floor %.2f (x%.2f);", r.containers, per,
                  ratio(per, base), fper, ratio(fper, fbase));
    }
    std::printf("\n");
  }
}

// The process every synthetic container lists in its cgroup.procs: 32 descriptors (stdio, 21 of
// /dev/null, 8 sockets), the size of a small service, so that the descriptor count reads a real
// /proc/<pid>/fd. Killed by ~ContainerProcess.
struct ContainerProcess {
  pid_t pid = -1;
  ContainerProcess() {
    pid = ::fork();
    if (pid != 0) return;
    ::close_range(3, ~0U, 0);
    for (int i = 0; i < 21; ++i) (void)!::open("/dev/null", O_RDONLY);
    for (int i = 0; i < 8; ++i) (void)!::socket(AF_UNIX, SOCK_STREAM, 0);
    for (;;) ::pause();
  }
  ~ContainerProcess() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  ContainerProcess(const ContainerProcess&) = delete;
  ContainerProcess& operator=(const ContainerProcess&) = delete;
};

bool usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--tree=tmpfs|real|both] [--sizes=100,1000,5000] [--layouts=v1,v2] "
               "[--only=collector|floor] [--cycles=N] [--warmup=N] [--real-build-budget=SECONDS] "
               "[--metadata] [--aggregates] [--fd-scan-interval=MS] [--max-fd-scan=N]\n"
               "  tmpfs: synthetic trees of regular files; v1 is the hybrid layout (v1 controllers "
               "+ unified/), --layouts applies to tmpfs only\n"
               "  real: real cgroups below this process's own cgroups in cpu, cpuacct, memory, "
               "blkio and unified (root, hybrid v1 host); a size whose mkdirs would take longer "
               "than the budget (120 s), extrapolated from the previous size, is skipped\n"
               "  --only: run the collector or the floor alone (to profile one side)\n"
               "  --metadata: names from a metadata source that knows all pods but about one in "
               "16\n"
               "  --aggregates: the collector also reads the root, kubepods and QoS cgroups "
               "(collectors.cgroup.aggregates) and the floor reads their files too\n"
               "  --fd-scan-interval, --max-fd-scan: collectors.cgroup.fd_scan_interval and "
               "max_fd_scan_processes (default: the agent's); every tmpfs container lists one "
               "process of the benchmark (32 descriptors, 8 of them sockets)\n",
               argv0);
  return false;
}

bool parseArgs(int argc, char** argv, Args& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const auto value = [&](std::string_view flag) -> std::string_view {
      return a.starts_with(flag) ? a.substr(flag.size()) : std::string_view();
    };
    if (auto v = value("--sizes="); !v.empty()) {
      args.sizes.clear();
      std::string s(v);
      for (char* tok = std::strtok(s.data(), ","); tok != nullptr;
           tok = std::strtok(nullptr, ",")) {
        args.sizes.push_back(std::strtoul(tok, nullptr, 10));
      }
    } else if (auto l = value("--layouts="); !l.empty()) {
      args.layouts.clear();
      if (l.find("v1") != std::string_view::npos) args.layouts.push_back(TreeLayout::kHybrid);
      if (l.find("v2") != std::string_view::npos) args.layouts.push_back(TreeLayout::kV2);
    } else if (auto t = value("--tree="); !t.empty()) {
      args.tmpfs = t.find("tmpfs") != std::string_view::npos || t == "both";
      args.real = t.find("real") != std::string_view::npos || t == "both";
      if (!args.tmpfs && !args.real) return usage(argv[0]);
    } else if (auto o = value("--only="); !o.empty()) {
      if (o == "collector") {
        args.only = Only::kCollector;
      } else if (o == "floor") {
        args.only = Only::kFloor;
      } else {
        return usage(argv[0]);
      }
    } else if (auto b = value("--real-build-budget="); !b.empty()) {
      args.real_build_budget_s = std::atof(std::string(b).c_str());
    } else if (a == "--aggregates") {
      args.aggregates = true;
    } else if (auto f = value("--fd-scan-interval="); !f.empty()) {
      args.fd_scan_interval_ms = std::atol(std::string(f).c_str());
    } else if (auto m = value("--max-fd-scan="); !m.empty()) {
      args.max_fd_scan = std::strtoul(std::string(m).c_str(), nullptr, 10);
    } else if (a == "--metadata") {
      args.metadata = true;
    } else if (auto c = value("--cycles="); !c.empty()) {
      args.cycles = std::atoi(std::string(c).c_str());
    } else if (auto w = value("--warmup="); !w.empty()) {
      args.warmup = std::max(1, std::atoi(std::string(w).c_str()));
    } else {
      return usage(argv[0]);
    }
  }
  return true;
}

}  // namespace
}  // namespace nodewarden::bench

int main(int argc, char** argv) {
  using namespace nodewarden::bench;
  Args args;
  if (!parseArgs(argc, argv, args)) return 2;
  raiseFdLimit();
  const ContainerProcess process;
  args.process = process.pid;
  std::printf("bench_collect_cycle: %ld CPUs online, RLIMIT_NOFILE %zu\n",
              ::sysconf(_SC_NPROCESSORS_ONLN), fdLimit());
  if (args.tmpfs) {
    for (TreeLayout layout : args.layouts) {
      std::vector<Row> rows;
      for (std::size_t n : args.sizes) {
        auto row = runTmpfs(layout, n, args);
        if (!row) {
          std::fprintf(stderr, "bench_collect_cycle: %s\n", row.error().c_str());
          return 1;
        }
        rows.push_back(*row);
      }
      printTable(std::string("tmpfs ") + layoutName(layout), rows);
      std::printf("\n");
    }
  }
  if (args.real) {
    std::vector<Row> rows;
    double prev_build_s = 0;
    std::size_t prev_n = 0;
    for (std::size_t n : args.sizes) {
      if (prev_n > 0) {
        const double projected =
            prev_build_s * static_cast<double>(n) / static_cast<double>(prev_n);
        if (projected > args.real_build_budget_s) {
          std::printf(
              "  real cgroups, %zu containers: skipped, the mkdirs would take ~%.0f s "
              "(budget %.0f s)\n",
              n, projected, args.real_build_budget_s);
          continue;
        }
      }
      double build_s = 0;
      auto row = runReal(n, args, build_s);
      if (!row) {
        std::fprintf(stderr, "bench_collect_cycle: %s\n", row.error().c_str());
        return 1;
      }
      rows.push_back(*row);
      prev_build_s = build_s;
      prev_n = n;
    }
    printTable("real cgroups hybrid(v1+unified)", rows);
    std::printf("\n");
  }
  return 0;
}
