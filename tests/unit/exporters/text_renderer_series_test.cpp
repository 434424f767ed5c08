// The exposition of cAdvisor's process, start-time, last-seen, failure and spec series: names,
// types, help texts and label order as cAdvisor's metrics/prometheus.go gives them, absent when
// the reading is, and promtool's verdict.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "exporters/prometheus/text_renderer.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using F = CgroupField;

CgroupSample sample() {
  CgroupSample s;
  s.pod_uid = "11111111-2222-3333-4444-555555555551";
  s.container_id = std::string(64, 'a');
  s.id = "/kubepods/burstable/pod11111111-2222-3333-4444-555555555551/" + s.container_id;
  s.namespace_name = "spark";
  s.pod_name = "driver-0";
  s.container_name = "spark-driver";
  s.image = "spark:3";
  return s;
}

std::string render(const std::vector<const CgroupSample*>& samples) {
  TextRenderer r(fs::path(NODEWARDEN_FIXTURES) / "proc");
  Snapshot snap;
  snap.cgroups = samples;
  std::string out;
  r.renderToString(snap, out);
  return out;
}

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

const std::string kLabels =
    "{container=\"spark-driver\",id=\"/kubepods/burstable/pod11111111-2222-3333-4444-"
    "555555555551/" +
    std::string(64, 'a') + "\",image=\"spark:3\",namespace=\"spark\",pod=\"driver-0\"}";

TEST(TextRendererSeries, EveryNewSeriesUnderCadvisorsNameTypeAndHelp) {
  auto s = sample();
  s.set(F::kMemFailcnt, 3);
  s.set(F::kMemReservationBytes, 268435456);
  s.set(F::kMemSwapLimitBytes, 0);
  s.set(F::kStartTimeS, 1765000000);
  s.set(F::kLastSeenS, 1765000100);
  s.set(F::kThreads, 12);
  s.set(F::kThreadsMax, 0);
  s.set(F::kProcesses, 2);
  s.set(F::kFileDescriptors, 40);
  s.set(F::kSockets, 5);
  const auto out = render({&s});
  const struct {
    const char* name;
    const char* type;
    const char* help;
    const char* value;
  } want[] = {
      {"container_memory_failcnt", "counter", "Number of memory usage hits limits", "3"},
      {"container_spec_memory_reservation_limit_bytes", "gauge",
       "Memory reservation limit for the container.", "268435456"},
      {"container_spec_memory_swap_limit_bytes", "gauge", "Memory swap limit for the container.",
       "0"},
      {"container_start_time_seconds", "gauge",
       "Start time of the container since unix epoch in seconds.", "1765000000"},
      {"container_last_seen", "gauge", "Last time a container was seen by the exporter",
       "1765000100"},
      {"container_threads", "gauge", "Number of threads running inside the container", "12"},
      {"container_threads_max", "gauge",
       "Maximum number of threads allowed inside the container, infinity if value is zero", "0"},
      {"container_processes", "gauge", "Number of processes running inside the container.", "2"},
      {"container_file_descriptors", "gauge", "Number of open file descriptors for the container.",
       "40"},
      {"container_sockets", "gauge", "Number of open sockets for the container.", "5"},
  };
  for (const auto& w : want) {
    EXPECT_TRUE(has(out, std::string("# HELP ") + w.name + " " + w.help + "\n")) << w.name;
    EXPECT_TRUE(has(out, std::string("# TYPE ") + w.name + " " + w.type + "\n")) << w.name;
    EXPECT_TRUE(has(out, std::string(w.name) + kLabels + " " + w.value + "\n")) << w.name << out;
  }
}

TEST(TextRendererSeries, MemoryFailuresCarryFailureTypeAndScopeInLabelOrder) {
  auto s = sample();
  s.set(F::kMemPgfault, 100);
  s.set(F::kMemPgmajfault, 2);
  s.set(F::kMemHierPgfault, 500);
  s.set(F::kMemHierPgmajfault, 9);
  const auto out = render({&s});
  EXPECT_TRUE(has(out,
                  "# HELP container_memory_failures_total Cumulative count of memory allocation "
                  "failures.\n# TYPE container_memory_failures_total counter\n"));
  const std::string head = "container_memory_failures_total{container=\"spark-driver\",";
  const std::string mid =
      ",id=\"" + s.id + "\",image=\"spark:3\",namespace=\"spark\",pod=\"driver-0\",scope=\"";
  EXPECT_TRUE(has(out, head + "failure_type=\"pgfault\"" + mid + "container\"} 100\n")) << out;
  EXPECT_TRUE(has(out, head + "failure_type=\"pgmajfault\"" + mid + "container\"} 2\n"));
  EXPECT_TRUE(has(out, head + "failure_type=\"pgfault\"" + mid + "hierarchy\"} 500\n"));
  EXPECT_TRUE(has(out, head + "failure_type=\"pgmajfault\"" + mid + "hierarchy\"} 9\n"));
}

TEST(TextRendererSeries, AbsentReadingsAndHeldSamplesAreLeftOut) {
  auto s = sample();
  s.set(F::kProcesses, 1);
  auto held = sample();
  held.names_pending = true;
  held.set(F::kMemPgfault, 1);
  held.set(F::kSockets, 1);
  const auto out = render({&s, &held});
  EXPECT_TRUE(has(out, "container_processes{"));
  for (const char* name :
       {"container_memory_failcnt", "container_memory_failures_total", "container_sockets",
        "container_file_descriptors", "container_threads", "container_start_time_seconds",
        "container_last_seen", "container_spec_memory_swap_limit_bytes"}) {
    EXPECT_FALSE(has(out, std::string(name) + "{")) << name;
    EXPECT_FALSE(has(out, std::string("# TYPE ") + name + " ")) << name;
  }
}

TEST(TextRendererSeries, PromtoolAcceptsTheExposition) {
  if (!fs::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  auto s = sample();
  for (std::size_t i = 0; i < kCgroupFieldCount; ++i) s.set(static_cast<F>(i), i + 1);
  s.set(F::kCpuQuotaUs, 50000);
  const auto out = render({&s});
  const auto dir = fs::temp_directory_path();
  const auto in = dir / ("nodewarden-series-render-" + std::to_string(::getpid()) + ".txt");
  const auto said = dir / ("nodewarden-series-render-" + std::to_string(::getpid()) + ".out");
  std::ofstream(in) << out;
  const std::string cmd =
      "/usr/bin/promtool check metrics < " + in.string() + " > " + said.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream f(said);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_TRUE(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3)) << ss.str();
  EXPECT_EQ(ss.str().find("error"), std::string::npos) << ss.str();
  fs::remove(in);
  fs::remove(said);
}

}  // namespace
}  // namespace nodewarden
