// kube-prometheus compatibility: the real agent on a real node of cgroups (NodeBuilder's kubepods
// tree with processes in it, named by the fake kubelet), scraped by the real Prometheus exactly as
// deploy/kubernetes/components/kube-prometheus's ServiceMonitor says (its relabelings and
// metricRelabelings are read from that file), beside a kube-state-metrics target the test serves
// for the same pods. Recording rules of the shape of kube-prometheus' k8s.rules
// (kube_prometheus/rules.yaml, checked by promtool) run on them, and every query of
// kube_prometheus/queries.yaml (the shapes of kubernetes-mixin's dashboards and CPUThrottlingHigh)
// must return data. The pods' processes run in network namespaces of their own (the Deployment's
// pod in one, the StatefulSet's in another, a veth pair between them with a few datagrams across),
// as a pod network gives them: the agent reports no container_network_* for a pod in the node's
// namespace.
//
// What a reader gets wrong: the queries are not a list of names to grep for. Each is evaluated by
// Prometheus over the scraped series and the rules' output, so a wrong label (job, metrics_path,
// node, image=""), a join that finds no partner in kube-state-metrics, or a series missing from
// /metrics/cadvisor makes it return nothing. Scrape and evaluation run every second; the wait is
// a few intervals (rates need two samples, the sidecar's image needs the naming hold to end).
#include <civetweb.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/fakes/fake_kubelet.h"
#include "tests/support/child_process.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback_certificate.h"
#include "tests/support/net_namespace.h"
#include "tests/support/node_builder.h"
#include "tests/support/prometheus_server.h"

namespace nodewarden::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Json = nlohmann::json;

const fs::path kSource = NODEWARDEN_SOURCE_DIR;
const fs::path kDir = kSource / "tests/integration/kube_prometheus";
constexpr const char* kNode = "test-node";
constexpr const char* kAgentPod = "nodewarden-x7k2p";  // the agent's own pod, as a target label

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout, std::chrono::milliseconds poll = 250ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
}

// A Prometheus Operator relabeling (camelCase keys) as a Prometheus relabel_config.
YAML::Node relabelConfig(const YAML::Node& op) {
  static const std::map<std::string, std::string> kKeys = {{"sourceLabels", "source_labels"},
                                                           {"targetLabel", "target_label"},
                                                           {"separator", "separator"},
                                                           {"regex", "regex"},
                                                           {"replacement", "replacement"},
                                                           {"action", "action"},
                                                           {"modulus", "modulus"}};
  YAML::Node out;
  for (const auto& kv : op) {
    const auto it = kKeys.find(kv.first.Scalar());
    if (it == kKeys.end()) throw std::runtime_error("unknown relabeling key " + kv.first.Scalar());
    out[it->second] = kv.second;
  }
  return out;
}

// kube-state-metrics' text for the pods the test built: what the mixin's joins need.
struct KsmPod {
  std::string ns, name, uid, owner_kind, owner_name;
  struct Resources {
    std::string container;
    double cpu_request, cpu_limit, memory_request, memory_limit;
  };
  std::vector<Resources> containers;
};

