#include "agent/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <asio/ssl/context.hpp>
#include <cstdint>

namespace nodewarden {
namespace {

// OpenSSL's queue holds the precise reason (e.g. "key values mismatch"); asio's error_code only
// says "PEM lib" or the like.
std::string lastOpenSslError(const asio::error_code& ec) {
  unsigned long code = 0;
  unsigned long last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return ec ? ec.message() : "unknown error";
  char text[256] = {};
  ERR_error_string_n(last, text, sizeof text);
  return text;
}

}  // namespace

std::expected<std::shared_ptr<asio::ssl::context>, std::string> makeServerTlsContext(
    const TlsFiles& files) {
  ERR_clear_error();
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  asio::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                   ec);
  if (ec || SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
    return std::unexpected("cannot restrict TLS to 1.2 and later: " + lastOpenSslError(ec));
  }
  // A TLS 1.2 client could otherwise renegotiate at will, each costing the io thread a full
  // handshake outside the handshake deadline.
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
  ctx->use_certificate_chain_file(files.cert_file, ec);
  if (ec) {
    return std::unexpected("certificate file " + files.cert_file.string() +
                           ": cannot load a PEM certificate chain: " + lastOpenSslError(ec));
  }
  ctx->use_private_key_file(files.key_file, asio::ssl::context::pem, ec);
  if (ec) {
    const std::string why = lastOpenSslError(ec);
    // OpenSSL compares the key with the certificate while loading it.
    if (why.find("key values mismatch") != std::string::npos) {
      return std::unexpected("key file " + files.key_file.string() +
                             " does not match certificate file " + files.cert_file.string());
    }
    return std::unexpected("key file " + files.key_file.string() +
                           ": cannot load a PEM private key: " + why);
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return std::unexpected("key file " + files.key_file.string() +
                           " does not match certificate file " + files.cert_file.string() + ": " +
                           lastOpenSslError({}));
  }
  if (!files.client_ca_file.empty()) {
    ctx->load_verify_file(files.client_ca_file, ec);
    if (ec) {
      return std::unexpected("client CA file " + files.client_ca_file.string() +
                             ": cannot load PEM certificates: " + lastOpenSslError(ec));
    }
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return std::unexpected("cannot require client certificates: " + ec.message());
  }
  return ctx;
}

ReloadingTlsContext::ReloadingTlsContext(TlsFiles files, std::chrono::milliseconds interval)
    : files_(std::move(files)), interval_(interval) {}

std::expected<std::unique_ptr<ReloadingTlsContext>, std::string> ReloadingTlsContext::load(
    TlsFiles files, std::chrono::milliseconds check_interval) {
  std::unique_ptr<ReloadingTlsContext> r(new ReloadingTlsContext(std::move(files), check_interval));
  r->tried_ = r->stamp();
  auto ctx = makeServerTlsContext(r->files_);
  if (!ctx) return std::unexpected(ctx.error());
  r->context_ = std::move(*ctx);
  r->last_check_ = Clock::now();
  return r;
}

ReloadingTlsContext::Stamp ReloadingTlsContext::stamp() const {
  Stamp s{};
  std::size_t i = 0;
  for (const std::filesystem::path* path :
       {&files_.cert_file, &files_.key_file, &files_.client_ca_file}) {
    struct stat st {};
    if (!path->empty() && ::stat(path->c_str(), &st) == 0) {
      s[i] = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      s[i + 1] = static_cast<std::int64_t>(st.st_size);
      s[i + 2] = static_cast<std::int64_t>(st.st_ino);
      s[i + 3] = static_cast<std::int64_t>(st.st_dev);
    }
    i += 4;
  }
  return s;
}

std::shared_ptr<asio::ssl::context> ReloadingTlsContext::current(Clock::time_point now,
                                                                 std::string& reload_error) {
  if (now - last_check_ < interval_) return context_;
  last_check_ = now;
  const Stamp s = stamp();
  if (s == tried_) return context_;
  tried_ = s;
  auto ctx = makeServerTlsContext(files_);
  if (ctx) {
    context_ = std::move(*ctx);
  } else {
    reload_error = ctx.error() + " (still serving the previous certificate)";
  }
  return context_;
}

}  // namespace nodewarden
