// libFuzzer target: every cgroup interface-file parser (pid lists included) and kubelet's
// directory-name parsers on arbitrary bytes. They read files a container's owner can influence (a
// container can fill its own memory.stat keys) and names anyone with mkdir rights on the tree can
// choose.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "collectors/cgroup/aggregate_cgroups.h"
#include "collectors/cgroup/cgroup_layout.h"
#include "collectors/cgroup/cgroup_parsers.h"
#include "collectors/cgroup/process_stats.h"

using namespace nodewarden;
using namespace nodewarden::cgroup;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)parseU64(in);
  (void)parseSingleValue(in);
  (void)parseV1MemoryLimit(in);
  (void)parseV2MemoryMax(in);
  (void)parseV1CpuQuota(in);
  (void)parseCpuMax(in);
  std::uint64_t sum = 0;
  (void)parseFlatKeyed(in, [&](std::string_view k, std::uint64_t v) { sum += k.size() + v; });
  if (auto p = parsePressure(in)) {
    if (!p->has_some) __builtin_trap();  // a success always carries the "some" line
  }
  std::array<IoDeviceStat, kMaxIoDevices> io{};
  if (auto n = parseIoStat(in, io); n && *n > io.size()) __builtin_trap();
  auto n = parseBlkioThrottle(in, true, io, 0);
  if (n) n = parseBlkioThrottle(in, false, io, *n);
  if (n && *n > io.size()) __builtin_trap();
  (void)parseSchedstatRunDelay(in);
  // cgroup.procs / cgroup.threads / tasks: every pid handed on is a positive pid_t.
  std::size_t bad = 0;
  std::size_t pids = 0;
  const std::size_t counted = countPids(in, bad);
  bad = forEachPid(in, [&](pid_t pid) {
    if (pid <= 0) __builtin_trap();
    ++pids;
  });
  if (pids != counted) __builtin_trap();
  (void)cpuWeightToShares(sum);
  (void)isKubepodsRootName(in);
  (void)parseQosDir(in);
  if (auto pod = parsePodDir(in)) {
    std::string uid;
    if (normalizePodUid(pod->uid_raw, uid) && uid.size() != 36) __builtin_trap();
  }
  if (auto id = parseContainerDir(in); id && id->size() != 64) __builtin_trap();
  // The root's usage is total - free: a success never has more free than total.
  if (auto m = parseMeminfoTotals(in); m && m->free_bytes > m->total_bytes) __builtin_trap();
  return 0;
}