std::string ksmText(const std::vector<KsmPod>& pods) {
  std::ostringstream o;
  for (const auto& p : pods) {
    const std::string id =
        "namespace=\"" + p.ns + "\",pod=\"" + p.name + "\",uid=\"" + p.uid + "\"";
    o << "kube_pod_info{" << id << ",node=\"" << kNode << "\",created_by_kind=\"" << p.owner_kind
      << "\",created_by_name=\"" << p.owner_name
      << "\",host_ip=\"10.0.0.1\",pod_ip=\"10.1.0.2\",priority_class=\"\"} 1\n";
    o << "kube_pod_owner{" << id << ",owner_kind=\"" << p.owner_kind << "\",owner_name=\""
      << p.owner_name << "\",owner_is_controller=\"true\"} 1\n";
    for (const char* phase : {"Pending", "Running", "Succeeded", "Failed", "Unknown"}) {
      o << "kube_pod_status_phase{" << id << ",phase=\"" << phase << "\"} "
        << (std::string(phase) == "Running" ? 1 : 0) << "\n";
    }
    for (const auto& c : p.containers) {
      const std::string cid = id + ",container=\"" + c.container + "\",node=\"" + kNode + "\"";
      o << "kube_pod_container_resource_requests{" << cid << ",resource=\"cpu\",unit=\"core\"} "
        << c.cpu_request << "\n";
      o << "kube_pod_container_resource_requests{" << cid << ",resource=\"memory\",unit=\"byte\"} "
        << c.memory_request << "\n";
      o << "kube_pod_container_resource_limits{" << cid << ",resource=\"cpu\",unit=\"core\"} "
        << c.cpu_limit << "\n";
      o << "kube_pod_container_resource_limits{" << cid << ",resource=\"memory\",unit=\"byte\"} "
        << c.memory_limit << "\n";
    }
    if (p.owner_kind == "ReplicaSet") {
      o << "kube_replicaset_owner{namespace=\"" << p.ns << "\",replicaset=\"" << p.owner_name
        << "\",owner_kind=\"Deployment\",owner_name=\"checkout\",owner_is_controller=\"true\"} 1\n";
    }
  }
  o << "kube_node_status_allocatable{node=\"" << kNode << "\",resource=\"cpu\",unit=\"core\"} 2\n";
  o << "kube_node_status_allocatable{node=\"" << kNode
    << "\",resource=\"memory\",unit=\"byte\"} 4294967296\n";
  return o.str();
}

// kube-state-metrics' /metrics: a fixed text, served by civetweb on a loopback port.
class KsmTarget {
 public:
  explicit KsmTarget(std::string text) : text_(std::move(text)) {
    const char* options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "2", nullptr};
    mg_callbacks callbacks{};
    callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
    ctx_ = mg_start(&callbacks, this, options);
    if (ctx_ == nullptr) return;
    std::array<mg_server_port, 1> info{};
    if (mg_get_server_ports(ctx_, 1, info.data()) >= 1) port_ = info[0].port;
    mg_set_request_handler(
        ctx_, "/metrics",
        [](mg_connection* conn, void* self) {
          const std::string& body = static_cast<KsmTarget*>(self)->text_;
          mg_printf(conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    body.size());
          mg_write(conn, body.data(), body.size());
          return 200;
        },
        this);
  }
  ~KsmTarget() {
    if (ctx_ != nullptr) mg_stop(ctx_);
  }
  KsmTarget(const KsmTarget&) = delete;
  KsmTarget& operator=(const KsmTarget&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  std::string text_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;
};

struct Query {
  std::string name;
  std::string dashboard;
  std::string needs;  // empty: must pass on every build
  std::string expr;
  std::string kernel;  // the counters it needs from the kernel; empty: none
};

std::vector<Query> loadQueries(const std::map<std::string, std::string>& vars) {
  std::vector<Query> out;
  for (const auto& q : YAML::LoadFile((kDir / "queries.yaml").string())) {
    Query query{q["name"].as<std::string>(), q["dashboard"].as<std::string>(), "",
                q["expr"].as<std::string>(), ""};
    if (q["kernel"]) query.kernel = q["kernel"].as<std::string>();
    if (q["needs"]) {
      for (const auto& n : q["needs"]) {
        query.needs += (query.needs.empty() ? "" : ", ") + n.as<std::string>();
      }
    }
    // Longest names first: $namespace must not be read as $name + "space".
    for (auto it = vars.rbegin(); it != vars.rend(); ++it) {
      replaceAll(query.expr, it->first, it->second);
    }
    out.push_back(std::move(query));
  }
  return out;
}

