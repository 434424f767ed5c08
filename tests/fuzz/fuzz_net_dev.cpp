// libFuzzer target: the /proc/<pid>/net/dev parser on arbitrary bytes. Interface names in a pod's
// namespace are chosen by whoever runs the pod (a CNI plugin, a privileged container), and the
// parser must never write past its fixed array nor keep a name longer than the field holds.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "collectors/cgroup/pod_network.h"

using namespace nodewarden;
using namespace nodewarden::cgroup;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::array<NetInterfaceStat, kMaxNetInterfaces> out{};
  const NetDevResult r = parseNetDev(in, out);
  if (r.interfaces > out.size()) __builtin_trap();
  for (std::size_t i = 0; i < r.interfaces; ++i) {
    const std::size_t len = ::strnlen(out[i].name.data(), out[i].name.size());
    // A stored name is NUL-terminated, non-empty and not one cAdvisor ignores.
    if (len == 0 || len >= out[i].name.size()) __builtin_trap();
    if (isIgnoredNetInterface(std::string_view(out[i].name.data(), len))) __builtin_trap();
    // Printable ASCII only: a label value that is not UTF-8 fails the whole scrape.
    for (std::size_t k = 0; k < len; ++k) {
      const auto c = static_cast<unsigned char>(out[i].name[k]);
      if (c <= ' ' || c >= 0x7f) __builtin_trap();
    }
  }
  // A smaller bound keeps the first interfaces and counts the rest.
  std::array<NetInterfaceStat, 1> one{};
  const NetDevResult r1 = parseNetDev(in, one);
  if (r1.interfaces + r1.over_bound != r.interfaces + r.over_bound) __builtin_trap();
  if (r1.interfaces == 1 && std::memcmp(one[0].name.data(), out[0].name.data(), 16) != 0) {
    __builtin_trap();
  }
  return 0;
}
