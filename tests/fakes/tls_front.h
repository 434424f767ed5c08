// TlsFront: HTTPS for the test fakes. It accepts TLS on 127.0.0.1 with a given certificate and
// relays each connection's plaintext over a fresh TCP connection to a plain HTTP server on another
// loopback port (the fake's civetweb), so civetweb sees one connection per TLS connection
// (keep-alive shows through) and never a failed handshake.
//
// What a reader gets wrong: this is not an optional nicety over civetweb's own HTTPS. Debian 12's
// libcivetweb 1.15 is built for OpenSSL 1.1 and dlopens libssl.so, whose 3.x lacks
// SSL_get_peer_certificate, so civetweb's HTTPS crashes (a NULL call) on every accepted
// connection. One thread accepts, one thread per connection relays (a test fake sees a handful);
// destroying the front ends them all at once, so destroy it before the server it relays to.
#pragma once

#include <expected>
#include <memory>
#include <string>

namespace nodewarden::testing {

struct TlsFrontOptions {
  // The server's certificate (chain), PEM, and its private key, PEM; key_file may stay empty when
  // the key is in certificate_file. TLS 1.2 or later.
  std::string certificate_file;
  std::string key_file;
  int port = 0;  // 0: a free port
};

class TlsFront {
 public:
  // Listens on 127.0.0.1 and relays to 127.0.0.1:upstream_port. Errors name the file at fault.
  static std::expected<std::unique_ptr<TlsFront>, std::string> start(const TlsFrontOptions& options,
                                                                     int upstream_port);
  ~TlsFront();
  TlsFront(const TlsFront&) = delete;
  TlsFront& operator=(const TlsFront&) = delete;

  [[nodiscard]] int port() const;

 private:
  class Impl;
  explicit TlsFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden::testing
