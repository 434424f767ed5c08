// PodNetworkReader and parseNetDev on a /proc and a cgroup tree written by the test: the kernel's
// net/dev format and damaged copies of it, the interface bound, a pod's process that goes away
// and is replaced, a pod in the node's network namespace, and the collector putting it together.
#include "collectors/cgroup/pod_network.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "collectors/cgroup/cgroup_collector.h"
#include "exporters/prometheus/text_renderer.h"
#include "tests/support/temp_dir.h"

namespace nodewarden::cgroup {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHeader =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n";

// One line as dev_seq_show prints it: rx bytes, packets, errs, drop, fifo, frame, compressed,
// multicast, then tx bytes, packets, errs, drop, fifo, colls, carrier, compressed.
std::string devLine(const std::string& name, std::uint64_t base) {
  std::string line = std::string(6 - std::min<std::size_t>(name.size(), 6), ' ') + name + ":";
  for (std::uint64_t i = 0; i < 16; ++i) line += " " + std::to_string(base + i);
  return line + "\n";
}

std::string nameOf(const NetInterfaceStat& st) { return std::string(st.name.data()); }

void writeFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::trunc);
  out << content;
}

TEST(NetDev, ReadsTheKernelsFormatAndLeavesOutWhatCadvisorIgnores) {
  const std::string text = std::string(kHeader) + devLine("lo", 1000) + devLine("eth0", 100) +
                           devLine("veth1234", 2000) + devLine("Docker0", 3000) +
                           devLine("net1", 500);
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(text, out);
  ASSERT_EQ(r.interfaces, 2);
  EXPECT_EQ(r.ignored, 3U);
  EXPECT_EQ(r.garbled, 0U);
  EXPECT_EQ(nameOf(out[0]), "eth0");
  EXPECT_EQ(out[0].rx_bytes, 100U);
  EXPECT_EQ(out[0].rx_packets, 101U);
  EXPECT_EQ(out[0].rx_errors, 102U);
  EXPECT_EQ(out[0].rx_dropped, 103U);
  EXPECT_EQ(out[0].tx_bytes, 108U);
  EXPECT_EQ(out[0].tx_packets, 109U);
  EXPECT_EQ(out[0].tx_errors, 110U);
  EXPECT_EQ(out[0].tx_dropped, 111U);
  EXPECT_EQ(nameOf(out[1]), "net1");
  EXPECT_EQ(out[1].tx_dropped, 511U);
}

TEST(NetDev, OldKernelsWithoutABlankAfterTheColonParse) {
  // 2.6-era kernels printed "eth0:123" when the counter filled the column.
  std::string text =
      std::string(kHeader) + "  eth0:1234567890 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(text, out);
  ASSERT_EQ(r.interfaces, 1);
  EXPECT_EQ(out[0].rx_bytes, 1234567890U);
  EXPECT_EQ(out[0].tx_bytes, 9U);
}

TEST(NetDev, GarbledLinesAreCountedAndTheRestStillRead) {
  const std::string text =
      std::string(kHeader) + "  eth0: 1 2 3\n" +               // too few counters
      devLine("eth1", 10) +                                    // fine
      "  eth2: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n" +     // not a number
      "no colon at all\n" +                                    //
      "   : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" +        // no name
      "  eth3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n" +  // too many
      "  waytoolonginterfacename: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" +
      "  eth4: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 99999999999999999999999\n" +
      std::string("  e\0h:", 7) +  // a NUL in the name
      " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" +
      "\x01\x08lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n" +  // control bytes
      devLine("eth5", 20);
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(text, out);
  ASSERT_EQ(r.interfaces, 2);
  EXPECT_EQ(nameOf(out[0]), "eth1");
  EXPECT_EQ(nameOf(out[1]), "eth5");
  EXPECT_EQ(r.garbled, 9U);
}

// Prometheus refuses a whole scrape with a label value that is not UTF-8: names past ASCII are
// garbled lines, never labels.
TEST(NetDev, NamesPastAsciiAreGarbled) {
  const std::string text =
      std::string(kHeader) + devLine("eth\xff", 1) + devLine("\xc3\xa9th0", 2) + devLine("eth0", 3);
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(text, out);
  ASSERT_EQ(r.interfaces, 1);
  EXPECT_EQ(nameOf(out[0]), "eth0");
  EXPECT_EQ(r.garbled, 2U);
}