// The node, the fake kubelet, the agent, kube-state-metrics and Prometheus, shared by the tests
// of the suite (starting them is most of the suite's time).
class Stack {
 public:
  static std::expected<std::unique_ptr<Stack>, std::string> start() {
    auto s = std::unique_ptr<Stack>(new Stack());
    if (auto r = s->build(); !r) return std::unexpected(r.error());
    return s;
  }
  ~Stack() {
    if (prometheus_) prometheus_->stop();
    if (agent_.running()) agent_.stop(5s);
    ksm_.reset();
    node_.reset();
    kubelet_.reset();
    fs::remove_all(dir_);
  }

  [[nodiscard]] const PrometheusServer& prometheus() const { return *prometheus_; }
  [[nodiscard]] const std::map<std::string, std::string>& vars() const { return vars_; }
  [[nodiscard]] int agentPort() const { return agent_port_; }
  [[nodiscard]] const NetnsPair& netns() const { return netns_; }
  [[nodiscard]] std::string logs() const {
    std::string agent = slurp(dir_ / "agent.log");
    if (agent.size() > 3000) agent = agent.substr(agent.size() - 3000);
    return "--- agent log (tail) ---\n" + agent + "\n--- prometheus log (tail) ---\n" +
           prometheus_->logTail();
  }

  // Whether the kernel fills the counters a query needs, read from the sidecar's own cgroup (it
  // writes with O_DIRECT and has a memory limit): "block-io" (a non-zero blkio.throttle.* or an
  // io.stat line), "swap" (memory.stat's total_swap / memory.swap.current).
  bool kernelFills(const std::string& counters) const {
    if (counters == "block-io") {
      for (const char* f : {"blkio/blkio.throttle.io_serviced", "unified/io.stat"}) {
        const fs::path file(f);
        const auto dir = sidecar_->cgroupDir(file.parent_path().string());
        if (!dir) continue;
        std::istringstream in(slurp(*dir / file.filename()));
        for (std::string line; std::getline(in, line);) {
          if (!line.starts_with("Total") && line.find_first_of("123456789") != std::string::npos) {
            return true;
          }
        }
      }
      return false;
    }
    if (counters == "swap") {
      return sidecar_->readKey("memory", "memory.stat", "total_swap").has_value() ||
             (sidecar_->cgroupDir("unified") &&
              fs::exists(*sidecar_->cgroupDir("unified") / "memory.swap.current"));
    }
    ADD_FAILURE() << "unknown kernel counters " << counters;
    return false;
  }

  // The series a query returns now (0 on an error, with the error in *error).
  std::size_t seriesOf(const std::string& promql, std::string* error = nullptr) const {
    auto body = prometheus_->query(promql);
    if (!body) {
      if (error != nullptr) *error = body.error();
      return 0;
    }
    const Json doc = Json::parse(*body, nullptr, false);
    if (doc.is_discarded() || doc.value("status", "") != "success") {
      if (error != nullptr) *error = *body;
      return 0;
    }
    return doc["data"]["result"].size();
  }

