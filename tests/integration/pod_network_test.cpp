// Network per pod on the real kernel: two network namespaces joined by a veth pair, a pod whose
// container's process runs inside one of them (NodeBuilder's cgroups), UDP traffic between them,
// and the collector's counters for the pod against /proc/<pid>/net/dev read right after. Also a
// pod left in the node's namespace (not reported) and a process replaced by one in the other
// namespace (followed).
//
// What a reader gets wrong: nothing here waits for luck. The traffic is counted when the receiver
// in the other namespace has every datagram (ARP resolved first by one datagram that must
// arrive), and IPv6 is off in both namespaces so that no router solicitation moves a counter
// between the collector's read and the test's.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "collectors/cgroup/cgroup_collector.h"
#include "pipeline/self_metrics.h"
#include "tests/support/net_namespace.h"
#include "tests/support/node_builder.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ContainerSpec;
using testing::inNetns;
using testing::netDevInode;
using testing::NetnsPair;
using testing::NodeBuilder;
using testing::PodQos;

// One interface's line of net/dev, parsed here independently of the collector's parser.
struct Counters {
  std::array<std::uint64_t, 16> v{};
};
std::map<std::string, Counters> procNetDev(pid_t pid) {
  std::map<std::string, Counters> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/net/dev");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos || line.find('|') != std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    std::istringstream fields(line.substr(colon + 1));
    Counters c;
    for (auto& x : c.v) fields >> x;
    out[name] = c;
  }
  return out;
}

struct PodNetworkRealKernel : ::testing::Test {
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0) << "network namespaces and cgroups need root";
    const std::string failed = netns.create();
    ASSERT_TRUE(failed.empty()) << "could not set up network namespaces: " << failed;
    auto n = NodeBuilder::create();
    ASSERT_TRUE(n.has_value()) << n.error();
    node = std::move(*n);
  }

  // The pod's sample from one collector cycle, or null.
  const CgroupSample* podSample(const std::string& uid) {
    snapshot.reset();
    collector->collect(snapshot);
    for (const auto* s : snapshot.cgroups) {
      if (s->pod_uid == uid && s->isPod()) return s;
    }
    return nullptr;
  }

  void makeCollector() {
    CgroupCollectorOptions o;
    o.cgroup_root = "/sys/fs/cgroup";
    o.proc_root = "/proc";
    o.log_root = node->logRoot();
    o.run_delay = false;
    collector = std::make_unique<CgroupCollector>(o, errors);
  }

  // Starts `sleep` in the container inside ns (empty: the node's namespace) and waits until the
  // process is there (its net/dev shows the namespace's inode).
  pid_t startIn(testing::Container& c, const std::string& ns) {
    std::vector<std::string> argv = {"sleep", "600"};
    if (!ns.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
    auto pid = c.run(argv);
    EXPECT_TRUE(pid.has_value()) << pid.error();
    if (!pid) return -1;
    const ino_t host = netDevInode(1);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      const ino_t mine = netDevInode(*pid);
      std::ifstream comm("/proc/" + std::to_string(*pid) + "/comm");
      std::string name;
      comm >> name;
      if (mine != 0 && name == "sleep" && (ns.empty() ? mine == host : mine != host)) return *pid;
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "the process did not enter " << (ns.empty() ? "the node's" : ns);
    return -1;
  }

  NetnsPair netns;
  std::unique_ptr<NodeBuilder> node;
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  std::unique_ptr<CgroupCollector> collector;
  Snapshot snapshot;
};

const NetInterfaceStat* findInterface(const CgroupSample& s, const std::string& name) {
  for (std::uint8_t i = 0; i < s.net_interfaces; ++i) {
    if (name == s.net[i].name.data()) return &s.net[i];
  }
  return nullptr;
}

void expectSame(const NetInterfaceStat& got, const Counters& proc) {
  EXPECT_EQ(got.rx_bytes, proc.v[0]);
  EXPECT_EQ(got.rx_packets, proc.v[1]);
  EXPECT_EQ(got.rx_errors, proc.v[2]);
  EXPECT_EQ(got.rx_dropped, proc.v[3]);
  EXPECT_EQ(got.tx_bytes, proc.v[8]);
  EXPECT_EQ(got.tx_packets, proc.v[9]);
  EXPECT_EQ(got.tx_errors, proc.v[10]);
  EXPECT_EQ(got.tx_dropped, proc.v[11]);
}

