// nodewarden-demo: a small real node on this machine (pods in "spark", "airflow", "kafka" and
// "default" with real workloads in kubelet's cgroup layout), the agent watching it, and the
// commands to look at what it reports. Runs until Ctrl-C / SIGTERM or --duration, then removes
// everything it made.
//
// What a reader gets wrong: the demo needs root (it creates cgroups) and creates memory cgroups
// only below the memory cgroup it runs in; nothing is created at a hierarchy's root.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
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
using namespace std::chrono_literals;

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

struct Args {
  std::string agent;
  std::string listen = "127.0.0.1:9465";
  double duration = 0;  // 0: until a signal
  nt::CgroupDriver driver = nt::CgroupDriver::kCgroupfs;
  nt::ContainerRuntime runtime = nt::ContainerRuntime::kContainerd;
};

void usage() {
  std::cerr << "usage: nodewarden-demo [--agent PATH] [--listen HOST:PORT] [--duration SECONDS]\n"
               "                       [--driver cgroupfs|systemd] [--runtime "
               "containerd|crio|docker]\n";
}

std::optional<Args> parseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    std::optional<std::string> v;
    if (arg == "-h" || arg == "--help") return std::nullopt;
    if (!(v = value())) {
      std::cerr << "missing value for " << arg << "\n";
      return std::nullopt;
    }
    if (arg == "--agent") {
      a.agent = *v;
    } else if (arg == "--listen") {
      a.listen = *v;
    } else if (arg == "--duration") {
      char* end = nullptr;
      a.duration = std::strtod(v->c_str(), &end);
      if (end == v->c_str() || *end != '\0' || a.duration < 0) {
        std::cerr << "--duration wants seconds, got " << *v << "\n";
        return std::nullopt;
      }
    } else if (arg == "--driver" && (*v == "cgroupfs" || *v == "systemd")) {
      a.driver = *v == "systemd" ? nt::CgroupDriver::kSystemd : nt::CgroupDriver::kCgroupfs;
    } else if (arg == "--runtime" && (*v == "containerd" || *v == "crio" || *v == "docker")) {
      a.runtime = *v == "crio"     ? nt::ContainerRuntime::kCrio
                  : *v == "docker" ? nt::ContainerRuntime::kDocker
                                   : nt::ContainerRuntime::kContainerd;
    } else {
      std::cerr << "unknown option " << arg << " " << *v << "\n";
      return std::nullopt;
    }
  }
  return a;
}

// The agent: --agent, else <build>/agent/nodewarden relative to this binary
// (<build>/tests/support/nodewarden-demo), else the path this build was configured with.
std::string findAgent(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path sibling =
        self.parent_path().parent_path().parent_path() / "agent" / "nodewarden";
    if (fs::exists(sibling)) return sibling.string();
  }
  return NODEWARDEN_AGENT_BINARY;
}

bool sleepUnlessStopped(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!g_stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
  return !g_stop;
}

// The lines of /metrics whose metric is one of names and that mention one of the demo's pods.
void printMetrics(const std::string& base, const std::vector<std::string>& names,
                  const std::vector<std::string>& pods) {
  auto r = nt::httpGet(base + "/metrics");
  if (!r || r->status != 200) {
    std::cout << "  (GET /metrics failed: " << (r ? std::to_string(r->status) : r.error()) << ")\n";
    return;
  }
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    bool metric = false;
    for (const auto& n : names) metric = metric || line.starts_with(n + "{");
    bool pod = false;
    for (const auto& p : pods) pod = pod || line.find("pod=\"" + p + "\"") != std::string::npos;
    if (metric && pod) std::cout << "  " << line << "\n";
  }
}