 private:
  Stack() {
    dir_ = fs::temp_directory_path() / ("nodewarden-kube-prometheus-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  std::expected<void, std::string> build() {
    auto check = ChildProcess::start({"promtool", "check", "rules", (kDir / "rules.yaml").string()},
                                     SpawnOptions{dir_ / "promtool.log", {}, true});
    if (!check) return std::unexpected(check.error());
    ChildProcess promtool = std::move(*check);
    if (!waitFor([&] { return !promtool.running(); }, 30s) || promtool.exitStatus() != 0) {
      return std::unexpected("promtool check rules failed:\n" + slurp(dir_ / "promtool.log"));
    }
    if (auto r = buildNode(); !r) return r;
    if (auto r = startKubelet(); !r) return r;
    if (auto r = startAgent(); !r) return r;
    ksm_ = std::make_unique<KsmTarget>(ksmText(ksm_pods_));
    if (ksm_->port() <= 0) return std::unexpected("kube-state-metrics target: cannot listen");
    return startPrometheus();
  }

  std::expected<void, std::string> buildNode() {
    auto node = NodeBuilder::create();
    if (!node) return std::unexpected(node.error());
    node_ = std::move(*node);
    if (const std::string failed = netns_.create(); !failed.empty()) {
      return std::unexpected("could not set up network namespaces: " + failed);
    }
    // argv run inside ns, returned once the process is there (the agent must not take it for a
    // hostNetwork pod's while `ip netns exec` has not entered the namespace yet).
    auto runIn = [](Container& c, const std::string& ns,
                    std::vector<std::string> argv) -> std::expected<void, std::string> {
      argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
      auto pid = c.run(argv);
      if (!pid) return std::unexpected(pid.error());
      if (!waitOutsideNodeNetns(*pid, 10s)) {
        return std::unexpected(c.name() + ": the process did not enter " + ns);
      }
      return {};
    };
    constexpr std::int64_t kMiB = 1 << 20;
    // A Deployment's pod: a CPU-bound app held to 0.2 CPU (throttled every period, for
    // CPUThrottlingHigh) and a sidecar writing to disk (block IO) whose image the kubelet does
    // not report (collectors.pods.unknown_image).
    auto checkout = node_->addPod("shop", "checkout-7d9f8b6c5-x2k4q", "", PodQos::kBurstable);
    if (!checkout) return std::unexpected(checkout.error());
    auto app = (*checkout)->addContainer(containerSpec("app", 20000, 256 * kMiB));
    if (!app) return std::unexpected(app.error());
    if (auto r = runIn(**app, netns_.a(), {"sh", "-c", "while :; do :; done"}); !r) {
      return std::unexpected(r.error());
    }
    auto sidecar = (*checkout)->addContainer(containerSpec("sidecar", -1, 64 * kMiB));
    if (!sidecar) return std::unexpected(sidecar.error());
    sidecar_ = *sidecar;
    const std::string io = (dir_ / "io").string();
    if (auto r = runIn(**sidecar, netns_.a(),
                       {"sh", "-c",
                        "while :; do dd if=/dev/zero of=" + io +
                            " bs=64k count=16 oflag=direct conv=fsync 2>/dev/null; dd if=" + io +
                            " of=/dev/null bs=64k iflag=direct 2>/dev/null; sleep 0.2; done"});
        !r) {
      return std::unexpected(r.error());
    }
    // A StatefulSet's pod in another namespace.
    auto ingest = node_->addPod("data", "ingest-0", "", PodQos::kGuaranteed);
    if (!ingest) return std::unexpected(ingest.error());
    auto worker = (*ingest)->addContainer(containerSpec("ingest", 10000, 64 * kMiB));
    if (!worker) return std::unexpected(worker.error());
    if (auto r = runIn(**worker, netns_.b(), {"sleep", "600"}); !r) {
      return std::unexpected(r.error());
    }
    // Traffic both ways across the veth pair, so that the pods' counters move (nothing listens:
    // the ARP replies and ICMP port unreachables come back).
    for (const auto& [from, to] : {std::pair{netns_.a(), NetnsPair::addressB()},
                                   std::pair{netns_.b(), NetnsPair::addressA()}}) {
      if (sendUdpFrom(from, to, 9999, 20, 200) != 20) {
        return std::unexpected("could not send datagrams from " + from);
      }
    }

    const Pod& c = **checkout;
    const Pod& i = **ingest;
    ksm_pods_ = {
        {c.ns(),
         c.name(),
         c.uid(),
         "ReplicaSet",
         "checkout-7d9f8b6c5",
         {{"app", 0.1, 0.2, 128.0 * kMiB, 256.0 * kMiB},
          {"sidecar", 0.05, 0.1, 32.0 * kMiB, 64.0 * kMiB}}},
        {i.ns(),
         i.name(),
         i.uid(),
         "StatefulSet",
         "ingest",
         {{"ingest", 0.1, 0.1, 64.0 * kMiB, 64.0 * kMiB}}},
    };
    vars_ = {{"$cluster", ""},          {"$namespace", c.ns()},  {"$pod", c.name()},
             {"$workload", "checkout"}, {"$type", "deployment"}, {"$node", kNode}};
    // The kubelet's view: both pods; the sidecar's status (and so its image) is missing.
    auto status = [](const Container& ctr, const std::string& image) {
      return Json{{"name", ctr.name()},
                  {"containerID", "containerd://" + ctr.id()},
                  {"image", image},
                  {"restartCount", 0},
                  {"state", {{"running", {{"startedAt", "2026-12-07T00:00:00Z"}}}}}};
    };
    auto item = [&](const Pod& pod, const std::string& kind, const std::string& owner,
                    const std::string& qos, Json statuses) {
      return Json{
          {"metadata",
           {{"name", pod.name()},
            {"namespace", pod.ns()},
            {"uid", pod.uid()},
            {"ownerReferences",
             Json::array({{{"apiVersion", "apps/v1"},
                           {"kind", kind},
                           {"name", owner},
                           {"uid", "0c0c0c0c-0000-4000-8000-" + pod.uid().substr(24)},
                           {"controller", true}}})}}},
          {"spec", {{"nodeName", kNode}}},
          {"status", {{"phase", "Running"}, {"qosClass", qos}, {"containerStatuses", statuses}}}};
    };
    pod_list_ =
        Json{{"kind", "PodList"},
             {"apiVersion", "v1"},
             {"metadata", Json::object()},
             {"items",
              Json::array({item(c, "ReplicaSet", "checkout-7d9f8b6c5", "Burstable",
                                Json::array({status(**app, "registry.example/shop:4.1")})),
                           item(i, "StatefulSet", "ingest", "Guaranteed",
                                Json::array({status(**worker, "registry.example/ingest:2")}))})}}
            .dump();
    return {};
  }

  std::expected<void, std::string> startKubelet() {
    const auto pki = makeLoopbackCertificate(dir_ / "pki");
    if (!pki) return std::unexpected(pki.error());
    FakeKubeletOptions ko;
    ko.token = "kube-prometheus-test-token";
    ko.certificate_file = pki->certificate;
    ko.key_file = pki->key;
    ko.pod_list = pod_list_;
    auto kubelet = FakeKubelet::start(ko);
    if (!kubelet) return std::unexpected(kubelet.error());
    kubelet_ = std::move(*kubelet);
    std::ofstream(dir_ / "token") << ko.token << "\n";
    return {};
  }

  std::expected<void, std::string> startAgent() {
    agent_port_ = freeLoopbackPort();
    if (agent_port_ <= 0) return std::unexpected("no free port");
    std::ofstream config(dir_ / "config.yaml");
    config << "interval: 1s\n"
           << "node_name: " << kNode << "\n"
           << "collectors:\n"
              "  journal:\n    enabled: false\n"
              "  logs:\n    enabled: false\n"
              "  jobs:\n    enabled: false\n"
              "  pods:\n    runtime_state: false\n    apiserver: false\n"
              "    kubelet_refresh_interval: 1s\n"
              "kubernetes:\n  token_file: "
           << (dir_ / "token").string() << "\n  kubelet_url: " << kubelet_->url()
           << "\n  kubelet_insecure_skip_verify: true\n";
    config.close();
    SpawnOptions o;
    o.output = dir_ / "agent.log";
    auto child = ChildProcess::start(
        {NODEWARDEN_BINARY, "run", "--config", (dir_ / "config.yaml").string(), "--listen",
         "127.0.0.1:" + std::to_string(agent_port_), "--cgroup-root", "/sys/fs/cgroup",
         "--proc-root", "/proc", "--log-root", node_->logRoot().string(), "--state-dir",
         (dir_ / "state").string()},
        o);
    if (!child) return std::unexpected(child.error());
    agent_ = std::move(*child);
    const std::string ready = "http://127.0.0.1:" + std::to_string(agent_port_) + "/readyz";
    if (!waitFor(
            [&] {
              auto r = httpGet(ready, 1s);
              return !agent_.running() || (r && r->status == 200);
            },
            30s) ||
        !agent_.running()) {
      return std::unexpected("agent not ready\n" + slurp(dir_ / "agent.log"));
    }
    return {};
  }

  // The ServiceMonitor's endpoint as a scrape config, with the target labels the Prometheus
  // Operator gives a pod endpoint of a Service (namespace, service, endpoint, pod, container) and
  // the pod's node as service discovery would.
  std::expected<void, std::string> startPrometheus() {
    const YAML::Node monitor = YAML::LoadFile(
        (kSource / "deploy/kubernetes/components/kube-prometheus/servicemonitor-cadvisor.yaml")
            .string());
    const YAML::Node endpoint = monitor["spec"]["endpoints"][0];
    YAML::Node cadvisor;
    cadvisor["job_name"] = "serviceMonitor/nodewarden/nodewarden-cadvisor/0";
    cadvisor["metrics_path"] = endpoint["path"].as<std::string>();
    cadvisor["honor_labels"] = endpoint["honorLabels"].as<bool>();
    cadvisor["honor_timestamps"] = endpoint["honorTimestamps"].as<bool>();
    YAML::Node target;
    target["targets"].push_back("127.0.0.1:" + std::to_string(agent_port_));
    target["labels"]["__meta_kubernetes_pod_node_name"] = kNode;
    target["labels"]["namespace"] = "nodewarden";
    target["labels"]["service"] = "nodewarden";
    target["labels"]["endpoint"] = "metrics";
    target["labels"]["pod"] = kAgentPod;
    target["labels"]["container"] = "kube-rbac-proxy";
    cadvisor["static_configs"].push_back(target);
    for (const auto& r : endpoint["relabelings"]) {
      cadvisor["relabel_configs"].push_back(relabelConfig(r));
    }
    for (const auto& r : endpoint["metricRelabelings"]) {
      cadvisor["metric_relabel_configs"].push_back(relabelConfig(r));
    }
    YAML::Node ksm;
    ksm["job_name"] = "kube-state-metrics";
    ksm["honor_labels"] = true;
    YAML::Node ksm_target;
    ksm_target["targets"].push_back("127.0.0.1:" + std::to_string(ksm_->port()));
    ksm["static_configs"].push_back(ksm_target);
    YAML::Node config;
    config["global"]["scrape_interval"] = "1s";
    config["global"]["scrape_timeout"] = "1s";
    config["global"]["evaluation_interval"] = "1s";
    config["rule_files"].push_back((kDir / "rules.yaml").string());
    config["scrape_configs"].push_back(cadvisor);
    config["scrape_configs"].push_back(ksm);
    PrometheusServerOptions po;
    po.binary = NODEWARDEN_PROMETHEUS;
    po.dir = dir_ / "prometheus";
    po.config_yaml = YAML::Dump(config);
    auto server = PrometheusServer::start(po);
    if (!server) return std::unexpected(server.error());
    prometheus_ = std::make_unique<PrometheusServer>(std::move(*server));
    return {};
  }

  fs::path dir_;
  NetnsPair netns_;  // outlives the node's processes in it
  std::unique_ptr<NodeBuilder> node_;
  Container* sidecar_ = nullptr;  // owned by node_
  std::unique_ptr<FakeKubelet> kubelet_;
  std::unique_ptr<KsmTarget> ksm_;
  std::unique_ptr<PrometheusServer> prometheus_;
  ChildProcess agent_;
  int agent_port_ = 0;
  std::vector<KsmPod> ksm_pods_;
  std::string pod_list_;
  std::map<std::string, std::string> vars_;
};

class KubePrometheusCompatibility : public ::testing::Test {
 protected:
  static bool runnable() {
    return ::geteuid() == 0 && fs::exists(NODEWARDEN_PROMETHEUS) && fs::exists("/usr/bin/promtool");
  }
  static void SetUpTestSuite() {
    if (!runnable()) return;  // each test skips
    auto stack = Stack::start();
    if (!stack) {
      start_error_ = new std::string(stack.error());
      return;
    }
    stack_ = stack->release();
    const auto t0 = std::chrono::steady_clock::now();
    // A few scrapes and rule evaluations: the rules' irate needs two samples of each container,
    // and the sidecar (image unknown) is exported once the naming hold is over.
    const bool ok = waitFor(
        [] {
          return stack_->seriesOf(
                     "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate") >=
                     3 &&
                 stack_->seriesOf(
                     "node_namespace_pod_container:container_memory_working_set_bytes"
                     "{container=\"sidecar\"}") == 1;
        },
        60s);
    warmup_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!ok) start_error_ = new std::string("the recording rules never saw the three containers");
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    if (!runnable()) GTEST_SKIP() << "prometheus or promtool not installed (scripts/setup.sh)";
    ASSERT_EQ(start_error_, nullptr) << *start_error_ << (stack_ ? "\n" + stack_->logs() : "");
  }

