// appendNodeMetrics: exact text for a small sample, absent sections, and the fixture node's full
// output checked by promtool.
//
// What a reader gets wrong: promtool's linter flags node_memory_MemTotal_bytes and friends as
// camelCase. Those are node_exporter's exact names, kept on purpose for dashboard compatibility, so
// that one lint finding is allowed; a parse error (exit status 1) or any other finding fails.
#include "exporters/prometheus/node_text.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "collectors/node/node_collector.h"
#include "fixture_files.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;

NodeSample smallSample() {
  NodeSample node;
  node.has_stat = true;
  CpuTimes cpu0;
  cpu0.cpu = 0;
  cpu0.ticks = {488, 0, 385, 47770, 40, 0, 14, 1, 7, 3};
  cpu0.columns = 10;
  CpuTimes cpu3;  // an older kernel's eight columns: no guest series for it
  cpu3.cpu = 3;
  cpu3.ticks = {100, 1, 2, 3, 4, 5, 6, 250};
  cpu3.columns = 8;
  node.cpus = {cpu0, cpu3};
  node.context_switches = 294409;
  node.boot_time_s = 1795305332;
  node.forks = 5727;
  node.interrupts = 129559;
  node.procs_running = 1;
  node.procs_blocked = 0;

  node.has_meminfo = true;
  node.meminfo = {{"MemTotal", 1024000}, {"Active(anon)", 1568768}, {"HugePages_Total", 12}};

  node.psi_cpu = {.some_us = 3022663, .full_us = 5, .has_some = true, .has_full = true};
  node.psi_memory = {.some_us = 4802610, .full_us = 4683964, .has_some = true, .has_full = true};
  // psi_io absent

  node.has_loadavg = true;
  node.load1 = 0.02;
  node.load5 = 0.06;
  node.load15 = 1.5;
  return node;
}

TEST(NodeTextTest, ExactLinesForASmallSample) {
  std::string out = "# existing\n";
  appendNodeMetrics(smallSample(), out);
  EXPECT_EQ(out,
            "# existing\n"
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
            "# TYPE node_cpu_seconds_total counter\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 4.88\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"nice\"} 0\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"system\"} 3.85\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 477.7\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 0.4\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"irq\"} 0\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"softirq\"} 0.14\n"
            "node_cpu_seconds_total{cpu=\"0\",mode=\"steal\"} 0.01\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"user\"} 1\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"nice\"} 0.01\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"system\"} 0.02\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"idle\"} 0.03\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"iowait\"} 0.04\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"irq\"} 0.05\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"softirq\"} 0.06\n"
            "node_cpu_seconds_total{cpu=\"3\",mode=\"steal\"} 2.5\n"
            "# HELP node_cpu_guest_seconds_total Seconds the CPUs spent in guests (VMs) for each "
            "mode.\n"
            "# TYPE node_cpu_guest_seconds_total counter\n"
            "node_cpu_guest_seconds_total{cpu=\"0\",mode=\"user\"} 0.07\n"
            "node_cpu_guest_seconds_total{cpu=\"0\",mode=\"nice\"} 0.03\n"
            "# HELP node_context_switches_total Total number of context switches.\n"
            "# TYPE node_context_switches_total counter\n"
            "node_context_switches_total 294409\n"
            "# HELP node_boot_time_seconds Node boot time, in unixtime.\n"
            "# TYPE node_boot_time_seconds gauge\n"
            "node_boot_time_seconds 1795305332\n"
            "# HELP node_forks_total Total number of forks.\n"
            "# TYPE node_forks_total counter\n"
            "node_forks_total 5727\n"
            "# HELP node_intr_total Total number of interrupts serviced.\n"
            "# TYPE node_intr_total counter\n"
            "node_intr_total 129559\n"
            "# HELP node_procs_running Number of processes in runnable state.\n"
            "# TYPE node_procs_running gauge\n"
            "node_procs_running 1\n"
            "# HELP node_procs_blocked Number of processes blocked waiting for I/O to complete.\n"
            "# TYPE node_procs_blocked gauge\n"
            "node_procs_blocked 0\n"
            "# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.\n"
            "# TYPE node_memory_MemTotal_bytes gauge\n"
            "node_memory_MemTotal_bytes 1024000\n"
            "# HELP node_memory_Active_anon_bytes Memory information field Active_anon_bytes.\n"
            "# TYPE node_memory_Active_anon_bytes gauge\n"
            "node_memory_Active_anon_bytes 1568768\n"
            "# HELP node_memory_HugePages_Total Memory information field HugePages_Total.\n"
            "# TYPE node_memory_HugePages_Total gauge\n"
            "node_memory_HugePages_Total 12\n"
            "# HELP node_pressure_cpu_waiting_seconds_total Total time in seconds that processes "
            "have waited for CPU time\n"
            "# TYPE node_pressure_cpu_waiting_seconds_total counter\n"
            "node_pressure_cpu_waiting_seconds_total 3.022663\n"
            "# HELP node_pressure_memory_waiting_seconds_total Total time in seconds that "
            "processes have waited for memory\n"
            "# TYPE node_pressure_memory_waiting_seconds_total counter\n"
            "node_pressure_memory_waiting_seconds_total 4.80261\n"
            "# HELP node_pressure_memory_stalled_seconds_total Total time in seconds no process "
            "could make progress due to memory congestion\n"
            "# TYPE node_pressure_memory_stalled_seconds_total counter\n"
            "node_pressure_memory_stalled_seconds_total 4.683964\n"
            "# HELP node_load1 1m load average.\n"
            "# TYPE node_load1 gauge\n"
            "node_load1 0.02\n"
            "# HELP node_load5 5m load average.\n"
            "# TYPE node_load5 gauge\n"
            "node_load5 0.06\n"
            "# HELP node_load15 15m load average.\n"
            "# TYPE node_load15 gauge\n"
            "node_load15 1.5\n");
}

