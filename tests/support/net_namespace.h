// NetnsPair: two network namespaces of the running kernel joined by a veth pair (192.0.2.1 in the
// first, 192.0.2.2 in the second), for tests that run a pod's processes outside the node's
// namespace (`ip netns exec <ns> ...`); inNetns runs a function on a thread inside one of them.
//
// What a reader gets wrong: the names carry the test's pid so that tests running at the same time
// do not meet, and the destructor deletes both namespaces even when create() failed half-way
// (deleting a namespace destroys its end of the pair, and with it the other end).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <thread>

namespace nodewarden::testing {

class NetnsPair {
 public:
  NetnsPair();
  ~NetnsPair();
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  // Empty on success, else the command that failed. IPv6 is off in both namespaces so that no
  // router solicitation moves a counter the test did not ask for.
  std::string create();

  [[nodiscard]] const std::string& a() const { return a_; }
  [[nodiscard]] const std::string& b() const { return b_; }
  [[nodiscard]] const std::string& ifA() const { return if_a_; }
  [[nodiscard]] const std::string& ifB() const { return if_b_; }
  [[nodiscard]] static const char* addressA() { return "192.0.2.1"; }
  [[nodiscard]] static const char* addressB() { return "192.0.2.2"; }

 private:
  std::string a_, b_, if_a_, if_b_;
  bool made_a_ = false, made_b_ = false;
};

// Runs f on a thread that entered the named network namespace (setns is per thread for it);
// empty if the namespace could not be entered.
template <typename F>
auto inNetns(const std::string& ns, F f) {
  std::optional<decltype(f())> result;
  std::thread t([&] {
    const int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) ::close(fd);
      return;
    }
    ::close(fd);
    result = f();
  });
  t.join();
  return result;
}

// The inode of /proc/<pid>/net/dev: one per network namespace, so it tells whether a process is
// in the node's namespace (that of pid 1) without ptrace rights. 0 if the process is gone.
ino_t netDevInode(pid_t pid);

// Waits until the process left the node's network namespace (`ip netns exec` enters it before
// exec, under the same pid). False on timeout or if the process exited.
bool waitOutsideNodeNetns(pid_t pid, std::chrono::milliseconds timeout);

// Sends `count` UDP datagrams of `payload` bytes from namespace `from` to address:port, whether or
// not anything listens there. Returns how many the kernel took, empty if `from` could not be
// entered.
std::optional<int> sendUdpFrom(const std::string& from, const char* address, int port, int count,
                               std::size_t payload);

}  // namespace nodewarden::testing