  // Queries of the list that fail now, each polled for `settle` at most (a rate over a series
  // that just appeared needs another sample), with what they wait for.
  static std::vector<std::string> failing(bool with_needs, std::chrono::milliseconds settle,
                                          std::size_t* checked) {
    std::vector<std::string> failures;
    *checked = 0;
    for (const auto& q : loadQueries(stack_->vars())) {
      if (q.needs.empty() == with_needs) continue;
      if (!q.kernel.empty() && !stack_->kernelFills(q.kernel)) {
        std::cout << "not applicable here (the kernel fills no " << q.kernel
                  << " counters of the cgroup): " << q.name << "\n";
        continue;
      }
      ++*checked;
      std::string error;
      if (waitFor([&] { return stack_->seriesOf(q.expr, &error) > 0; }, settle, 500ms)) continue;
      failures.push_back(
          q.name + " [" + q.dashboard + "]" + (q.needs.empty() ? "" : " needs " + q.needs) +
          (error.empty() ? " returned no series" : ": " + error) + "\n    " + q.expr);
    }
    return failures;
  }

  static Stack* stack_;
  static std::string* start_error_;
  static double warmup_seconds_;
};

Stack* KubePrometheusCompatibility::stack_ = nullptr;
std::string* KubePrometheusCompatibility::start_error_ = nullptr;
double KubePrometheusCompatibility::warmup_seconds_ = 0;

