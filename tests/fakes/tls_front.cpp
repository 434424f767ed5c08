// TlsFront: an OpenSSL server front for the test fakes; see tls_front.h for why not civetweb's.
#include "tests/fakes/tls_front.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace nodewarden::testing {
namespace {

std::string opensslError() {
  std::string text;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!text.empty()) text += "; ";
    text += buf.data();
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

}  // namespace

class TlsFront::Impl {
 public:
  static std::expected<std::unique_ptr<Impl>, std::string> start(const TlsFrontOptions& options,
                                                                 int upstream_port) {
    const auto bad = [](const std::string& what) { return std::unexpected(what); };
    std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return bad("SSL_CTX_new: " + opensslError());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);  // as Go's servers by default
    const std::string& key = options.key_file.empty() ? options.certificate_file : options.key_file;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.certificate_file.c_str()) != 1) {
      return bad("certificate_file '" + options.certificate_file + "': " + opensslError());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx.get()) != 1) {
      return bad("key_file '" + key + "': " + opensslError());
    }
    std::unique_ptr<Impl> front(new Impl(std::move(ctx), upstream_port));
    front->stop_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    front->listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (front->stop_.get() < 0 || front->listener_.get() < 0) return bad("cannot make sockets");
    const int one = 1;
    ::setsockopt(front->listener_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = loopback(options.port);
    socklen_t len = sizeof addr;
    if (::bind(front->listener_.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
        ::listen(front->listener_.get(), 64) != 0 ||
        ::getsockname(front->listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return bad("cannot listen on 127.0.0.1:" + std::to_string(options.port) + ": " +
                 std::strerror(errno));
    }
    front->port_ = ntohs(addr.sin_port);
    front->acceptor_ = std::thread([f = front.get()] { f->acceptLoop(); });
    return front;
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    const std::uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    if (acceptor_.joinable()) acceptor_.join();
    const std::scoped_lock lock(mutex_);  // the acceptor is gone: nothing adds relays any more
    for (auto& relay : relays_) relay.join();
  }

  [[nodiscard]] int port() const { return port_; }

 private:
  static constexpr int kHandshakeTimeoutMs = 10'000;

  Impl(std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx, int upstream_port)
      : ctx_(std::move(ctx)), upstream_port_(upstream_port) {}

  // Waits for `events` on fd; false when stopping, on error, or after timeout_ms (-1: none).
  bool waitFor(int fd, short events, int timeout_ms = -1) const {
    std::array<pollfd, 2> fds{{{fd, events, 0}, {stop_.get(), POLLIN, 0}}};
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    return n > 0 && fds[1].revents == 0 && fds[0].revents != 0;
  }

  void acceptLoop() {
    while (waitFor(listener_.get(), POLLIN)) {
      Fd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (client.get() < 0) continue;
      const std::scoped_lock lock(mutex_);
      relays_.emplace_back([this, fd = std::move(client)]() mutable { relay(std::move(fd)); });
    }
  }

  // Retries an SSL call that answered WANT_READ/WANT_WRITE on the non-blocking client socket.
  bool retry(SSL* ssl, int rc, int client, int timeout_ms = -1) const {
    switch (SSL_get_error(ssl, rc)) {
      case SSL_ERROR_WANT_READ:
        return waitFor(client, POLLIN, timeout_ms);
      case SSL_ERROR_WANT_WRITE:
        return waitFor(client, POLLOUT, timeout_ms);
      default:
        return false;
    }
  }

  void relay(Fd client) {
    // A peer that went away must not kill the test with SIGPIPE: OpenSSL writes with write(2).
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    const int one = 1;
    ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(ctx_.get()));
    if (!ssl || SSL_set_fd(ssl.get(), client.get()) != 1) return;
    while (true) {  // a client that rejects our certificate ends here, before the upstream server
                    // sees it
      const int rc = SSL_accept(ssl.get());
      if (rc == 1) break;
      if (!retry(ssl.get(), rc, client.get(), kHandshakeTimeoutMs)) return;
    }
    Fd upstream(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const sockaddr_in addr = loopback(upstream_port_);
    if (upstream.get() < 0 ||
        ::connect(upstream.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return;
    }
    ::setsockopt(upstream.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<char> buf(64 * 1024);
    while (true) {
      // TLS to the upstream server: everything OpenSSL can give now (it may hold decrypted bytes
      // the socket no longer shows, so this runs before every poll).
      while (true) {
        const int n = SSL_read(ssl.get(), buf.data(), static_cast<int>(buf.size()));
        if (n > 0) {
          if (!sendAll(upstream.get(), buf.data(), static_cast<std::size_t>(n))) return;
          continue;
        }
        const int err = SSL_get_error(ssl.get(), n);
        if (err == SSL_ERROR_WANT_READ) break;
        if (err != SSL_ERROR_WANT_WRITE || !waitFor(client.get(), POLLOUT)) return;  // closed
      }
      std::array<pollfd, 3> fds{
          {{client.get(), POLLIN, 0}, {upstream.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
      if (fds[2].revents != 0) return;
      if (fds[1].revents != 0) {  // the upstream server to TLS
        const ssize_t n = ::recv(upstream.get(), buf.data(), buf.size(), 0);
        if (n <= 0)
          break;  // the upstream server closed (keep-alive timeout, or it answered and closed)
        for (std::size_t done = 0; done < static_cast<std::size_t>(n);) {
          const int w = SSL_write(ssl.get(), buf.data() + done, static_cast<int>(n - done));
          if (w > 0) {
            done += static_cast<std::size_t>(w);
          } else if (!retry(ssl.get(), w, client.get())) {
            return;
          }
        }
      }
    }
    (void)SSL_shutdown(ssl.get());  // one close_notify, best effort: the socket closes next
  }

  static bool sendAll(int fd, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx_;
  int upstream_port_;
  int port_ = 0;
  Fd stop_;
  Fd listener_;
  std::thread acceptor_;
  std::mutex mutex_;                 // guards relays_: the acceptor adds, the destructor joins
  std::vector<std::thread> relays_;  // finished ones stay until stop; a test makes few
};

TlsFront::TlsFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TlsFront::~TlsFront() = default;

std::expected<std::unique_ptr<TlsFront>, std::string> TlsFront::start(
    const TlsFrontOptions& options, int upstream_port) {
  auto impl = Impl::start(options, upstream_port);
  if (!impl) return std::unexpected(impl.error());
  return std::unique_ptr<TlsFront>(new TlsFront(std::move(*impl)));
}

int TlsFront::port() const { return impl_->port(); }

}  // namespace nodewarden::testing