TEST(NodeTextTest, AbsentSectionsWriteNothing) {
  NodeSample node = smallSample();
  node.has_stat = false;
  node.has_meminfo = false;
  node.has_loadavg = false;
  node.psi_cpu = {};
  node.psi_memory = {};
  std::string out;
  appendNodeMetrics(node, out);
  EXPECT_EQ(out, "");

  node.psi_io = {.some_us = 1500000, .full_us = 0, .has_some = true, .has_full = false};
  appendNodeMetrics(node, out);
  EXPECT_EQ(out,
            "# HELP node_pressure_io_waiting_seconds_total Total time in seconds that processes "
            "have waited due to IO congestion\n"
            "# TYPE node_pressure_io_waiting_seconds_total counter\n"
            "node_pressure_io_waiting_seconds_total 1.5\n");
}

TEST(NodeTextTest, LargeCountersUseShortestRoundTrip) {
  NodeSample node;
  node.has_meminfo = true;
  node.meminfo = {{"VmallocTotal", 34359738367ULL * 1024}, {"Huge", 18446744073709551615ULL}};
  std::string out;
  appendNodeMetrics(node, out);
  EXPECT_NE(out.find("node_memory_VmallocTotal_bytes 35184372087808\n"), std::string::npos);
  EXPECT_NE(out.find("node_memory_Huge_bytes 18446744073709551616\n"), std::string::npos);
}

int runShell(const std::string& command) {
  const int status = std::system(command.c_str());  // NOLINT(cert-env33-c): test-only, fixed paths
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(NodeTextTest, FixtureNodePassesPromtool) {
  constexpr const char* kPromtool = "/usr/bin/promtool";
  if (::access(kPromtool, X_OK) != 0) {
    GTEST_SKIP() << "promtool not installed";
  }
  SelfMetrics metrics;
  ErrorReporter errors(metrics.registry());
  NodeCollector collector(fixtures::fixturePath("proc"), errors);
  Snapshot snapshot;
  collector.collect(snapshot);
  ASSERT_TRUE(snapshot.node.has_stat && snapshot.node.has_meminfo && snapshot.node.has_loadavg);
  std::string text;
  appendNodeMetrics(snapshot.node, text);

  const fs::path dir =
      fs::path(::testing::TempDir()) / ("nodewarden_node_text_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fixtures::writeFile(dir / "metrics.prom", text);
  const int status =
      runShell(std::string(kPromtool) + " check metrics < " + (dir / "metrics.prom").string() +
               " > " + (dir / "lint.txt").string() + " 2>&1");
  std::ifstream lint_file(dir / "lint.txt");
  std::string line;
  int camel_case_findings = 0;
  while (std::getline(lint_file, line)) {
    if (line.empty()) {
      continue;
    }
    EXPECT_TRUE(line.starts_with("node_memory_") &&
                line.ends_with(" metric names should be written in 'snake_case' not 'camelCase'"))
        << line;
    ++camel_case_findings;
  }
  EXPECT_TRUE(status == 0 || (status == 3 && camel_case_findings > 0))
      << "promtool exit status " << status;
  fs::remove_all(dir);
}

TEST(NodeTextTest, PromtoolRejectsBrokenTextSoTheCheckAboveMeansSomething) {
  constexpr const char* kPromtool = "/usr/bin/promtool";
  if (::access(kPromtool, X_OK) != 0) {
    GTEST_SKIP() << "promtool not installed";
  }
  const fs::path file = fs::path(::testing::TempDir()) /
                        ("nodewarden_node_text_bad_" + std::to_string(::getpid()) + ".prom");
  fixtures::writeFile(file, "node_load1{ 1\n");
  EXPECT_EQ(
      runShell(std::string(kPromtool) + " check metrics < " + file.string() + " > /dev/null 2>&1"),
      1);
  fs::remove(file);
}

}  // namespace
}  // namespace nodewarden
