#include "tests/fakes/civetweb_stop.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace nodewarden::testing {
namespace {

void wakeListener(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  ::close(fd);
}

}  // namespace

void stopCivetweb(mg_context* ctx, int port) {
  if (ctx == nullptr) return;
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    mg_stop(ctx);
    done = true;
  });
  for (int i = 0; i < 500 && !done; ++i) {
    wakeListener(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopper.join();
}

}  // namespace nodewarden::testing