// The scrape as the overlay sets it up: job="kubelet", metrics_path and node on every series of
// /metrics/cadvisor, none of the agent's own or node_exporter's series under that job, and no
// label of the agent's own pod on the series (honorLabels, the labeldrop).
TEST_F(KubePrometheusCompatibility, TheCadvisorScrapeCarriesTheKubeletsLabelsOnly) {
  std::cout << "warm-up (first scrape to rules with every container): " << warmup_seconds_
            << " s\n";
  EXPECT_EQ(stack_->seriesOf("up{job=\"kubelet\", metrics_path=\"/metrics/cadvisor\", node=\"" +
                             std::string(kNode) + "\"} == 1"),
            1U);
  EXPECT_GT(stack_->seriesOf("container_cpu_usage_seconds_total{job=\"kubelet\", "
                             "metrics_path=\"/metrics/cadvisor\", node=\"test-node\"}"),
            0U);
  EXPECT_EQ(stack_->seriesOf("machine_cpu_cores{job=\"kubelet\", node=\"test-node\"}"), 1U);
  EXPECT_EQ(stack_->seriesOf("{job=\"kubelet\", __name__=~\"(node|nodewarden)_[^:]+\"}"), 0U)
      << "/metrics/cadvisor serves cAdvisor's series only";
  EXPECT_EQ(stack_->seriesOf("{job=\"kubelet\", pod=\"" + std::string(kAgentPod) + "\"}"), 0U);
  EXPECT_EQ(stack_->seriesOf("{job=\"kubelet\", container=\"kube-rbac-proxy\"}"), 0U);
  // Pod-level cgroups keep image="" and container="" (the rules' image!="" leaves them out).
  EXPECT_GT(stack_->seriesOf("container_memory_working_set_bytes{job=\"kubelet\", "
                             "namespace=\"shop\", container=\"\", image=\"\"}"),
            0U);
  // The image the kubelet reports, and the placeholder where it reports none.
  EXPECT_EQ(stack_->seriesOf("container_memory_working_set_bytes{job=\"kubelet\", "
                             "container=\"app\", image=\"registry.example/shop:4.1\"}"),
            1U);
  EXPECT_EQ(stack_->seriesOf("container_memory_working_set_bytes{job=\"kubelet\", "
                             "container=\"sidecar\", image=\"unknown\"}"),
            1U);
  // Network per pod, each pod with its own end of the veth pair and the datagrams it sent; the
  // node's own interfaces once, on the root (id="/", no pod).
  EXPECT_EQ(stack_->seriesOf("count by (namespace, pod) (container_network_transmit_packets_total{"
                             "job=\"kubelet\", metrics_path=\"/metrics/cadvisor\", pod!=\"\"})"),
            2U);
  EXPECT_GE(stack_->seriesOf("container_network_transmit_packets_total{job=\"kubelet\", "
                             "metrics_path=\"/metrics/cadvisor\", id=\"/\", pod=\"\"}"),
            1U);
  EXPECT_EQ(stack_->seriesOf("count by (id) (container_network_transmit_packets_total{"
                             "job=\"kubelet\", pod=\"\"})"),
            1U)
      << "no QoS or kubepods cgroup carries the node's interfaces again";
  EXPECT_EQ(stack_->seriesOf("container_network_transmit_packets_total{job=\"kubelet\", "
                             "namespace=\"shop\", interface=\"" +
                             stack_->netns().ifA() + "\"} >= 20"),
            1U);
  EXPECT_EQ(stack_->seriesOf("container_network_transmit_packets_total{job=\"kubelet\", "
                             "namespace=\"data\", interface=\"" +
                             stack_->netns().ifB() + "\"} >= 20"),
            1U);
}

TEST_F(KubePrometheusCompatibility, DashboardAndAlertQueriesReturnData) {
  std::size_t checked = 0;
  const auto failures = failing(false, 10s, &checked);
  std::string text;
  for (const auto& f : failures) text += f + "\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << checked
                                << " queries returned nothing:\n"
                                << text << stack_->logs();
  EXPECT_GE(checked, 25U) << "most queries need no more than cgroup v1 or v2 gives";
  std::cout << checked - failures.size() << " of " << checked << " queries return data\n";
}

// Queries on the series cAdvisor serves beyond the dashboards' basics (network, threads, file
// descriptors, start time, root and QoS cgroups, ...), some of which the kernel must fill (swap
// accounting): each failure names the series it needs.
TEST_F(KubePrometheusCompatibility, QueriesOnTheNewCadvisorSeriesReturnData) {
  std::size_t checked = 0;
  const auto failures = failing(true, 10s, &checked);
  std::string text;
  for (const auto& f : failures) text += f + "\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << checked
                                << " queries returned nothing:\n"
                                << text;
  std::cout << checked - failures.size() << " of " << checked << " queries return data\n";
}

}  // namespace
}  // namespace nodewarden::testing
