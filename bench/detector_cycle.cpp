// bench_detector_cycle: what the detector costs per collection cycle and per container, on
// synthetic snapshots of 100..5000 containers (two per pod) with moving counters: CPU time of
// Detector::update, of copying its state for readers (what the agent publishes each cycle) and of
// rendering its series, heap allocations per steady-state cycle, and heap bytes held per container.
//
// What a reader gets wrong: the figures depend on the interval, because the rings hold the long
// window's samples (5 min: 31 samples at 10 s, 301 at 1 s); both intervals are printed. Medians of
// interleaved rounds; nothing here is pass/fail.
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/alloc_counter.h"
#include "exporters/prometheus/signal_renderer.h"
#include "pipeline/detector/detector.h"

namespace nodewarden::bench {
namespace {

double cpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double median(std::vector<double> v) {
  std::ranges::sort(v);
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Node {
  std::vector<CgroupSample> samples;
  std::mt19937_64 rng{42};

  explicit Node(int containers) {
    const int pods = containers / 2;
    samples.reserve(static_cast<std::size_t>(pods * 3));
    for (int p = 0; p < pods; ++p) {
      const std::string uid = "00000000-0000-0000-0000-" + std::to_string(100000000000 + p);
      for (int c = -1; c < 2; ++c) {
        CgroupSample s;
        s.pod_uid = uid;
        s.namespace_name = "ns-" + std::to_string(p % 20);
        s.pod_name = "pod-" + std::to_string(p);
        if (c >= 0) {
          s.container_id.assign(63, 'a');
          s.container_id.push_back(static_cast<char>('0' + c));
          s.container_name = "c" + std::to_string(c);
        }
        s.id = "/kubepods/burstable/pod" + uid + (c >= 0 ? "/" + s.container_id : "");
        for (auto f :
             {CgroupField::kCpuUsageNs, CgroupField::kCfsPeriods, CgroupField::kCfsThrottledPeriods,
              CgroupField::kCfsThrottledNs, CgroupField::kPsiCpuSomeUs, CgroupField::kPsiMemSomeUs,
              CgroupField::kPsiIoSomeUs, CgroupField::kRunDelayNs}) {
          s.set(f, 0);
        }
        s.set(CgroupField::kCpuShares, 512);
        s.set(CgroupField::kMemLimitBytes, 1ULL << 30);
        s.io_present = true;
        s.io_devices = 1;
        samples.push_back(std::move(s));
      }
    }
  }

  void advance(double dt, Snapshot& snap) {
    std::uniform_real_distribution<double> u(0, 1);
    snap.cgroups.clear();
    for (auto& s : samples) {
      const auto add = [&](CgroupField f, double v) {
        s.set(f, s.get(f) + static_cast<std::uint64_t>(v));
      };
      add(CgroupField::kCpuUsageNs, u(rng) * dt * 1e9);
      add(CgroupField::kCfsPeriods, dt * 10);
      add(CgroupField::kCfsThrottledPeriods, u(rng) * dt);
      add(CgroupField::kCfsThrottledNs, u(rng) * dt * 1e7);
      add(CgroupField::kPsiCpuSomeUs, u(rng) * dt * 5e4);
      add(CgroupField::kPsiMemSomeUs, u(rng) * dt * 1e4);
      add(CgroupField::kPsiIoSomeUs, u(rng) * dt * 1e4);
      add(CgroupField::kRunDelayNs, u(rng) * dt * 1e7);
      s.set(CgroupField::kMemWorkingSetBytes, static_cast<std::uint64_t>(1e8 + u(rng) * 1e8));
      s.set(CgroupField::kMemUsageBytes, s.get(CgroupField::kMemWorkingSetBytes));
      s.io[0].read_bytes += static_cast<std::uint64_t>(u(rng) * 1e6);
      snap.cgroups.push_back(&s);
    }
  }
};

void run(int containers, std::chrono::milliseconds interval, int rounds) {
  detector::DetectorOptions o;
  o.node = "bench";
  o.interval = interval;
  o.max_containers = 100000;
  Node node(containers);
  Snapshot snap;
  snap.cgroups.reserve(node.samples.size());
  ::malloc_trim(0);
  const auto before = ::mallinfo2();
  detector::Detector d(o);
  const double dt = std::chrono::duration<double>(interval).count();
  double now = 0;
  // Fill every ring (the long window) before measuring.
  const int warm = static_cast<int>(300 / dt) + 5;
  for (int i = 0; i < warm; ++i) {
    now += dt;
    node.advance(dt, snap);
    d.update(snap, now);
  }
  // What the detector holds (its windows, histograms, baselines and its own state), before any
  // copy or rendering.
  const auto after = ::mallinfo2();
  std::vector<double> update_us;
  std::vector<double> copy_us;
  std::vector<double> render_us;
  std::vector<double> allocs;
  detector::DetectorState published;
  std::string text;
  for (int i = 0; i < rounds; ++i) {
    now += dt;
    node.advance(dt, snap);
    {
      AllocCounter count;
      const double t0 = cpuSeconds();
      d.update(snap, now);
      update_us.push_back((cpuSeconds() - t0) * 1e6);
      allocs.push_back(static_cast<double>(count.count().allocs));
    }
    double t0 = cpuSeconds();
    published = d.state();
    copy_us.push_back((cpuSeconds() - t0) * 1e6);
    text.clear();
    t0 = cpuSeconds();
    renderDetectorState(published, o, text);
    render_us.push_back((cpuSeconds() - t0) * 1e6);
  }
  const double held = static_cast<double>(after.uordblks + after.hblkhd) -
                      static_cast<double>(before.uordblks + before.hblkhd);
  std::printf("%10d %8.0fs %12.0f %12.0f %12.0f %10.0f %12.0f %12.0f\n", containers, dt,
              median(update_us), median(copy_us), median(render_us), median(allocs),
              held / containers, static_cast<double>(text.size()) / containers);
}

}  // namespace
}  // namespace nodewarden::bench

int main(int argc, char** argv) {
  int rounds = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]).starts_with("--rounds=")) rounds = std::atoi(argv[i] + 9);
  }
  std::printf("%10s %9s %12s %12s %12s %10s %12s %12s\n", "containers", "interval", "update_us",
              "copy_us", "render_us", "allocs", "heap_B/ctr", "text_B/ctr");
  for (const auto interval : {std::chrono::milliseconds(10000), std::chrono::milliseconds(1000)}) {
    for (const int n : {100, 1000, 5000}) nodewarden::bench::run(n, interval, rounds);
  }
  return 0;
}
