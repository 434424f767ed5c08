// NetnsPair and sendUdpFrom: see net_namespace.h.
#include "tests/support/net_namespace.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <vector>

namespace nodewarden::testing {
namespace {

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace

NetnsPair::NetnsPair()
    : a_("nwnet" + std::to_string(::getpid()) + "a"),
      b_("nwnet" + std::to_string(::getpid()) + "b"),
      if_a_("nwa" + std::to_string(::getpid())),
      if_b_("nwb" + std::to_string(::getpid())) {}

NetnsPair::~NetnsPair() {
  if (made_a_) sh("ip netns del " + a_ + " 2>/dev/null");
  if (made_b_) sh("ip netns del " + b_ + " 2>/dev/null");
}

std::string NetnsPair::create() {
  made_a_ = sh("ip netns add " + a_) == 0;
  if (!made_a_) return "ip netns add " + a_;
  made_b_ = sh("ip netns add " + b_) == 0;
  if (!made_b_) return "ip netns add " + b_;
  for (const auto& ns : {a_, b_}) {
    const std::string off = "ip netns exec " + ns +
                            " sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                            "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'";
    if (sh(off) != 0) return off;
  }
  const std::vector<std::string> steps = {
      "ip link add " + if_a_ + " netns " + a_ + " type veth peer name " + if_b_ + " netns " + b_,
      "ip -n " + a_ + " addr add " + addressA() + "/24 dev " + if_a_,
      "ip -n " + b_ + " addr add " + addressB() + "/24 dev " + if_b_,
      "ip -n " + a_ + " link set " + if_a_ + " up",
      "ip -n " + b_ + " link set " + if_b_ + " up",
      "ip -n " + a_ + " link set lo up",
  };
  for (const auto& step : steps) {
    if (sh(step) != 0) return step;
  }
  return {};
}

ino_t netDevInode(pid_t pid) {
  struct stat st {};
  const std::string p = "/proc/" + std::to_string(pid) + "/net/dev";
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool waitOutsideNodeNetns(pid_t pid, std::chrono::milliseconds timeout) {
  const ino_t node = netDevInode(1);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const ino_t mine = netDevInode(pid);
    if (mine != 0 && mine != node) return true;
    if (mine == 0 || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<int> sendUdpFrom(const std::string& from, const char* address, int port, int count,
                               std::size_t payload) {
  return inNetns(from, [&] {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address, &to.sin_addr);
    const std::vector<char> data(payload);
    int sent = 0;
    for (int i = 0; i < count; ++i) {
      sent += ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to),
                       sizeof to) == static_cast<ssize_t>(data.size());
    }
    ::close(fd);
    return sent;
  });
}

}  // namespace nodewarden::testing
