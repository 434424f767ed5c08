// bench_detector_eval: can the noisy-neighbour detector's verdicts be trusted? It builds a real
// node on this kernel (NodeBuilder: pods as cgroups in kubelet's layout), runs a victim
// (bench_victim) next to antagonists that a seeded schedule switches on and off, runs the real
// agent against the node, polls GET /signals once per interval and scores each interval's
// verdicts against the ground truth: interference = an antagonist is on AND the victim's rate is
// more than 20% below its isolated baseline. Confounders (the victim's own CPU quota, the
// victim's own load burst, an antagonist on the other CPU) must draw no verdict and no taint.
//
// What a reader gets wrong: the ground truth is measured, not assumed. An antagonist that is on
// but does not slow the victim (a memory hog that fits next to the victim's working set, a light
// CPU load) is a negative interval, and a verdict there is a false positive. The victim's rate
// is taken from its own output file over the same interval the poll closes, so the detector's
// reaction time shows up as missed intervals at the start of each on-period (strict figures)
// and is also reported separately (time to first verdict, and figures with the edges dropped).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/node_builder.h"

namespace {

namespace fs = std::filesystem;
namespace nt = nodewarden::testing;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::atomic<bool> g_stop{false};
extern "C" void onSignal(int) { g_stop = true; }

constexpr double kDropThreshold = 0.20;  // the ground truth's "hurt": rate below 80% of baseline
constexpr std::array<const char*, 3> kResources = {"cpu", "memory", "io"};
constexpr std::size_t kNoResource = 3;

struct Args {
  std::uint64_t seed = 1;
  std::vector<std::string> scenarios = {"cpu", "memory", "io", "confounders"};
  double duration = 180;  // seconds of schedule per scenario, after the baseline
  double baseline = 20;
  int interval = 5;
  std::string agent;
  std::string victim;
  std::string trace;
  std::string agent_config;  // replaces the generated config when given
  std::string work_dir = "/var/tmp";
  std::uint64_t node_memory_mib = 600;
  std::uint64_t file_mib = 256;
};

void usage() {
  std::cerr
      << "usage: bench_detector_eval [--seed N] [--scenarios cpu,memory,io,confounders]\n"
         "                           [--duration SECONDS] [--baseline SECONDS] [--interval "
         "SECONDS]\n"
         "                           [--trace FILE.csv] [--agent PATH] [--victim PATH]\n"
         "                           [--agent-config FILE] [--work-dir DIR] [--node-memory-mib N]"
         "\n"
         "                           [--file-mib N]\n";
}

std::optional<double> parseNumber(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::optional<Args> parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help" || i + 1 >= argc) return std::nullopt;
    const std::string v = argv[++i];
    std::optional<double> n;
    if (arg == "--scenarios") {
      a.scenarios = splitList(v);
      for (const auto& s : a.scenarios) {
        if (s != "cpu" && s != "memory" && s != "io" && s != "confounders") {
          std::cerr << "unknown scenario " << s << "\n";
          return std::nullopt;
        }
      }
    } else if (arg == "--trace") {
      a.trace = v;
    } else if (arg == "--agent") {
      a.agent = v;
    } else if (arg == "--victim") {
      a.victim = v;
    } else if (arg == "--agent-config") {
      a.agent_config = v;
    } else if (arg == "--work-dir") {
      a.work_dir = v;
    } else if (!(n = parseNumber(v))) {
      std::cerr << arg << " wants a number, got " << v << "\n";
      return std::nullopt;
    } else if (arg == "--seed") {
      a.seed = static_cast<std::uint64_t>(*n);
    } else if (arg == "--duration") {
      a.duration = *n;
    } else if (arg == "--baseline") {
      a.baseline = std::max(*n, 5.0);
    } else if (arg == "--interval") {
      a.interval = std::max(1, static_cast<int>(*n));
    } else if (arg == "--node-memory-mib") {
      a.node_memory_mib = static_cast<std::uint64_t>(*n);
    } else if (arg == "--file-mib") {
      a.file_mib = static_cast<std::uint64_t>(*n);
    } else {
      std::cerr << "unknown option " << arg << "\n";
      return std::nullopt;
    }
  }
  return a;
}

// A program built next to this one: <build>/bench/bench_detector_eval -> <build>/<relative>.
std::string besideBuild(const std::string& given, const fs::path& relative) {
  if (!given.empty()) return given;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return relative.string();
  return (self.parent_path().parent_path() / relative).string();
}