TEST(NetDev, InterfacesPastTheBoundAreSkippedAndCounted) {
  std::string text = kHeader;
  for (int i = 0; i < 11; ++i) text += devLine("net" + std::to_string(i), 10U * i);
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(text, out);
  EXPECT_EQ(r.interfaces, kMaxNetInterfaces);
  EXPECT_EQ(r.over_bound, 11 - kMaxNetInterfaces);
  EXPECT_EQ(nameOf(out[kMaxNetInterfaces - 1]), "net" + std::to_string(kMaxNetInterfaces - 1));
}

// A /proc (with the host's init, pid 1) and one container cgroup whose cgroup.procs the test
// writes.
struct ProcFixture {
  explicit ProcFixture(std::size_t descriptors = 1000)
      : tmp("nodewarden-pod-network"), reader(tmp.path() / "proc", budget, errors) {
    budget.limit = descriptors;
    writeFile(tmp.path() / "proc/1/net/dev", std::string(kHeader) + devLine("eth0", 9000000));
    fs::create_directories(tmp.path() / "cg" / dir);
    h.path = (tmp.path() / "cg").string();
    h.fd = ::open(h.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  ~ProcFixture() {
    if (h.fd >= 0) ::close(h.fd);
  }
  ProcFixture(const ProcFixture&) = delete;
  ProcFixture& operator=(const ProcFixture&) = delete;

  void process(int pid, const std::string& dev) {
    writeFile(tmp.path() / "proc" / std::to_string(pid) / "net/dev", dev);
  }
  void procs(const std::vector<int>& pids) {
    std::string text;
    for (int pid : pids) text += std::to_string(pid) + "\n";
    writeFile(tmp.path() / "cg" / dir / "cgroup.procs", text);
  }
  // One cycle as the collector runs it: read, find when wanted, back off.
  bool cycle() {
    ++n;
    if (reader.read(pod, sample, buf) && !pod.host_network) return sample.net_present;
    if (PodNetworkReader::wantsProcess(pod, n) && reader.find(pod, h, dir, n, buf)) {
      reader.read(pod, sample, buf);
    }
    PodNetworkReader::backOff(pod, n);
    return sample.net_present;
  }

  test_support::TempDir tmp;
  const std::string dir = "kubepods/pod/c";
  SelfMetrics self;
  ErrorReporter errors{self.registry()};
  DescriptorBudget budget;
  PodNetworkReader reader;
  Hierarchy h;
  PodNetwork pod;
  CgroupSample sample;
  std::array<char, 16384> buf{};
  std::uint64_t n = 0;
};

TEST(PodNetwork, ReadsTheProcessInTheContainerCgroupAndFollowsItsCounters) {
  ProcFixture f;
  f.process(42, std::string(kHeader) + devLine("lo", 1) + devLine("eth0", 100));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  ASSERT_EQ(f.sample.net_interfaces, 1);
  EXPECT_EQ(nameOf(f.sample.net[0]), "eth0");
  EXPECT_EQ(f.sample.net[0].rx_bytes, 100U);
  // The same descriptor, read again: the new content.
  f.process(42, std::string(kHeader) + devLine("eth0", 700));
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net[0].rx_bytes, 700U);
  EXPECT_EQ(f.errors.count("cgroup", "net_dev_parse_error"), 0);
}

TEST(PodNetwork, AProcessGoneIsReplacedByOneFoundAgain) {
  ProcFixture f;
  f.process(42, std::string(kHeader) + devLine("eth0", 100));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  // The sandbox is replaced: 42 exits (its directory goes), 77 runs in a new namespace. The open
  // net/dev of 42 would still read the old content.
  fs::remove_all(f.tmp.path() / "proc/42");
  f.process(77, std::string(kHeader) + devLine("eth0", 5));
  f.procs({77});
  ASSERT_TRUE(f.cycle()) << "found again in the same cycle";
  ASSERT_EQ(f.sample.net_interfaces, 1);
  EXPECT_EQ(f.sample.net[0].rx_bytes, 5U);
}

TEST(PodNetwork, PastTheDescriptorBudgetThePidIsKeptAndAReusedPidNoticed) {
  ProcFixture f(/*descriptors=*/1);
  f.process(42, std::string(kHeader) + devLine("eth0", 100));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.pod.keptDescriptors(), 0U);
  EXPECT_EQ(f.budget.open, 0U);
  EXPECT_EQ(f.sample.net[0].rx_bytes, 100U);
  f.process(42, std::string(kHeader) + devLine("eth0", 150));
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net[0].rx_bytes, 150U) << "opened and read again each cycle";
  // 42 exits and the pid is taken by a process of another namespace (another net/dev inode)
  // that is not the pod's; the pod's process is now 77.
  f.process(900, std::string(kHeader) + devLine("eth0", 999999));  // the other namespace
  fs::remove_all(f.tmp.path() / "proc/42");
  fs::create_directories(f.tmp.path() / "proc/42/net");
  fs::create_hard_link(f.tmp.path() / "proc/900/net/dev", f.tmp.path() / "proc/42/net/dev");
  f.process(77, std::string(kHeader) + devLine("eth0", 7));
  f.procs({77});
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net[0].rx_bytes, 7U);
}

