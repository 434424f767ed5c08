// The Prometheus text exposition of container samples: cAdvisor's names, units and label order,
// escaping, absent readings left out, chunked streaming, and promtool's verdict on the result.
#include "exporters/prometheus/text_renderer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

CgroupSample containerSample() {
  CgroupSample s;
  s.pod_uid = "11111111-2222-3333-4444-555555555551";
  s.container_id = std::string(64, 'a');
  s.id = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555551/" + s.container_id;
  s.namespace_name = "spark";
  s.pod_name = "driver-0";
  s.container_name = "spark-driver";
  s.set(F::kCpuUsageNs, 1500000000);
  s.set(F::kCfsPeriods, 100);
  s.set(F::kCfsThrottledPeriods, 7);
  s.set(F::kCfsThrottledNs, 250000000);
  s.set(F::kCpuQuotaUs, 50000);
  s.set(F::kMemWorkingSetBytes, 1048576);
  s.set(F::kPsiCpuSomeUs, 2500000);
  s.io_present = true;
  s.io_devices = 1;
  s.io[0] = IoDeviceStat{254, 0, 4096, 8192, 1, 2};
  return s;
}

std::string render(const std::vector<const CgroupSample*>& samples, std::size_t* series = nullptr) {
  TextRenderer r(fs::path(NODEWARDEN_FIXTURES) / "proc");
  Snapshot snap;
  snap.cgroups = samples;
  std::string out;
  const auto n = r.renderToString(snap, out);
  if (series != nullptr) *series = n;
  return out;
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(TextRenderer, CadvisorNamesUnitsAndLabelOrder) {
  const auto s = containerSample();
  std::size_t series = 0;
  const auto out = render({&s}, &series);
  const std::string labels = "{container=\"spark-driver\",id=\"" + s.id +
                             "\",image=\"\",namespace=\"spark\",pod=\"driver-0\"}";
  EXPECT_TRUE(has(out, "# TYPE container_cpu_usage_seconds_total counter\n"));
  EXPECT_TRUE(has(out, "container_cpu_usage_seconds_total" + labels + " 1.5\n")) << out;
  EXPECT_TRUE(has(out, "container_cpu_cfs_periods_total" + labels + " 100\n"));
  EXPECT_TRUE(has(out, "container_cpu_cfs_throttled_periods_total" + labels + " 7\n"));
  EXPECT_TRUE(has(out, "container_cpu_cfs_throttled_seconds_total" + labels + " 0.25\n"));
  EXPECT_TRUE(has(out, "container_spec_cpu_quota" + labels + " 50000\n"));
  EXPECT_TRUE(has(out, "# TYPE container_memory_working_set_bytes gauge\n"));
  EXPECT_TRUE(has(out, "container_memory_working_set_bytes" + labels + " 1048576\n"));
  EXPECT_TRUE(has(out, "container_pressure_cpu_waiting_seconds_total" + labels + " 2.5\n"));
  // device sorts between container and id; 254:0 is vda in the fixture /proc/partitions.
  EXPECT_TRUE(
      has(out, "container_fs_reads_bytes_total{container=\"spark-driver\",device=\"/dev/vda\",id="))
      << out;
  EXPECT_EQ(series, 11U);  // 7 readings and 4 io series of one device
}

TEST(TextRenderer, AbsentReadingsAreLeftOutNotZero) {
  auto s = containerSample();
  s.present.reset();
  s.io_present = false;
  s.set(F::kMemUsageBytes, 5);
  const auto out = render({&s});
  EXPECT_FALSE(has(out, "container_cpu_usage_seconds_total"));
  EXPECT_FALSE(has(out, "container_fs_reads_bytes_total"));
  EXPECT_TRUE(has(out, "container_memory_usage_bytes{"));
}

TEST(TextRenderer, CfsCountersOnlyWithAQuotaAsCadvisor) {
  auto s = containerSample();
  s.present.reset(CgroupSample::index(F::kCpuQuotaUs));
  const auto out = render({&s});
  EXPECT_FALSE(has(out, "container_cpu_cfs_periods_total"));
  EXPECT_FALSE(has(out, "container_cpu_cfs_throttled_seconds_total"));
  EXPECT_TRUE(has(out, "container_cpu_usage_seconds_total"));
}

TEST(TextRenderer, PodLevelSeriesCarryAnEmptyContainerLabel) {
  auto pod = containerSample();
  pod.container_id.clear();
  pod.container_name.clear();
  const auto out = render({&pod});
  EXPECT_TRUE(has(out, "container_cpu_usage_seconds_total{container=\"\",id="));
}

TEST(TextRenderer, LabelValuesAreEscaped) {
  auto s = containerSample();
  s.pod_name = "we\"ird\\na\nme";
  const auto out = render({&s});
  EXPECT_TRUE(has(out, "pod=\"we\\\"ird\\\\na\\nme\"}")) << out;
}

TEST(TextRenderer, UnknownDeviceFallsBackToMajorMinor) {
  auto s = containerSample();
  s.io[0].major = 9;
  s.io[0].minor = 77;
  const auto out = render({&s});
  EXPECT_TRUE(has(out, "device=\"9:77\""));
}

TEST(TextRenderer, StreamsInBoundedChunksThatJoinToTheWhole) {
  std::vector<CgroupSample> many(400, containerSample());
  std::vector<const CgroupSample*> ptrs;
  for (auto& s : many) ptrs.push_back(&s);
  Snapshot snap;
  snap.cgroups = ptrs;
  TextRenderer r(fs::path(NODEWARDEN_FIXTURES) / "proc");
  std::string joined;
  std::size_t chunks = 0, largest = 0;
  r.render(snap, [&](std::string_view c) {
    ++chunks;
    largest = std::max(largest, c.size());
    joined.append(c);
  });
  std::string whole;
  r.renderToString(snap, whole);
  EXPECT_EQ(joined, whole);
  EXPECT_GT(chunks, 2U);
  EXPECT_LT(largest, TextRenderer::kChunkBytes + 4096);
}

TEST(TextRenderer, PromtoolAcceptsTheExposition) {
  if (!fs::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  auto c = containerSample();
  auto pod = containerSample();
  pod.container_id.clear();
  pod.container_name.clear();
  pod.id = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555551";
  const auto out = render({&c, &pod});
  const auto dir = fs::temp_directory_path();
  const auto in = dir / ("nodewarden-render-" + std::to_string(::getpid()) + ".txt");
  const auto said = dir / ("nodewarden-render-" + std::to_string(::getpid()) + ".out");
  std::ofstream(in) << out;
  const std::string cmd =
      "/usr/bin/promtool check metrics < " + in.string() + " > " + said.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream f(said);
  std::stringstream ss;
  ss << f.rdbuf();
  // Exit 3 is promtool's lint-only verdict (cAdvisor's container_memory_rss-style names); 1 would
  // be an invalid exposition.
  EXPECT_TRUE(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3)) << ss.str();
  EXPECT_EQ(ss.str().find("error"), std::string::npos) << ss.str();
  fs::remove(in);
  fs::remove(said);
}

// Exposition::kCadvisor (/metrics/cadvisor) is the full text without node_exporter's node_*
// families; cAdvisor's machine_* gauges are in both.
TEST(TextRenderer, CadvisorExpositionLeavesOutTheNodeSeriesOnly) {
  const auto s = containerSample();
  Snapshot snap;
  snap.cgroups = {&s};
  snap.node.has_stat = true;
  snap.node.cpus.resize(3);
  for (int i = 0; i < 3; ++i) {
    snap.node.cpus[i].cpu = i;
    snap.node.cpus[i].columns = 8;
  }
  snap.node.has_meminfo = true;
  snap.node.meminfo = {{"MemFree", 1024}, {"MemTotal", 8589934592}};
  snap.node.has_loadavg = true;
  TextRenderer r(fs::path(NODEWARDEN_FIXTURES) / "proc");
  std::string full;
  std::string cadvisor;
  const auto n_full = r.renderToString(snap, full);
  const auto n_cadvisor = r.render(
      snap, [&](std::string_view c) { cadvisor.append(c); }, Exposition::kCadvisor);
  EXPECT_EQ(n_full, n_cadvisor);
  for (const std::string& text : {full, cadvisor}) {
    EXPECT_TRUE(has(text, "container_cpu_usage_seconds_total{container=\"spark-driver\""));
    EXPECT_TRUE(has(text, "# TYPE machine_cpu_cores gauge\nmachine_cpu_cores 3\n")) << text;
    EXPECT_TRUE(has(text, "machine_memory_bytes 8589934592\n")) << text;
  }
  EXPECT_TRUE(has(full, "\nnode_load1 "));
  EXPECT_TRUE(has(full, "node_cpu_seconds_total{"));
  EXPECT_FALSE(has(cadvisor, "\nnode_")) << cadvisor;
  EXPECT_FALSE(has(cadvisor, "# HELP node_")) << cadvisor;
}

}  // namespace
}  // namespace nodewarden
