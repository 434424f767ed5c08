// bench_parse: Google Benchmark micro benchmarks of the cgroup file parsers, on the contents the
// synthetic tree generator writes for one container (the same shapes as a 6.x kernel's files).
//
// What a reader gets wrong: these time parsing alone, from a string already in memory; the cost
// of a collection cycle is dominated by the reads (see bench_collect_cycle), not by these.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>

#include "bench/synthetic_tree.h"
#include "collectors/cgroup/cgroup_parsers.h"
#include "pipeline/snapshot.h"

namespace {

namespace fs = std::filesystem;
using nodewarden::bench::TreeLayout;

// File name -> content of the first container of a small generated tree, per layout.
std::map<std::string, std::string> g_v1;
std::map<std::string, std::string> g_v2;

std::map<std::string, std::string> containerFiles(TreeLayout layout) {
  std::map<std::string, std::string> out;
  auto dir = nodewarden::bench::makeTempDir("nodewarden-parse");
  if (!dir) return out;
  nodewarden::bench::SyntheticTreeOptions o;
  o.root = *dir / "cgroup";
  o.containers = 4;
  o.layout = layout;
  o.seed = 7;
  if (auto tree = nodewarden::bench::buildSyntheticTree(o)) {
    // read_files lists the pod's files first, then its containers'; take the last cgroup's.
    const fs::path last_dir = tree->read_files.back().parent_path().filename();
    for (const auto& p : tree->read_files) {
      if (p.parent_path().filename() != last_dir) continue;
      std::ifstream in(p);
      std::stringstream ss;
      ss << in.rdbuf();
      out[p.filename().string()] = ss.str();
    }
  }
  std::error_code ec;
  fs::remove_all(*dir, ec);
  return out;
}

void BM_FlatKeyed(benchmark::State& state, const std::map<std::string, std::string>* files,
                  const char* name) {
  const std::string& c = files->at(name);
  for (auto _ : state) {
    std::uint64_t sum = 0;
    const int bad =
        nodewarden::cgroup::parseFlatKeyed(c, [&](std::string_view, std::uint64_t v) { sum += v; });
    benchmark::DoNotOptimize(sum);
    benchmark::DoNotOptimize(bad);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.size()));
}

void BM_Pressure(benchmark::State& state) {
  const std::string& c = g_v2.at("cpu.pressure");
  for (auto _ : state) benchmark::DoNotOptimize(nodewarden::cgroup::parsePressure(c));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.size()));
}

void BM_IoStat(benchmark::State& state) {
  const std::string& c = g_v2.at("io.stat");
  std::array<nodewarden::IoDeviceStat, nodewarden::kMaxIoDevices> io{};
  for (auto _ : state) benchmark::DoNotOptimize(nodewarden::cgroup::parseIoStat(c, io));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.size()));
}

void BM_BlkioThrottle(benchmark::State& state) {
  const std::string& bytes = g_v1.at("blkio.throttle.io_service_bytes_recursive");
  const std::string& ops = g_v1.at("blkio.throttle.io_serviced_recursive");
  std::array<nodewarden::IoDeviceStat, nodewarden::kMaxIoDevices> io{};
  for (auto _ : state) {
    auto n = nodewarden::cgroup::parseBlkioThrottle(bytes, true, io, 0);
    benchmark::DoNotOptimize(
        nodewarden::cgroup::parseBlkioThrottle(ops, false, io, n ? *n : std::uint8_t{0}));
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * (bytes.size() + ops.size())));
}

void BM_SingleValue(benchmark::State& state) {
  const std::string& c = g_v1.at("cpuacct.usage");
  for (auto _ : state) benchmark::DoNotOptimize(nodewarden::cgroup::parseSingleValue(c));
}

void BM_CpuMax(benchmark::State& state) {
  const std::string& c = g_v2.at("cpu.max");
  for (auto _ : state) benchmark::DoNotOptimize(nodewarden::cgroup::parseCpuMax(c));
}

}  // namespace

int main(int argc, char** argv) {
  g_v1 = containerFiles(TreeLayout::kHybrid);
  g_v2 = containerFiles(TreeLayout::kV2);
  if (g_v1.empty() || g_v2.empty()) {
    std::fprintf(stderr, "bench_parse: could not generate the sample files\n");
    return 1;
  }
  benchmark::RegisterBenchmark("FlatKeyed/v1_memory.stat", BM_FlatKeyed, &g_v1, "memory.stat");
  benchmark::RegisterBenchmark("FlatKeyed/v2_memory.stat", BM_FlatKeyed, &g_v2, "memory.stat");
  benchmark::RegisterBenchmark("FlatKeyed/v2_cpu.stat", BM_FlatKeyed, &g_v2, "cpu.stat");
  benchmark::RegisterBenchmark("FlatKeyed/v1_cpu.stat", BM_FlatKeyed, &g_v1, "cpu.stat");
  benchmark::RegisterBenchmark("Pressure", BM_Pressure);
  benchmark::RegisterBenchmark("IoStat", BM_IoStat);
  benchmark::RegisterBenchmark("BlkioThrottle/bytes+ops", BM_BlkioThrottle);
  benchmark::RegisterBenchmark("SingleValue/cpuacct.usage", BM_SingleValue);
  benchmark::RegisterBenchmark("CpuMax", BM_CpuMax);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