TEST(PodNetwork, KeptDescriptorsAreChargedToTheBudgetAndGivenBack) {
  ProcFixture f;
  f.process(42, std::string(kHeader) + devLine("eth0", 100));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.pod.keptDescriptors(), 2U);
  EXPECT_EQ(f.budget.open, 2U);
  fs::remove_all(f.tmp.path() / "proc/42");
  f.procs({});
  EXPECT_FALSE(f.cycle());
  EXPECT_EQ(f.budget.open, 0U);
}

TEST(PodNetwork, AnEmptyReadIsAProcessGone) {
  ProcFixture f;
  f.process(42, std::string(kHeader) + devLine("eth0", 100));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  f.process(42, "");
  f.process(43, std::string(kHeader) + devLine("eth0", 300));
  f.procs({43});
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net[0].rx_bytes, 300U);
}

TEST(PodNetwork, AHostNetworkPodIsNotRead) {
  ProcFixture f;
  // The process's net/dev is the host init's entry: the same inode, as procfs shows one entry
  // per network namespace.
  fs::create_directories(f.tmp.path() / "proc/42/net");
  fs::create_hard_link(f.tmp.path() / "proc/1/net/dev", f.tmp.path() / "proc/42/net/dev");
  f.procs({42});
  EXPECT_FALSE(f.cycle());
  EXPECT_TRUE(f.pod.host_network);
  EXPECT_FALSE(f.pod.open());
  EXPECT_FALSE(f.sample.net_present);
  // Looked at again only after a backoff, and still the node's.
  f.procs({});
  EXPECT_FALSE(f.cycle());
  EXPECT_TRUE(f.pod.host_network);
}

// A process still in the node's namespace (runc's first stage, an exec on its way in) must not
// decide for the pod while another of its processes is in the pod's own namespace, nor for good.
TEST(PodNetwork, AProcessNotYetInThePodsNamespaceDoesNotMakeItHostNetwork) {
  ProcFixture f;
  fs::create_directories(f.tmp.path() / "proc/42/net");
  fs::create_hard_link(f.tmp.path() / "proc/1/net/dev", f.tmp.path() / "proc/42/net/dev");
  f.process(43, std::string(kHeader) + devLine("eth0", 500));
  f.procs({42, 43});
  EXPECT_TRUE(f.cycle()) << "the pod's own process decides";
  EXPECT_FALSE(f.pod.host_network);
  EXPECT_EQ(f.sample.net[0].rx_bytes, 500U);

  // Only the host process listed: host network for now, then the pod's process appears and
  // the verdict is replaced after the backoff.
  ProcFixture g;
  fs::create_directories(g.tmp.path() / "proc/42/net");
  fs::create_hard_link(g.tmp.path() / "proc/1/net/dev", g.tmp.path() / "proc/42/net/dev");
  g.procs({42});
  EXPECT_FALSE(g.cycle());
  EXPECT_TRUE(g.pod.host_network);
  g.process(43, std::string(kHeader) + devLine("eth0", 700));
  g.procs({43});
  bool seen = false;
  for (int i = 0; i < 4 && !seen; ++i) seen = g.cycle();
  EXPECT_TRUE(seen) << "a host-network verdict is looked at again within its backoff";
  EXPECT_FALSE(g.pod.host_network);
  EXPECT_EQ(g.sample.net[0].rx_bytes, 700U);
}

TEST(PodNetwork, WithoutTheHostsNamespaceNoPodIsRead) {
  ProcFixture f;
  fs::remove_all(f.tmp.path() / "proc/1");
  f.process(42, std::string(kHeader) + devLine("eth0", 100));
  f.procs({42});
  EXPECT_FALSE(f.cycle());
  EXPECT_EQ(f.errors.count("cgroup", "net_no_host_namespace"), 1);
}

