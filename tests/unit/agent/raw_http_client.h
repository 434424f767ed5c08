// A bare HTTP/1.1 client on a loopback socket for the listener's tests: it sends exactly the bytes
// a test writes (slowloris heads, oversized heads, pipelined requests) and reads responses with a
// deadline, decoding chunked bodies. Optionally over TLS (OpenSSL), to see the served certificate.
//
// What a reader gets wrong: every read is bounded by the deadline given, so a server that never
// answers fails the test instead of hanging it; "closed" means the server ended the connection
// (EOF or reset), which the timeout tests wait for.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace nodewarden::testing {

struct RawReply {
  int status = 0;
  std::string headers;  // the header block, lines as received
  std::string body;     // de-chunked
  [[nodiscard]] bool hasHeader(std::string_view line) const {
    return headers.find(std::string(line) + "\r\n") != std::string::npos;
  }
};

class RawClient {
 public:
  using Clock = std::chrono::steady_clock;

  RawClient() = default;
  explicit RawClient(int port) { connectTo(port); }
  ~RawClient() { reset(); }
  RawClient(RawClient&& o) noexcept { *this = std::move(o); }
  RawClient& operator=(RawClient&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      ssl_ = o.ssl_;
      ctx_ = o.ctx_;
      buf_ = std::move(o.buf_);
      o.fd_ = -1;
      o.ssl_ = nullptr;
      o.ctx_ = nullptr;
    }
    return *this;
  }

  // Connects within the timeout: a server that stopped accepting leaves the kernel's backlog
  // full, and a blocking connect would then wait for SYN retries for minutes.
  bool connectTo(int port, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    reset();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool connected = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (!connected && errno == EINPROGRESS) {
      pollfd p{fd_, POLLOUT, 0};
      int error = 0;
      socklen_t len = sizeof error;
      connected = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
                  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
    }
    if (!connected) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
  }

  // TLS over the connected socket, trusting ca_file (the server's self-signed certificate).
  // Optionally presents a client certificate, and caps the protocol version (max_version, e.g.
  // TLS1_2_VERSION). Returns OpenSSL's reason on failure.
  std::optional<std::string> startTls(const std::string& ca_file,
                                      const std::string& client_cert = {},
                                      const std::string& client_key = {}, int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr) != 1) return error("CA");
    if (!client_cert.empty() &&
        (SSL_CTX_use_certificate_chain_file(ctx_, client_cert.c_str()) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx_, client_key.c_str(), SSL_FILETYPE_PEM) != 1)) {
      return error("client certificate");
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "127.0.0.1");
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (SSL_connect(ssl_) != 1) return error("handshake");
    return std::nullopt;
  }

  // The TLS session after startTls (null before), for tests that drive OpenSSL directly.
  [[nodiscard]] SSL* ssl() const { return ssl_; }

  // The server's leaf certificate in PEM, after startTls.
  [[nodiscard]] std::string peerCertificatePem() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return {};
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    X509_free(cert);
    return pem;
  }

  [[nodiscard]] int fd() const { return fd_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const long n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                                     : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads one response. head_request: the response has no body whatever its headers say.
  std::optional<RawReply> read(std::chrono::milliseconds timeout, bool head_request = false) {
    const auto deadline = Clock::now() + timeout;
    std::size_t end = std::string::npos;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(deadline)) return std::nullopt;
    }
    RawReply r;
    r.headers = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    if (r.headers.size() < 12 || !r.headers.starts_with("HTTP/1.")) return std::nullopt;
    r.status = std::stoi(r.headers.substr(9, 3));
    if (head_request) return r;
    if (r.hasHeader("Transfer-Encoding: chunked")) {
      while (true) {
        std::size_t line;
        while ((line = buf_.find("\r\n")) == std::string::npos) {
          if (!fill(deadline)) return std::nullopt;
        }
        const std::size_t size = std::stoul(buf_.substr(0, line), nullptr, 16);
        while (buf_.size() < line + 2 + size + 2) {
          if (!fill(deadline)) return std::nullopt;
        }
        r.body += buf_.substr(line + 2, size);
        buf_.erase(0, line + 2 + size + 2);
        if (size == 0) return r;
      }
    }
    while (fill(deadline)) {
    }
    r.body = std::move(buf_);
    buf_.clear();
    return r;
  }

  // Sends a GET (or another method) and reads its response.
  std::optional<RawReply> request(std::string_view method, std::string_view target,
                                  std::string_view extra_headers = {},
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string req = std::string(method) + " " + std::string(target) +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + std::string(extra_headers) + "\r\n";
    if (!send(req)) return std::nullopt;
    return read(timeout, method == "HEAD");
  }

  // True when the server closes the connection (EOF or reset) within the timeout; bytes that
  // arrive meanwhile are kept.
  bool waitClosed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (!fill(deadline)) return !timed_out_;
    }
    return false;
  }

  [[nodiscard]] const std::string& pending() const { return buf_; }

 private:
  // Reads more into buf_; false on EOF, error or deadline (timed_out_ says which).
  bool fill(Clock::time_point deadline) {
    timed_out_ = false;
    if (fd_ < 0) return false;
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return readSome();
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out_ = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r == 0) {
      timed_out_ = true;
      return false;
    }
    if (r < 0) return errno == EINTR;
    return readSome();
  }

  bool readSome() {
    char chunk[16384];
    const long n =
        ssl_ != nullptr ? SSL_read(ssl_, chunk, sizeof chunk) : ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  std::optional<std::string> error(const char* what) {
    char text[256] = {};
    ERR_error_string_n(ERR_get_error(), text, sizeof text);
    return std::string(what) + ": " + text;
  }

  void reset() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    fd_ = -1;
    buf_.clear();
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  SSL_CTX* ctx_ = nullptr;
  std::string buf_;
  bool timed_out_ = false;
};

}  // namespace nodewarden::testing