double seconds(Clock::time_point t, Clock::time_point origin) {
  return std::chrono::duration<double>(t - origin).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

std::string fixed(double v, int digits = 1) {
  if (std::isnan(v)) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string percent(double fraction) {
  if (std::isnan(fraction)) return "-";
  return fixed(fraction * 100, 1) + "%";
}

// utime + stime of one process in seconds (proc(5) fields 14 and 15); nan when it is gone.
double processCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nan("");
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int field = 3; field <= 15 && fields >> f; ++field) {
    if (field == 14 || field == 15) ticks += std::strtod(f.c_str(), nullptr);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ------------------------------------------------------------------------------------------
// What runs: antagonist intensities, confounders, the schedule.

struct Intensity {
  std::string label;
  std::string cpu;                // taskset CPU list
  std::vector<std::string> args;  // stress-ng arguments
};

struct ScenarioSpec {
  std::string name;
  std::string victim_mode;             // bench_victim --mode
  std::size_t resource = kNoResource;  // what its antagonists contend for
  std::vector<Intensity> intensities;  // empty: the confounder scenario
};

// The intensities are chosen so that each scenario has on-periods that hurt the victim and
// on-periods that do not (see bench/README.md for the drops measured on the reference machine).
ScenarioSpec scenarioSpec(const std::string& name, const Args& args, const fs::path& scratch) {
  ScenarioSpec s;
  s.name = name;
  if (name == "cpu") {
    s.victim_mode = "cpu";
    s.resource = 0;
    // Same CPU as the victim. stress-ng's --cpu-load duty-cycles each worker.
    s.intensities = {
        {"load15", "0", {"--cpu", "1", "--cpu-load", "15"}},
        {"load50", "0", {"--cpu", "1", "--cpu-load", "50"}},
        {"load100", "0", {"--cpu", "1", "--cpu-load", "100"}},
        {"2x100", "0", {"--cpu", "2", "--cpu-load", "100"}},
    };
  } else if (name == "memory") {
    s.victim_mode = "memory";
    s.resource = 1;
    // On the other CPU, holding anonymous memory (allocated once, then asleep: --vm-hang 0) so
    // that the only contention is for the node's memory: what does not fit next to the victim's
    // page cache under the node's limit is taken from that cache.
    const std::uint64_t room = args.node_memory_mib - args.file_mib;
    auto hog = [](std::uint64_t mib) {
      return std::vector<std::string>{"--vm",      "1", "--vm-bytes", std::to_string(mib) + "M",
                                      "--vm-hang", "0"};
    };
    s.intensities = {
        {"fits" + std::to_string(room * 3 / 4) + "M", "1", hog(room * 3 / 4)},
        {"over" + std::to_string(room + 60) + "M", "1", hog(room + 60)},
        {"over" + std::to_string(room + 150) + "M", "1", hog(room + 150)},
    };
  } else if (name == "io") {
    s.victim_mode = "io";
    s.resource = 2;
    const std::string dir = scratch.string();
    s.intensities = {
        {"hdd1", "1", {"--hdd", "1", "--hdd-bytes", "256M", "--temp-path", dir}},
        {"hdd2-direct",
         "1",
         {"--hdd", "2", "--hdd-bytes", "256M", "--hdd-opts", "direct", "--temp-path", dir}},
        {"iomix", "1", {"--iomix", "1", "--iomix-bytes", "256M", "--temp-path", dir}},
    };
  } else {
    s.victim_mode = "cpu";
  }
  return s;
}

enum class PeriodKind { kBaseline, kOff, kAntagonist, kQuota, kSelfBurst, kOtherCpu };

const char* kindName(PeriodKind k) {
  switch (k) {
    case PeriodKind::kBaseline:
      return "baseline";
    case PeriodKind::kOff:
      return "off";
    case PeriodKind::kAntagonist:
      return "antagonist";
    case PeriodKind::kQuota:
      return "own-quota";
    case PeriodKind::kSelfBurst:
      return "own-burst";
    case PeriodKind::kOtherCpu:
      return "other-cpu";
  }
  return "?";
}

struct Period {
  PeriodKind kind = PeriodKind::kOff;
  double start = 0;  // seconds since the scenario's origin
  double end = 0;
  std::size_t intensity = 0;  // kAntagonist
  std::size_t pod = 0;        // kAntagonist: index into the antagonist pods
  [[nodiscard]] std::string label(const ScenarioSpec& spec,
                                  const std::vector<nt::Pod*>& pods) const {
    if (kind != PeriodKind::kAntagonist) return kindName(kind);
    return pods[pod]->name() + " " + spec.intensities[intensity].label;
  }
};

// On / off alternating (the baseline was off), 20-60 s each, from the seed; intensities in shuffled
// rounds so that each one comes up. The first period starts at `from`.
std::vector<Period> makeSchedule(const ScenarioSpec& spec, std::mt19937_64& rng, double from,
                                 double duration, std::size_t pods) {
  std::uniform_real_distribution<double> length(20.0, 60.0);
  std::vector<std::size_t> round;
  std::vector<Period> out;
  double t = from;
  const double end = from + duration;
  bool on = true;  // the baseline before it was the first off-period
  while (t < end - 5) {
    Period p;
    p.start = t;
    p.end = std::min(end, t + std::round(length(rng)));
    if (on) {
      if (round.empty()) {
        const std::size_t n = spec.intensities.empty() ? 3 : spec.intensities.size();
        for (std::size_t i = 0; i < n; ++i) round.push_back(i);
        std::shuffle(round.begin(), round.end(), rng);
      }
      const std::size_t pick = round.back();
      round.pop_back();
      if (spec.intensities.empty()) {
        static constexpr std::array<PeriodKind, 3> kConfounders = {
            PeriodKind::kQuota, PeriodKind::kSelfBurst, PeriodKind::kOtherCpu};
        p.kind = kConfounders[pick];
      } else {
        p.kind = PeriodKind::kAntagonist;
        p.intensity = pick;
        p.pod = std::uniform_int_distribution<std::size_t>(0, pods - 1)(rng);
      }
    }
    out.push_back(p);
    t = p.end;
    on = !on;
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// What is measured.

struct Sample {
  double t = 0;  // seconds since the scenario's origin (the victim's monotonic clock)
  double rate = 0;
};

struct VerdictSeen {
  bool on = false;
  double score = std::nan("");
  std::string top_ns, top_pod, top_uid;  // antagonists[0]
};

struct Poll {
  double t = 0;
  long status = 0;  // HTTP status; 0 = transport error
  bool parsed = false;
  std::array<VerdictSeen, 3> victim;  // verdicts on the victim pod, per resource
  int other_verdicts = 0;             // verdicts on any other pod of this node
  bool tainted = false;
  double interference_score = std::nan("");
  // The victim pod's own signals, verdict or not: stall by others, its z-score, its activity.
  std::array<double, 3> victim_others{std::nan(""), std::nan(""), std::nan("")};
  std::array<double, 3> victim_z{std::nan(""), std::nan(""), std::nan("")};
  std::array<double, 3> victim_activity{std::nan(""), std::nan(""), std::nan("")};
};

// One scored interval (the one a poll closes).
struct Interval {
  std::string scenario;
  double t = 0;
  const Period* period = nullptr;  // the period covering most of the interval
  bool antagonist_on = false;
  double rate = std::nan("");
  double drop = std::nan("");
  std::array<bool, 3> truth{};
  bool edge = false;  // an on/off switch within the last two intervals
  const Poll* poll = nullptr;
  std::string true_ns, true_pod, true_uid;
};

struct ScenarioResult {
  ScenarioSpec spec;
  double baseline = std::nan("");
  std::vector<Period> periods;
  std::vector<Sample> samples;
  std::vector<Poll> polls;
  std::vector<Interval> intervals;
  std::vector<std::string> pod_names;  // antagonist pods, index = Period::pod
  std::vector<std::string> pod_uids;
  std::string victim_uid;
  double agent_cpu_seconds = std::nan("");
  double agent_wall_seconds = 0;
  bool completed = false;
  std::string error;
};

double meanRate(const std::vector<Sample>& samples, double from, double to) {
  double sum = 0;
  int n = 0;
  for (const auto& s : samples) {
    if (s.t > from && s.t <= to) {
      sum += s.rate;
      ++n;
    }
  }
  return n == 0 ? std::nan("") : sum / n;
}

// Reads the victim's new lines ("<monotonic ms> <rate>") since the last call.
class RateReader {
 public:
  explicit RateReader(fs::path path) : path_(std::move(path)) {}
  void poll(Clock::time_point origin, std::vector<Sample>& out) {
    std::ifstream in(path_);
    if (!in) return;
    in.seekg(offset_);
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a partial last line: read it next time
      offset_ += static_cast<std::streamoff>(line.size() + 1);
      long long ms = 0;
      double rate = 0;
      if (std::sscanf(line.c_str(), "%lld %lf", &ms, &rate) != 2) continue;
      const Clock::time_point t{std::chrono::milliseconds(ms)};
      out.push_back({seconds(t, origin), rate});
    }
  }

 private:
  fs::path path_;
  std::streamoff offset_ = 0;
};

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double num(const json& j, const char* key) {
  if (!j.is_object()) return std::nan("");
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

// GET /signals and what it says about this node's pods. Every field may be missing.
Poll pollSignals(const std::string& base, double t, const nt::Pod& victim,
                 const std::set<std::string>& our_uids) {
  Poll p;
  p.t = t;
  auto r = nt::httpGet(base + "/signals", 2s);
  if (!r) return p;
  p.status = r->status;
  if (r->status != 200) return p;
  const json doc = json::parse(r->body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return p;
  p.parsed = true;
  if (auto ns = doc.find("node_signals"); ns != doc.end() && ns->is_object()) {
    p.interference_score = num(*ns, "interference_score");
    if (auto pl = ns->find("placement"); pl != ns->end() && pl->is_object()) {
      auto tainted = pl->find("tainted");
      p.tainted = tainted != pl->end() && tainted->is_boolean() && tainted->get<bool>();
    }
  }
  if (auto pods = doc.find("pods"); pods != doc.end() && pods->is_array()) {
    for (const auto& pod : *pods) {
      if (str(pod, "uid") != victim.uid()) continue;
      for (std::size_t res = 0; res < kResources.size(); ++res) {
        const char* name = kResources[res];
        if (auto st = pod.find("stall"); st != pod.end() && st->is_object() && st->contains(name)) {
          p.victim_others[res] = num((*st)[name], "others");
        }
        if (pod.contains("victim_score")) p.victim_z[res] = num(pod["victim_score"], name);
        if (pod.contains("activity")) p.victim_activity[res] = num(pod["activity"], name);
      }
    }
  }
  auto verdicts = doc.find("verdicts");
  if (verdicts == doc.end() || !verdicts->is_array()) return p;
  for (const auto& v : *verdicts) {
    const std::string uid = str(v, "uid");
    const bool is_victim =
        uid == victim.uid() ||
        (uid.empty() && str(v, "namespace") == victim.ns() && str(v, "pod") == victim.name());
    if (!is_victim) {
      if (our_uids.contains(uid)) ++p.other_verdicts;
      continue;
    }
    const std::string resource = str(v, "resource");
    for (std::size_t res = 0; res < kResources.size(); ++res) {
      if (resource != kResources[res]) continue;
      VerdictSeen& seen = p.victim[res];
      seen.on = true;
      seen.score = num(v, "score");
      auto ants = v.find("antagonists");
      if (ants != v.end() && ants->is_array() && !ants->empty()) {
        const json& top = (*ants)[0];
        seen.top_ns = str(top, "namespace");
        seen.top_pod = str(top, "pod");
        seen.top_uid = str(top, "uid");
      }
    }
  }
  return p;
}

// ------------------------------------------------------------------------------------------
// One scenario on one node.

std::expected<void, std::string> writeCgroupFile(const fs::path& path, const std::string& value) {
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) return std::unexpected("open " + path.string());
  std::setvbuf(f, nullptr, _IONBF, 0);
  const bool ok = std::fwrite(value.data(), 1, value.size(), f) == value.size();
  std::fclose(f);
  if (!ok) return std::unexpected("write '" + value + "' to " + path.string());
  return {};
}

// The container's CFS quota: cgroup v1 cpu.cfs_quota_us, or v2 cpu.max.
std::expected<void, std::string> setCpuQuota(const nt::Container& c, std::int64_t quota_us) {
  auto dir = c.cgroupDir("cpu");
  if (dir && fs::exists(*dir / "cpu.cfs_quota_us")) {
    return writeCgroupFile(*dir / "cpu.cfs_quota_us", std::to_string(quota_us));
  }
  dir = c.cgroupDir("unified");
  if (dir && fs::exists(*dir / "cpu.max")) {
    return writeCgroupFile(
        *dir / "cpu.max",
        (quota_us < 0 ? std::string("max") : std::to_string(quota_us)) + " 100000");
  }
  return std::unexpected("no cpu controller for " + c.name());
}

std::string agentConfig(const Args& args) {
  std::ostringstream c;
  c << "interval: " << args.interval
    << "s\n"
       "node_name: eval-node\n"
       "collectors:\n"
       "  logs:\n    enabled: false\n"
       "  journal:\n    enabled: false\n"
       "  jobs:\n    enabled: false\n"
       "  pods:\n    runtime_state: false\n    kubelet: false\n    apiserver: false\n"
       "placement:\n  enabled: true\n  dry_run: true\n";
  return c.str();
}

class ScenarioRunner {
 public:
  ScenarioRunner(const Args& args, const std::string& agent, const std::string& victim,
                 std::uint64_t seed)
      : args_(args), agent_path_(agent), victim_path_(victim), rng_(seed) {}

  ScenarioResult run(const std::string& name) {
    result_.spec = scenarioSpec(name, args_, scratch());
    if (auto r = setUp(); !r) {
      result_.error = r.error();
    } else if (auto m = measure(); !m) {
      result_.error = m.error();
    } else {
      result_.completed = !g_stop;
    }
    tearDown();
    return std::move(result_);
  }

 private:
  fs::path scratch() const {
    return fs::path(args_.work_dir) / ("nodewarden-eval-" + std::to_string(::getpid()));
  }

  std::expected<void, std::string> setUp() {
    std::error_code ec;
    fs::create_directories(scratch(), ec);
    if (ec) return std::unexpected("mkdir " + scratch().string() + ": " + ec.message());
    nt::NodeBuilderOptions options;
    // The test prefix: a run killed with -9 is swept by the next builder.
    options.parent = "nodewarden-test-" + std::to_string(::getpid()) + "-eval-" + result_.spec.name;
    auto made = nt::NodeBuilder::create(options);
    if (!made) return std::unexpected(made.error());
    node_ = std::move(*made);
    // The node's memory limit: on the parent, so that every pod's usage counts against it.
    for (const auto& h : node_->hierarchies()) {
      if (h.v2 || !h.has("memory")) continue;
      auto r = writeCgroupFile(h.base / node_->parent() / "memory.limit_in_bytes",
                               std::to_string(args_.node_memory_mib << 20));
      if (!r) return r;
    }
    // More CPU weight than a task outside the node (8x a nice-0 task's 1024): other work on a
    // shared machine takes less of CPU 0 from the victim, so its baseline holds. Kubelet sets
    // kubepods' shares from the node's allocatable CPU, also far above one task's.
    for (const auto& h : node_->hierarchies()) {
      if (h.v2 || !h.has("cpu")) continue;
      auto r = writeCgroupFile(h.base / node_->parent() / "cpu.shares", "8192");
      if (!r) return r;
    }
    auto victim = node_->addPod("shop", "checkout-victim", "", nt::PodQos::kBurstable);
    if (!victim) return std::unexpected(victim.error());
    victim_pod_ = *victim;
    result_.victim_uid = victim_pod_->uid();
    auto app = victim_pod_->addContainer(nt::containerSpec("app"));
    if (!app) return std::unexpected(app.error());
    victim_ = *app;
    our_uids_.insert(victim_pod_->uid());
    const std::vector<std::string> names =
        result_.spec.intensities.empty()
            ? std::vector<std::string>{"batch-other-cpu"}
            : std::vector<std::string>{"etl-" + result_.spec.name + "-a",
                                       "etl-" + result_.spec.name + "-b"};
    for (const auto& n : names) {
      auto pod = node_->addPod("batch", n, "", nt::PodQos::kBurstable);
      if (!pod) return std::unexpected(pod.error());
      auto c = (*pod)->addContainer(nt::containerSpec("worker"));
      if (!c) return std::unexpected(c.error());
      antagonist_pods_.push_back(*pod);
      result_.pod_names.push_back(n);
      result_.pod_uids.push_back((*pod)->uid());
      our_uids_.insert((*pod)->uid());
    }
    if (result_.spec.intensities.empty()) {
      auto burst = victim_pod_->addContainer(nt::containerSpec("burst"));
      if (!burst) return std::unexpected(burst.error());
      burst_ = *burst;
    }

    const fs::path tmp = node_->tempDir();
    fs::path config = args_.agent_config;
    if (config.empty()) {
      config = tmp / "agent.yaml";
      std::ofstream(config) << agentConfig(args_);
    }
    const int port = nt::freeLoopbackPort();
    if (port <= 0) return std::unexpected("no free loopback port");
    base_url_ = "http://127.0.0.1:" + std::to_string(port);
    nt::SpawnOptions spawn;
    spawn.output = tmp / "agent.log";
    auto agent = nt::ChildProcess::start(
        {agent_path_, "run", "--config", config.string(), "--listen",
         "127.0.0.1:" + std::to_string(port), "--cgroup-root", "/sys/fs/cgroup", "--proc-root",
         "/proc", "--log-root", node_->logRoot().string(), "--state-dir", (tmp / "state").string(),
         "--interval", std::to_string(args_.interval) + "s", "--node-name", "eval-node"},
        spawn);
    if (!agent) return std::unexpected("cannot start the agent: " + agent.error());
    agent_ = std::move(*agent);
    const auto deadline = Clock::now() + 30s;
    for (;;) {
      if (g_stop) return std::unexpected("stopped");
      if (!agent_.running())
        return std::unexpected("the agent exited; log: " + spawn.output.string());
      auto r = nt::httpGet(base_url_ + "/readyz", 1s);
      if (r && r->status == 200) break;
      if (Clock::now() > deadline) return std::unexpected("the agent was not ready within 30 s");
      std::this_thread::sleep_for(200ms);
    }
    agent_cpu_start_ = processCpuSeconds(agent_.pid());
    agent_wall_start_ = Clock::now();
    return {};
  }

  std::expected<void, std::string> startVictim() {
    rates_file_ = node_->tempDir() / "victim.rates";
    victim_file_ = scratch() / ("victim-" + result_.spec.name + ".dat");
    auto pid = victim_->run({"taskset", "-c", "0", victim_path_, "--mode", result_.spec.victim_mode,
                             "--out", rates_file_.string(), "--file", victim_file_.string(),
                             "--file-mib", std::to_string(args_.file_mib)});
    if (!pid) return std::unexpected("cannot start the victim: " + pid.error());
    // The first line comes once the working set is ready (a fresh file is written first).
    const auto deadline = Clock::now() + 180s;
    std::error_code ec;
    while (!g_stop && (!fs::exists(rates_file_, ec) || fs::file_size(rates_file_, ec) == 0)) {
      if (victim_->pids().empty()) {
        return std::unexpected("the victim exited; output in " + node_->tempDir().string() +
                               "/run");
      }
      if (Clock::now() > deadline) return std::unexpected("the victim did not start in 180 s");
      std::this_thread::sleep_for(100ms);
    }
    return {};
  }

  std::expected<void, std::string> startPeriod(const Period& p) {
    const ScenarioSpec& spec = result_.spec;
    auto stress = [](const std::string& cpu, std::vector<std::string> extra) {
      std::vector<std::string> argv{"taskset", "-c", cpu, "stress-ng"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      argv.emplace_back("--quiet");
      return argv;
    };
    std::expected<pid_t, std::string> pid = 0;
    switch (p.kind) {
      case PeriodKind::kAntagonist: {
        const Intensity& in = spec.intensities[p.intensity];
        pid = antagonist_pods_[p.pod]->containers().front()->run(stress(in.cpu, in.args));
        break;
      }
      case PeriodKind::kQuota:
        // 0.25 of a core for a single-threaded victim: it is throttled by its own limit.
        if (auto r = setCpuQuota(*victim_, 25000); !r) return r;
        break;
      case PeriodKind::kSelfBurst:
        pid = burst_->run(stress("0", {"--cpu", "2", "--cpu-load", "100"}));
        break;
      case PeriodKind::kOtherCpu:
        pid = antagonist_pods_[0]->containers().front()->run(
            stress("1", {"--cpu", "1", "--cpu-load", "100"}));
        break;
      case PeriodKind::kBaseline:
      case PeriodKind::kOff:
        break;
    }
    if (!pid) return std::unexpected(pid.error());
    return {};
  }

  void stopPeriod(const Period& p) {
    switch (p.kind) {
      case PeriodKind::kAntagonist:
        antagonist_pods_[p.pod]->containers().front()->kill(10s);
        break;
      case PeriodKind::kQuota:
        (void)setCpuQuota(*victim_, -1);
        break;
      case PeriodKind::kSelfBurst:
        burst_->kill(10s);
        break;
      case PeriodKind::kOtherCpu:
        antagonist_pods_[0]->containers().front()->kill(10s);
        break;
      case PeriodKind::kBaseline:
      case PeriodKind::kOff:
        break;
    }
  }

  std::expected<void, std::string> measure() {
    if (auto r = startVictim(); !r) return r;
    origin_ = Clock::now();
    RateReader reader(rates_file_);
    auto now = [&] { return seconds(Clock::now(), origin_); };

    // Baseline: the victim alone (the agent is running; nothing else of this node is).
    Period baseline;
    baseline.kind = PeriodKind::kBaseline;
    baseline.start = 0;
    baseline.end = args_.baseline;
    result_.periods.push_back(baseline);
    auto schedule =
        makeSchedule(result_.spec, rng_, args_.baseline, args_.duration, antagonist_pods_.size());
    result_.periods.insert(result_.periods.end(), schedule.begin(), schedule.end());

    std::cout << "  schedule:";
    for (const auto& p : result_.periods) {
      std::cout << " [" << fixed(p.start, 0) << "-" << fixed(p.end, 0) << " "
                << p.label(result_.spec, antagonist_pods_) << "]";
    }
    std::cout << "\n" << std::flush;

    const double end = result_.periods.back().end;
    double next_poll = args_.interval;
    std::size_t current = 0;
    bool started = false;
    bool baseline_printed = false;
    while (!g_stop) {
      const double t = now();
      if (t >= end) break;
      reader.poll(origin_, result_.samples);
      // Switch periods.
      while (current < result_.periods.size() && t >= result_.periods[current].end) {
        if (started) stopPeriod(result_.periods[current]);
        started = false;
        ++current;
      }
      if (current < result_.periods.size() && !started && t >= result_.periods[current].start) {
        if (auto r = startPeriod(result_.periods[current]); !r) return r;
        started = true;
      }
      if (!baseline_printed && t >= args_.baseline) {
        std::vector<double> rates;
        for (const auto& s : result_.samples) {
          if (s.t > 2 && s.t <= args_.baseline) rates.push_back(s.rate);
        }
        result_.baseline = median(rates);
        std::cout << "  victim baseline (" << result_.spec.victim_mode << ", median of "
                  << rates.size() << " samples): " << fixed(result_.baseline, 0) << " ops/s\n"
                  << std::flush;
        baseline_printed = true;
        // The agent must see this node's pods by name, or no verdict can name them.
        auto m = nt::httpGet(base_url_ + "/metrics", 5s);
        if (!m || m->body.find("pod=\"" + victim_pod_->name() + "\"") == std::string::npos) {
          std::cout << "  WARNING: the agent's /metrics has no series of pod "
                    << victim_pod_->name() << "\n";
        }
      }
      if (t >= next_poll) {
        result_.polls.push_back(pollSignals(base_url_, now(), *victim_pod_, our_uids_));
        next_poll += args_.interval;
      }
      if (!agent_.running()) return std::unexpected("the agent exited during the scenario");
      if (victim_->pids().empty()) return std::unexpected("the victim exited during the scenario");
      std::this_thread::sleep_for(100ms);
    }
    if (current < result_.periods.size() && started) stopPeriod(result_.periods[current]);
    reader.poll(origin_, result_.samples);
    return {};
  }

  void tearDown() {
    if (agent_.pid() > 0) {
      const double cpu = processCpuSeconds(agent_.pid());
      result_.agent_cpu_seconds = cpu - agent_cpu_start_;
      result_.agent_wall_seconds = seconds(Clock::now(), agent_wall_start_);
      agent_.stop(5s);
    }
    if (node_) {
      if (auto r = node_->cleanup(); !r) std::cerr << "  cleanup: " << r.error() << "\n";
      bool left = false;
      for (const auto& dir : node_->parentDirs()) left = left || fs::exists(dir);
      if (left) std::cerr << "  cleanup: cgroups left behind under " << node_->parent() << "\n";
      node_.reset();
    }
    std::error_code ec;
    if (!victim_file_.empty()) fs::remove(victim_file_, ec);
    fs::remove_all(scratch(), ec);
  }

  const Args& args_;
  std::string agent_path_;
  std::string victim_path_;
  std::mt19937_64 rng_;
  ScenarioResult result_;
  std::unique_ptr<nt::NodeBuilder> node_;
  nt::Pod* victim_pod_ = nullptr;
  nt::Container* victim_ = nullptr;
  nt::Container* burst_ = nullptr;
  std::vector<nt::Pod*> antagonist_pods_;
  std::set<std::string> our_uids_;
  nt::ChildProcess agent_;
  std::string base_url_;
  fs::path rates_file_;
  fs::path victim_file_;
  Clock::time_point origin_;
  double agent_cpu_start_ = 0;
  Clock::time_point agent_wall_start_;
};

// ------------------------------------------------------------------------------------------
// Scoring and reporting.

// The intervals the polls close, with their ground truth.
void scoreIntervals(ScenarioResult& r, double interval) {
  std::vector<double> switches;
  for (std::size_t i = 1; i < r.periods.size(); ++i) switches.push_back(r.periods[i].start);
  for (const auto& poll : r.polls) {
    Interval iv;
    iv.scenario = r.spec.name;
    iv.t = poll.t;
    iv.poll = &poll;
    const double from = poll.t - interval;
    double best = 0;
    for (const auto& p : r.periods) {
      const double overlap = std::min(p.end, poll.t) - std::max(p.start, from);
      if (overlap > best) {
        best = overlap;
        iv.period = &p;
      }
    }
    iv.rate = meanRate(r.samples, from, poll.t);
    iv.drop = 1 - iv.rate / r.baseline;
    iv.antagonist_on = iv.period != nullptr && iv.period->kind == PeriodKind::kAntagonist;
    if (iv.antagonist_on) {
      iv.true_pod = r.pod_names[iv.period->pod];
      iv.true_uid = r.pod_uids[iv.period->pod];
      iv.true_ns = "batch";
    }
    const bool hurt = !std::isnan(iv.drop) && iv.drop > kDropThreshold;
    if (r.spec.resource < kNoResource) iv.truth[r.spec.resource] = iv.antagonist_on && hurt;
    for (const double s : switches) iv.edge = iv.edge || (s > poll.t - 2 * interval && s <= poll.t);
    r.intervals.push_back(iv);
  }
}

void printPhases(const ScenarioResult& r) {
  std::cout << "  per phase (rate = mean ops/s; settled = from 5 s after the switch):\n";
  std::map<std::string, std::vector<double>> by_label;
  for (const auto& p : r.periods) {
    std::string label;
    if (p.kind == PeriodKind::kAntagonist) {
      label = r.spec.intensities[p.intensity].label;
    } else {
      label = kindName(p.kind);
    }
    const double all = meanRate(r.samples, p.start, p.end);
    const double settled = meanRate(r.samples, p.start + 5, p.end);
    std::string who = label;
    if (p.kind == PeriodKind::kAntagonist) who = r.pod_names[p.pod] + " " + label;
    std::cout << "    " << std::setw(5) << fixed(p.start, 0) << "-" << std::setw(4)
              << fixed(p.end, 0) << " s  " << std::left << std::setw(28) << who << std::right
              << " rate " << std::setw(9) << fixed(all, 0) << " (" << std::setw(6)
              << percent(1 - all / r.baseline) << " drop)  settled " << std::setw(9)
              << fixed(settled, 0) << " (" << std::setw(6) << percent(1 - settled / r.baseline)
              << ")\n";
    if (p.kind != PeriodKind::kBaseline && !std::isnan(settled)) {
      by_label[label].push_back(1 - settled / r.baseline);
    }
  }
  std::cout << "  per intensity (settled drop vs baseline " << fixed(r.baseline, 0) << " ops/s; > "
            << percent(kDropThreshold) << " = hurts):\n";
  for (const auto& [label, drops] : by_label) {
    double sum = 0;
    for (const double d : drops) sum += d;
    const double mean = sum / static_cast<double>(drops.size());
    std::cout << "    " << std::left << std::setw(16) << label << std::right << " periods "
              << drops.size() << "  mean drop " << std::setw(6) << percent(mean) << "  "
              << (mean > kDropThreshold ? "HURTS" : "does not hurt") << "\n";
  }
}

struct Confusion {
  int tp = 0, fp = 0, fn = 0, tn = 0;
  void add(bool truth, bool predicted) {
    if (truth && predicted) ++tp;
    if (!truth && predicted) ++fp;
    if (truth && !predicted) ++fn;
    if (!truth && !predicted) ++tn;
  }
  [[nodiscard]] double precision() const {
    return tp + fp == 0 ? std::nan("") : static_cast<double>(tp) / (tp + fp);
  }
  [[nodiscard]] double recall() const {
    return tp + fn == 0 ? std::nan("") : static_cast<double>(tp) / (tp + fn);
  }
  [[nodiscard]] double f1() const {
    const double p = precision(), r = recall();
    return std::isnan(p) || std::isnan(r) || p + r == 0 ? std::nan("") : 2 * p * r / (p + r);
  }
};

bool sameAntagonist(const VerdictSeen& v, const Interval& iv) {
  if (!v.top_uid.empty()) return v.top_uid == iv.true_uid;
  return v.top_ns == iv.true_ns && v.top_pod == iv.true_pod;
}

void printDetectorFigures(const std::vector<ScenarioResult>& results, double interval) {
  std::cout << "\n== detector figures (all scenarios, " << interval << " s intervals) ==\n";
  int polls = 0, ok = 0;
  std::map<long, int> statuses;
  for (const auto& r : results) {
    for (const auto& p : r.polls) {
      ++polls;
      ok += p.parsed ? 1 : 0;
      ++statuses[p.status];
    }
  }
  std::cout << "GET /signals: " << polls << " polls, " << ok << " parsed;";
  for (const auto& [status, n] : statuses)
    std::cout << " " << (status == 0 ? "error" : std::to_string(status)) << "x" << n;
  std::cout << (ok == 0 ? "  (no /signals yet: every interval counts as 'no verdict')" : "")
            << "\n";
  std::cout << "resource  truth+  strict: prec  recall  F1    | edges dropped: prec  recall  F1    "
               "| top-1     | first verdict after start: median  p90   detected\n";
  for (std::size_t res = 0; res < kResources.size(); ++res) {
    Confusion strict, inner;
    int top_right = 0, top_total = 0;
    bool scored = false;
    for (const auto& r : results) {
      if (r.spec.resource == res) scored = true;
      for (const auto& iv : r.intervals) {
        const bool pred = iv.poll->victim[res].on;
        strict.add(iv.truth[res], pred);
        if (!iv.edge) inner.add(iv.truth[res], pred);
        if (iv.truth[res] && pred) {
          ++top_total;
          top_right += sameAntagonist(iv.poll->victim[res], iv) ? 1 : 0;
        }
      }
    }
    // Time to first verdict in each on-period that really hurt the victim.
    std::vector<double> latencies;
    int hurting = 0;
    for (const auto& r : results) {
      if (r.spec.resource != res) continue;
      for (const auto& p : r.periods) {
        if (p.kind != PeriodKind::kAntagonist) continue;
        bool hurt = false;
        std::optional<double> first;
        for (const auto& iv : r.intervals) {
          if (iv.period != &p) continue;
          hurt = hurt || iv.truth[res];
        }
        for (const auto& poll : r.polls) {
          if (poll.t > p.start && poll.t <= p.end + interval && poll.victim[res].on && !first) {
            first = poll.t - p.start;
          }
        }
        if (!hurt) continue;
        ++hurting;
        if (first) latencies.push_back(*first);
      }
    }
    if (!scored && strict.fp == 0) continue;
    std::cout << std::left << std::setw(8) << kResources[res] << std::right << std::setw(7)
              << strict.tp + strict.fn << "  " << std::setw(11) << fixed(strict.precision(), 2)
              << std::setw(8) << fixed(strict.recall(), 2) << std::setw(6) << fixed(strict.f1(), 2)
              << "  |" << std::setw(19) << fixed(inner.precision(), 2) << std::setw(8)
              << fixed(inner.recall(), 2) << std::setw(6) << fixed(inner.f1(), 2) << "  | "
              << std::setw(3) << top_right << "/" << std::setw(3) << top_total << "   | "
              << std::setw(28) << (latencies.empty() ? "-" : fixed(median(latencies), 1) + " s")
              << std::setw(7)
              << (latencies.empty() ? "-" : fixed(percentile(latencies, 0.9), 1) + " s") << "   "
              << latencies.size() << "/" << hurting << " periods\n";
    std::cout << "          (strict: TP " << strict.tp << " FP " << strict.fp << " FN " << strict.fn
              << " TN " << strict.tn << ")\n";
  }
}

void printConfounders(const ScenarioResult& r, double interval) {
  int false_verdicts = 0, tainted = 0, other = 0;
  std::map<std::string, std::pair<int, int>> by_kind;  // kind -> (intervals, with a verdict)
  for (const auto& iv : r.intervals) {
    bool any = false;
    for (const auto& v : iv.poll->victim) any = any || v.on;
    false_verdicts += any ? 1 : 0;
    tainted += iv.poll->tainted ? 1 : 0;
    other += iv.poll->other_verdicts;
    auto& k = by_kind[iv.period ? kindName(iv.period->kind) : "?"];
    ++k.first;
    k.second += any ? 1 : 0;
  }
  const double hours = static_cast<double>(r.intervals.size()) * interval / 3600.0;
  std::cout << "  confounders: " << false_verdicts << " intervals with a verdict on the victim of "
            << r.intervals.size() << " (" << fixed(hours > 0 ? false_verdicts / hours : 0, 1)
            << " false verdicts per hour); verdicts on other pods of this node: " << other
            << "; dry-run taint on in " << tainted << " intervals (must be 0)\n   ";
  for (const auto& [kind, counts] : by_kind) {
    std::cout << " " << kind << ": " << counts.second << "/" << counts.first;
  }
  std::cout << "\n";
}

void writeTrace(const std::string& path, const std::vector<ScenarioResult>& results) {
  std::ofstream out(path);
  out << "scenario,t_s,phase,antagonist_pod,antagonist_on,victim_rate,baseline,drop,edge,"
         "truth_cpu,truth_memory,truth_io,verdict_cpu,verdict_memory,verdict_io,score_cpu,"
         "score_memory,score_io,top_cpu,top_memory,top_io,interference_score,tainted,http_status,"
         "others_cpu,others_memory,others_io,z_cpu,z_memory,z_io,activity_cpu,activity_memory,"
         "activity_io\n";
  for (const auto& r : results) {
    for (const auto& iv : r.intervals) {
      std::string phase = "?";
      if (iv.period != nullptr) {
        phase = iv.period->kind == PeriodKind::kAntagonist
                    ? r.spec.intensities[iv.period->intensity].label
                    : kindName(iv.period->kind);
      }
      out << r.spec.name << "," << fixed(iv.t, 1) << "," << phase << "," << iv.true_pod << ","
          << iv.antagonist_on << "," << fixed(iv.rate, 0) << "," << fixed(r.baseline, 0) << ","
          << fixed(iv.drop, 3) << "," << iv.edge;
      for (const bool b : iv.truth) out << "," << b;
      for (const auto& v : iv.poll->victim) out << "," << v.on;
      for (const auto& v : iv.poll->victim) out << "," << fixed(v.score, 3);
      for (const auto& v : iv.poll->victim) out << "," << v.top_pod;
      out << "," << fixed(iv.poll->interference_score, 3) << "," << iv.poll->tainted << ","
          << iv.poll->status;
      for (const double v : iv.poll->victim_others) out << "," << fixed(v, 3);
      for (const double v : iv.poll->victim_z) out << "," << fixed(v, 2);
      for (const double v : iv.poll->victim_activity) out << "," << fixed(v, 3);
      out << "\n";
    }
  }
}

int run(const Args& args) {
  if (::geteuid() != 0) {
    std::cerr << "bench_detector_eval: needs root (it creates cgroups)\n";
    return 1;
  }
  const std::string agent = besideBuild(args.agent, "agent/nodewarden");
  const std::string victim = besideBuild(args.victim, "bench/bench_victim");
  for (const auto& p : {agent, victim}) {
    if (!fs::exists(p)) {
      std::cerr << "bench_detector_eval: " << p << " not found (build it, or --agent/--victim)\n";
      return 1;
    }
  }
  if (args.node_memory_mib < args.file_mib + 200) {
    std::cerr << "bench_detector_eval: --node-memory-mib must be at least --file-mib + 200\n";
    return 2;
  }
  std::cout << "bench_detector_eval: seed " << args.seed << ", scenarios";
  for (const auto& s : args.scenarios) std::cout << " " << s;
  std::cout << ", " << args.duration << " s each after a " << args.baseline
            << " s baseline, interval " << args.interval << " s\nagent " << agent
            << "\nnode memory limit " << args.node_memory_mib << " MiB, victim working set "
            << args.file_mib << " MiB in " << args.work_dir << "\n";
  {
    std::ifstream load("/proc/loadavg");
    std::string l1;
    load >> l1;
    std::cout << "load average at start: " << l1
              << " (other work on CPU 0 lowers the victim's rate too)\n";
  }

  std::vector<ScenarioResult> results;
  // Intervals point into their result's periods and polls: move results, never copy them.
  results.reserve(args.scenarios.size());
  int rc = 0;
  for (std::size_t i = 0; i < args.scenarios.size() && !g_stop; ++i) {
    const std::string& name = args.scenarios[i];
    std::cout << "\n== scenario " << name << " ==\n" << std::flush;
    ScenarioRunner runner(args, agent, victim, args.seed * 1000003 + i);
    ScenarioResult r = runner.run(name);
    if (!r.error.empty()) {
      std::cerr << "  scenario " << name << " failed: " << r.error << "\n";
      rc = 1;
    }
    if (std::isnan(r.baseline)) continue;
    scoreIntervals(r, args.interval);
    printPhases(r);
    if (r.spec.intensities.empty()) printConfounders(r, args.interval);
    int tainted = 0;
    for (const auto& p : r.polls) tainted += p.tainted ? 1 : 0;
    std::cout << "  agent CPU: " << fixed(r.agent_cpu_seconds, 2) << " s in "
              << fixed(r.agent_wall_seconds, 0) << " s = "
              << fixed(100 * r.agent_cpu_seconds / std::max(1.0, r.agent_wall_seconds), 2)
              << "% of one core; dry-run taint on in " << tainted << " of " << r.polls.size()
              << " polls\n";
    results.push_back(std::move(r));
  }
  if (!results.empty()) {
    printDetectorFigures(results, args.interval);
    if (!args.trace.empty()) {
      writeTrace(args.trace, results);
      std::cout << "trace: " << args.trace << "\n";
    }
  }
  if (g_stop) {
    std::cout << "interrupted: partial figures above; everything created was removed\n";
    return 130;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parseArgs(argc, argv);
  if (!args) {
    usage();
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  return run(*args);
}