TEST(PodNetwork, AGarbledFileIsCountedAndItsGoodLinesRead) {
  ProcFixture f;
  f.process(42, std::string(kHeader) + "  eth0: 1 2 3 garbage\n" + devLine("eth1", 10));
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  ASSERT_EQ(f.sample.net_interfaces, 1);
  EXPECT_EQ(nameOf(f.sample.net[0]), "eth1");
  EXPECT_EQ(f.errors.count("cgroup", "net_dev_parse_error"), 1);
  // Garbage throughout: nothing read, counted again, no crash.
  f.process(42, std::string("\0\xff\n:::\n||\n", 10));
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net_interfaces, 0);
  EXPECT_EQ(f.errors.count("cgroup", "net_dev_parse_error"), 2);
}

TEST(PodNetwork, InterfacesPastTheBoundAreCounted) {
  ProcFixture f;
  std::string dev = kHeader;
  for (std::size_t i = 0; i < kMaxNetInterfaces + 2; ++i)
    dev += devLine("net" + std::to_string(i), i);
  f.process(42, dev);
  f.procs({42});
  ASSERT_TRUE(f.cycle());
  EXPECT_EQ(f.sample.net_interfaces, kMaxNetInterfaces);
  EXPECT_EQ(f.errors.count("cgroup", "net_too_many_interfaces"), 1);
}

TEST(PodNetwork, ProcessesOfAnotherPidNamespaceAreCountedAndBackedOff) {
  ProcFixture f;
  f.procs({0, 0});  // what cgroup.procs shows a reader outside the host's PID namespace (v2)
  EXPECT_FALSE(f.cycle());
  EXPECT_EQ(f.errors.count("cgroup", "net_pids_hidden"), 1);
  // The next finds are spaced out: the next cycle does not look.
  EXPECT_FALSE(PodNetworkReader::wantsProcess(f.pod, f.n + 1));
  EXPECT_TRUE(PodNetworkReader::wantsProcess(f.pod, f.n + 2));
}