TEST_F(PodNetworkRealKernel, PodCountersFollowRealTrafficAndMatchProc) {
  auto pod = node->addPod("shop", "web-0", "", PodQos::kBurstable);
  ASSERT_TRUE(pod.has_value()) << pod.error();
  auto c = (*pod)->addContainer(testing::containerSpec("web"));
  ASSERT_TRUE(c.has_value()) << c.error();
  const pid_t pid = startIn(**c, netns.a());
  ASSERT_GT(pid, 0);
  // A second pod left in the node's namespace, as a hostNetwork pod is.
  auto host_pod = node->addPod("kube-system", "node-exporter", "", PodQos::kBestEffort);
  ASSERT_TRUE(host_pod.has_value()) << host_pod.error();
  auto hc = (*host_pod)->addContainer(testing::containerSpec("exporter"));
  ASSERT_TRUE(hc.has_value()) << hc.error();
  ASSERT_GT(startIn(**hc, ""), 0);
  makeCollector();

  const CgroupSample* s = podSample((*pod)->uid());
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->net_present);
  EXPECT_EQ(findInterface(*s, "lo"), nullptr) << "loopback is left out, as cAdvisor does";
  const NetInterfaceStat* before_if = findInterface(*s, netns.ifA());
  ASSERT_NE(before_if, nullptr);
  const NetInterfaceStat before = *before_if;
  const CgroupSample* host = podSample((*host_pod)->uid());
  ASSERT_NE(host, nullptr);
  EXPECT_FALSE(host->net_present) << "a pod in the node's namespace is not reported per pod";

  // Traffic from A to a receiver in B: one datagram first (it waits for ARP), then kN, paced by
  // what the receiver took in.
  constexpr int kN = 500;
  constexpr std::size_t kPayload = 200;
  std::atomic<int> received{0};
  std::atomic<bool> bound{false};
  std::thread receiver([&] {
    inNetns(netns.b(), [&] {
      const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(9999);
      ::inet_pton(AF_INET, "192.0.2.2", &addr.sin_addr);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        bound = true;
        return 0;
      }
      timeval tv{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      bound = true;
      std::array<char, 2048> buf{};
      while (received < kN + 1 && ::recv(fd, buf.data(), buf.size(), 0) > 0) ++received;
      ::close(fd);
      return 0;
    });
  });
  while (!bound) std::this_thread::sleep_for(1ms);
  const auto sent = inNetns(netns.a(), [&] {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9999);
    ::inet_pton(AF_INET, "192.0.2.2", &to.sin_addr);
    std::array<char, kPayload> payload{};
    int ok = 0;
    auto send = [&] {
      ok += ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(payload.size());
    };
    send();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (received < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    // At most 32 in flight, so that neither the receive buffer nor the backlog drops any.
    for (int i = 0; i < kN && std::chrono::steady_clock::now() < deadline; ++i) {
      while (i + 1 - received >= 32 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(50us);
      }
      send();
    }
    ::close(fd);
    return ok;
  });
  receiver.join();
  ASSERT_TRUE(sent.has_value()) << "could not enter " << netns.a();
  ASSERT_EQ(*sent, kN + 1);
  ASSERT_EQ(received.load(), kN + 1) << "the receiver in " << netns.b() << " got every datagram";

  s = podSample((*pod)->uid());
  const auto proc = procNetDev(pid);
  ASSERT_NE(s, nullptr);
  const NetInterfaceStat* after = findInterface(*s, netns.ifA());
  ASSERT_NE(after, nullptr);
  ASSERT_TRUE(proc.contains(netns.ifA()));
  expectSame(*after, proc.at(netns.ifA()));
  EXPECT_GE(after->tx_packets - before.tx_packets, static_cast<std::uint64_t>(kN + 1));
  // UDP/IPv4/Ethernet headers on top of each payload.
  EXPECT_GE(after->tx_bytes - before.tx_bytes, (kN + 1) * (kPayload + 8 + 20 + 14));
  EXPECT_GE(after->rx_packets - before.rx_packets, 1U) << "the ARP reply at least";

  // The sandbox is replaced: its process exits and a new one runs in the other namespace. The
  // collector must follow it, not go on reading the first namespace through its open descriptor.
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  const pid_t pid2 = startIn(**c, netns.b());
  ASSERT_GT(pid2, 0);
  s = podSample((*pod)->uid());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(findInterface(*s, netns.ifA()), nullptr);
  const NetInterfaceStat* b_if = findInterface(*s, netns.ifB());
  ASSERT_NE(b_if, nullptr) << "the new process's namespace is read";
  const auto proc2 = procNetDev(pid2);
  ASSERT_TRUE(proc2.contains(netns.ifB()));
  expectSame(*b_if, proc2.at(netns.ifB()));
  EXPECT_GE(b_if->rx_packets, static_cast<std::uint64_t>(kN + 1));
}

}  // namespace
}  // namespace nodewarden