int runDemo(const Args& args) {
  if (::geteuid() != 0) {
    std::cerr << "nodewarden-demo: needs root (it creates cgroups)\n";
    return 1;
  }
  const std::string agent_path = findAgent(args.agent);
  if (!fs::exists(agent_path)) {
    std::cerr << "nodewarden-demo: agent not found at " << agent_path
              << " (build it or pass --agent)\n";
    return 1;
  }
  nt::NodeBuilderOptions options;
  options.driver = args.driver;
  options.runtime = args.runtime;
  // The test prefix, so that a demo killed with -9 is swept by the next builder.
  options.parent = "nodewarden-test-" + std::to_string(::getpid()) + "-demo";
  auto made = nt::NodeBuilder::create(options);
  if (!made) {
    std::cerr << "nodewarden-demo: " << made.error() << "\n";
    return 1;
  }
  std::unique_ptr<nt::NodeBuilder> node = std::move(*made);
  const fs::path tmp = node->tempDir();
  std::cout << "demo node: " << nt::driverName(args.driver) << " driver, "
            << nt::runtimeName(args.runtime) << " runtime, cgroups under <hierarchy>/"
            << node->parent() << ", files in " << tmp << "\n";

  struct Workload {
    std::string ns, pod, container;
    nt::PodQos qos;
    std::int64_t quota_us, memory;
    std::vector<std::string> argv;
  };
  constexpr std::int64_t kMiB = 1 << 20;
  const std::vector<Workload> workloads = {
      {"spark",
       "spark-executor-1",
       "executor",
       nt::PodQos::kBurstable,
       150000,
       1024 * kMiB,
       {"stress-ng", "--cpu", "1", "--cpu-load", "80", "--quiet"}},
      {"airflow",
       "airflow-worker-0",
       "worker",
       nt::PodQos::kGuaranteed,
       20000,
       256 * kMiB,
       {"stress-ng", "--cpu", "1", "--cpu-load", "100", "--quiet"}},
      {"kafka",
       "kafka-0",
       "broker",
       nt::PodQos::kBurstable,
       -1,
       256 * kMiB,
       {"stress-ng", "--vm", "1", "--vm-bytes", "100M", "--vm-keep", "--quiet"}},
      {"default", "idle-shell", "shell", nt::PodQos::kBestEffort, -1, -1, {"sleep", "infinity"}},
  };
  std::vector<std::string> pods;
  for (const auto& w : workloads) {
    auto pod = node->addPod(w.ns, w.pod, "", w.qos);
    if (!pod) {
      std::cerr << "nodewarden-demo: " << pod.error() << "\n";
      return 1;
    }
    auto c = (*pod)->addContainer(nt::containerSpec(w.container, w.quota_us, w.memory));
    if (!c) {
      std::cerr << "nodewarden-demo: " << c.error() << "\n";
      return 1;
    }
    if (auto pid = (*c)->run(w.argv); !pid) {
      std::cerr << "nodewarden-demo: " << pid.error() << "\n";
      return 1;
    }
    pods.push_back(w.pod);
    std::cout << "  pod " << w.ns << "/" << w.pod << " (" << nt::qosName(w.qos) << "): ";
    for (const auto& a : w.argv) std::cout << a << " ";
    if (w.quota_us >= 0) std::cout << "[cpu limit " << static_cast<double>(w.quota_us) / 1e5 << "]";
    if (w.memory >= 0) std::cout << "[memory limit " << w.memory / kMiB << " MiB]";
    std::cout << "\n";
  }

  nt::SpawnOptions spawn;
  spawn.output = tmp / "agent.log";
  auto agent = nt::ChildProcess::start(
      {agent_path, "run", "--listen", args.listen, "--cgroup-root", "/sys/fs/cgroup", "--proc-root",
       "/proc", "--log-root", node->logRoot().string(), "--state-dir", (tmp / "state").string(),
       "--interval", "2s", "--node-name", "demo-node"},
      spawn);
  if (!agent) {
    std::cerr << "nodewarden-demo: cannot start the agent: " << agent.error() << "\n";
    return 1;
  }
  const std::string base = "http://" + args.listen;
  std::cout << "agent: " << agent_path << " (pid " << agent->pid() << ", log "
            << spawn.output.string() << ")\nwaiting for " << base << "/readyz ...\n";
  bool ready = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!g_stop && std::chrono::steady_clock::now() < deadline) {
    if (!agent->running()) break;
    auto r = nt::httpGet(base + "/readyz", 1s);
    if (r && r->status == 200) {
      ready = true;
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  int rc = 0;
  if (!ready) {
    std::cerr << "nodewarden-demo: the agent did not become ready";
    if (auto st = agent->exitStatus()) std::cerr << " (" << nt::describeWaitStatus(*st) << ")";
    std::cerr << "; its log: " << spawn.output.string() << "\n";
    rc = g_stop ? 0 : 1;
  } else {
    // One more cycle so that rates have two points.
    sleepUnlessStopped(4500ms);
    std::cout << "\nready. look at it with:\n"
              << "  curl -s " << base << "/metrics | grep -E 'container_cpu_usage_seconds_total|"
              << "container_memory_working_set_bytes' | grep -E 'spark|airflow|kafka|default'\n"
              << "  curl -s " << base << "/healthz\n"
              << "  curl -s " << base << "/readyz\n"
              << "  kubelet-style logs: ls " << node->logRoot().string() << " "
              << node->containerLogDir().string() << "\n\n"
              << "a few lines of /metrics:\n";
    printMetrics(base,
                 {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
                  "container_cpu_cfs_throttled_periods_total", "container_spec_cpu_quota"},
                 pods);
    if (args.duration > 0) {
      std::cout << "\nrunning for " << args.duration << " s (Ctrl-C stops earlier)\n";
    } else {
      std::cout << "\nrunning until Ctrl-C\n";
    }
    std::cout.flush();
    const auto end =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::duration<double>(args.duration));
    while (!g_stop && (args.duration <= 0 || std::chrono::steady_clock::now() < end)) {
      if (!agent->running()) {
        std::cerr << "nodewarden-demo: the agent exited ("
                  << nt::describeWaitStatus(agent->exitStatus().value_or(0))
                  << "); its log: " << spawn.output.string() << "\n";
        rc = 1;
        break;
      }
      std::this_thread::sleep_for(200ms);
    }
  }
  std::cout << "stopping the agent and removing the demo node\n";
  agent->stop(5s);
  if (rc != 0) {
    // Keep the agent's log where it can be read: the node's temp dir goes away.
    std::error_code ec;
    const fs::path kept = fs::temp_directory_path() /
                          ("nodewarden-demo-agent-" + std::to_string(::getpid()) + ".log");
    fs::copy_file(spawn.output, kept, fs::copy_options::overwrite_existing, ec);
    if (!ec) std::cerr << "agent log kept at " << kept.string() << "\n";
  }
  if (auto r = node->cleanup(); !r) {
    std::cerr << "nodewarden-demo: cleanup: " << r.error() << "\n";
    rc = 1;
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
  return runDemo(*args);
}