// The collector on a v2 tree: the pod-level sample carries its namespace's counters, the
// containers none, a host-network pod none, and the renderer writes cAdvisor's families.
TEST(PodNetwork, TheCollectorPutsThePodsCountersOnThePodSample) {
  test_support::TempDir tmp("nodewarden-pod-network-collector");
  fs::copy(fs::path(NODEWARDEN_FIXTURES) / "cgroup/v2-systemd-containerd", tmp.path(),
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path slice = tmp.path() / "sys/fs/cgroup/system.slice/kind-node.scope/kubepods.slice";
  const std::string u1 = "11111111-2222-3333-4444-555555555551";
  const std::string u2 = "11111111-2222-3333-4444-555555555552";
  const fs::path pod1 = slice / "kubepods-burstable.slice" /
                        "kubepods-burstable-pod11111111_2222_3333_4444_555555555551.slice";
  const fs::path pod2 = slice / "kubepods-pod11111111_2222_3333_4444_555555555552.slice";
  writeFile(pod1 / ("cri-containerd-" + std::string(63, 'a') + "1.scope") / "cgroup.procs",
            "4242\n");
  writeFile(pod2 / ("cri-containerd-" + std::string(63, 'b') + "2.scope") / "cgroup.procs",
            "4343\n");
  writeFile(tmp.path() / "proc/1/net/dev", std::string(kHeader) + devLine("eth0", 9000000));
  writeFile(tmp.path() / "proc/4242/net/dev",
            std::string(kHeader) + devLine("lo", 1) + devLine("eth0", 1000));
  fs::create_directories(tmp.path() / "proc/4343/net");
  fs::create_hard_link(tmp.path() / "proc/1/net/dev", tmp.path() / "proc/4343/net/dev");

  SelfMetrics self;
  ErrorReporter errors(self.registry());
  CgroupCollectorOptions o;
  o.cgroup_root = tmp.path() / "sys/fs/cgroup";
  o.log_root = tmp.path() / "var/log/pods";
  o.proc_root = tmp.path() / "proc";
  CgroupCollector collector(o, errors);
  Snapshot snapshot;
  collector.collect(snapshot);
  std::map<std::string, const CgroupSample*> by_key;
  for (const auto* s : snapshot.cgroups) by_key[s->pod_uid + "/" + s->container_id] = s;

  ASSERT_TRUE(by_key.contains(u1 + "/"));
  const CgroupSample& p1 = *by_key[u1 + "/"];
  ASSERT_TRUE(p1.net_present);
  ASSERT_EQ(p1.net_interfaces, 1);
  EXPECT_EQ(nameOf(p1.net[0]), "eth0");
  EXPECT_EQ(p1.net[0].rx_bytes, 1000U);
  EXPECT_EQ(p1.net[0].tx_bytes, 1008U);
  for (const auto* s : snapshot.cgroups) {
    if (!s->isPod()) {
      EXPECT_FALSE(s->net_present) << "container " << s->container_id;
    }
  }
  ASSERT_TRUE(by_key.contains(u2 + "/"));
  EXPECT_FALSE(by_key[u2 + "/"]->net_present) << "a host-network pod carries no network";

  TextRenderer renderer(tmp.path() / "proc");
  std::string text;
  renderer.renderToString(snapshot, text);
  EXPECT_NE(text.find("# HELP container_network_receive_bytes_total Cumulative count of bytes "
                      "received\n# TYPE container_network_receive_bytes_total counter\n"),
            std::string::npos);
  const std::string labels = "{container=\"\",id=\"" + p1.id + "\",image=\"\",interface=\"eth0\"," +
                             "namespace=\"" + p1.namespace_name + "\",pod=\"" + p1.pod_name +
                             "\"} ";
  EXPECT_NE(text.find("container_network_receive_bytes_total" + labels + "1000\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("container_network_transmit_errors_total" + labels + "1010\n"),
            std::string::npos);
  EXPECT_NE(text.find("container_network_receive_packets_dropped_total" + labels + "1003\n"),
            std::string::npos);
  EXPECT_EQ(text.find("9000000"), std::string::npos) << "the node's counters on no pod";
  std::size_t families = 0;
  for (std::size_t at = 0; (at = text.find("# TYPE container_network_", at)) != std::string::npos;
       ++at) {
    ++families;
  }
  EXPECT_EQ(families, 8U);

  // Steady state: the next cycle reads the same descriptors again.
  writeFile(tmp.path() / "proc/4242/net/dev", std::string(kHeader) + devLine("eth0", 5000));
  snapshot.reset();
  collector.collect(snapshot);
  for (const auto* s : snapshot.cgroups) {
    if (s->pod_uid == u1 && s->isPod()) {
      ASSERT_EQ(s->net_interfaces, 1);
      EXPECT_EQ(s->net[0].rx_bytes, 5000U);
    }
  }
}

// The renderer alone: one series per interface and family, none for a sample held for names, and
// an exposition promtool accepts.
TEST(PodNetwork, RenderedPerInterfaceAndNeverForAHeldPod) {
  auto pod = [](const std::string& uid) {
    CgroupSample s;
    s.pod_uid = uid;
    s.id = "/kubepods/burstable/pod" + uid;
    s.namespace_name = "shop";
    s.pod_name = "web-" + uid;
    s.net_present = true;
    s.net_interfaces = 2;
    std::memcpy(s.net[0].name.data(), "eth0", 4);
    std::memcpy(s.net[1].name.data(), "net1", 4);
    s.net[0].rx_bytes = 11;
    s.net[1].tx_dropped = 22;
    return s;
  };
  CgroupSample a = pod("a");
  CgroupSample held = pod("held");
  held.names_pending = true;
  CgroupSample none = pod("none");
  none.net_present = false;
  Snapshot snap;
  snap.cgroups = {&a, &held, &none};
  test_support::TempDir tmp("nodewarden-pod-network-render");
  TextRenderer renderer(tmp.path());
  std::string text;
  const std::size_t series = renderer.renderToString(snap, text);
  EXPECT_EQ(series, 8U * 2U) << text;
  EXPECT_NE(text.find("container_network_receive_bytes_total{container=\"\",id=\"/kubepods/"
                      "burstable/poda\",image=\"\",interface=\"eth0\",namespace=\"shop\",pod="
                      "\"web-a\"} 11\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("container_network_transmit_packets_dropped_total{container=\"\",id=\"/"
                      "kubepods/burstable/poda\",image=\"\",interface=\"net1\",namespace="
                      "\"shop\",pod=\"web-a\"} 22\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("web-held"), std::string::npos);
  EXPECT_EQ(text.find("web-none"), std::string::npos);
  if (fs::exists("/usr/bin/promtool")) {
    const fs::path in = tmp.path() / "exposition.txt";
    writeFile(in, text);
    const std::string cmd = "/usr/bin/promtool check metrics < " + in.string() + " >/dev/null 2>&1";
    const int rc = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << text;
  }
}

}  // namespace
}  // namespace nodewarden::cgroup
