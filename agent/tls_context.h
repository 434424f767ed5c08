// The listener's TLS: a server context (TLS 1.2 and later only) built from PEM certificate and key
// files, optionally verifying client certificates against a CA bundle, and rebuilt when the files
// change on disk (cert-manager and Kubernetes secret volumes replace them in place).
//
// What a reader gets wrong: a rotation writes the certificate and the key one after the other, so
// a check between the two sees a pair that does not match. That pair is refused (the old context
// stays in use, the error is reported once) and the next change of either file is tried again;
// the files are not re-read while their stamps stay the same, so a bad pair is not retried (nor
// reported) on every connection.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>

namespace asio::ssl {
class context;
}

namespace nodewarden {

// Also the config's tls.* section (agent/config.h): both of cert_file and key_file or neither.
struct TlsFiles {
  std::filesystem::path cert_file;       // PEM chain, leaf first
  std::filesystem::path key_file;        // PEM private key of the leaf
  std::filesystem::path client_ca_file;  // PEM bundle; empty: no client certificates asked for
};

// A server context from the files, or a message naming the file and what is wrong with it.
std::expected<std::shared_ptr<asio::ssl::context>, std::string> makeServerTlsContext(
    const TlsFiles& files);

class ReloadingTlsContext {
 public:
  using Clock = std::chrono::steady_clock;

  // Loads the files now; an error here is a start-up error.
  static std::expected<std::unique_ptr<ReloadingTlsContext>, std::string> load(
      TlsFiles files, std::chrono::milliseconds check_interval);

  // The context for a new connection. At most once per check interval the files' stamps are
  // compared with those last loaded (or tried); when they differ the context is rebuilt, and on
  // failure `reload_error` gets the reason and the previous context is returned. One thread only.
  std::shared_ptr<asio::ssl::context> current(Clock::time_point now, std::string& reload_error);

 private:
  // mtime (ns), size, inode and device of the three files; zeros for a file that cannot be
  // stat'ed or is not configured.
  using Stamp = std::array<std::int64_t, 12>;
  ReloadingTlsContext(TlsFiles files, std::chrono::milliseconds interval);
  [[nodiscard]] Stamp stamp() const;

  TlsFiles files_;
  std::chrono::milliseconds interval_;
  Clock::time_point last_check_{};
  Stamp tried_{};
  std::shared_ptr<asio::ssl::context> context_;
};

}  // namespace nodewarden
