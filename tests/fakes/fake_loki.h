// FakeLoki: a Loki push receiver for tests (and a Prometheus remote-write one on /api/v1/write:
// checked, decoded, its samples counted as entries, answered as told, not stored). It listens on
// 127.0.0.1 on a free port, accepts POST /loki/api/v1/push as Loki does (protobuf + snappy, or
// JSON, either optionally with Content-Encoding: gzip), decodes and records every stream and entry,
// and answers what the test tells it to: 204 by default, or 400, 413, 429 with Retry-After, 500, or
// no answer for a while.
//
// What a reader gets wrong: entries are recorded only for requests it answered 2xx, as Loki keeps
// only what it accepted; every request, whatever the answer, is in requests(). A hang answers 503
// when it ends (the client has usually given up by then) and ends early when the fake stops, so
// destroying a FakeLoki never waits for a hang. Every wait here is bounded by its caller.
// With a certificate in its options it serves HTTPS instead: an OpenSSL front on port() relays
// to the plain server, and connections() counts TLS connections that completed their handshake.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/log_record.h"

struct mg_connection;
struct mg_context;

namespace nodewarden::testing {

class TlsFront;

struct FakeLokiRequest {
  std::string method;
  std::string content_type;
  std::string content_encoding;
  std::vector<std::pair<std::string, std::string>> headers;  // as sent
  std::size_t body_bytes = 0;                                // as sent (compressed)
  std::size_t entries = 0;                                   // decoded, 0 when it did not decode
  int status = 0;                                            // what the fake answered
  std::string error;  // why it did not decode, or why it was refused
  // A header's value by case-insensitive name; empty when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

// What to answer. Plain statuses answer with a short text body.
struct FakeLokiAnswer {
  int status = 204;
  std::chrono::seconds retry_after{0};  // sent as Retry-After when > 0
  std::chrono::milliseconds hang{0};    // > 0: answer nothing for this long (at most 30 s)
  std::string body;                     // the reply's text; empty: a short default

  static FakeLokiAnswer ok() { return {}; }
  static FakeLokiAnswer withStatus(int status, std::string body = {}) {
    return {status, {}, {}, std::move(body)};
  }
  static FakeLokiAnswer tooManyRequests(std::chrono::seconds retry_after) {
    return {429, retry_after, {}, {}};
  }
  static FakeLokiAnswer hangFor(std::chrono::milliseconds duration) {
    return {503, {}, duration, {}};
  }
};

struct FakeLokiOptions {
  std::string tenant;         // when set, requests must carry this X-Scope-OrgID (else 401)
  std::string authorization;  // when set, requests must carry this Authorization (else 401)
  // Above this many entries in one request the answer is 413, as Loki's size limits would.
  std::size_t max_entries_per_request = 0;  // 0: no limit
  // Called for every accepted entry, on a server thread, outside the fake's lock.
  std::function<void(const Labels& stream, const LogEntry& entry)> on_entry;
  int port = 0;  // 0: a free port
  // HTTPS instead of HTTP when set: the server's certificate (chain), PEM, and its private key,
  // PEM. tls_key_file may stay empty when the key is in tls_certificate_file. TLS 1.2 or later.
  std::string tls_certificate_file;
  std::string tls_key_file;
};

class FakeLoki {
 public:
  static std::expected<std::unique_ptr<FakeLoki>, std::string> start(FakeLokiOptions options = {});
  ~FakeLoki();
  FakeLoki(const FakeLoki&) = delete;
  FakeLoki& operator=(const FakeLoki&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] bool tls() const { return !options_.tls_certificate_file.empty(); }
  // http://127.0.0.1:<port>/loki/api/v1/push, or https:// when tls().
  [[nodiscard]] std::string pushUrl() const;
  [[nodiscard]] std::string remoteWriteUrl() const;  // .../api/v1/write

  // Answer the next `times` requests so (-1: every request until told otherwise), then 204 again.
  void answer(FakeLokiAnswer answer, int times = -1);
  // The same for the requests of one tenant (X-Scope-OrgID) only, before answer()'s: one tenant
  // answered 429 while the others are not.
  void answerTenant(const std::string& tenant, FakeLokiAnswer answer, int times = -1);
  // Accepted entries of one tenant ("" for requests without X-Scope-OrgID), and a wait for them.
  [[nodiscard]] std::map<Labels, std::vector<LogEntry>> tenantStreams(
      const std::string& tenant) const;
  [[nodiscard]] std::size_t tenantEntryCount(const std::string& tenant) const;
  bool waitForTenantEntries(const std::string& tenant, std::size_t count,
                            std::chrono::milliseconds timeout) const;
  void setMaxEntriesPerRequest(std::size_t max_entries);

  // Waits until at least `count` entries were accepted; false when `timeout` passed first.
  bool waitForEntries(std::size_t count, std::chrono::milliseconds timeout) const;
  // Waits until at least `count` requests were answered; false when `timeout` passed first.
  bool waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const;
  // Waits until at least `count` requests, read whole, began a hang; false when `timeout` passed
  // first.
  bool waitForHangs(std::size_t count, std::chrono::milliseconds timeout) const;
  [[nodiscard]] std::size_t entryCount() const;
  // Accepted entries of one stream (labels sorted by name), in arrival order.
  [[nodiscard]] std::vector<LogEntry> entries(const Labels& stream) const;
  // Every stream and its accepted entries.
  [[nodiscard]] std::map<Labels, std::vector<LogEntry>> streams() const;
  [[nodiscard]] std::vector<FakeLokiRequest> requests() const;
  // TCP connections accepted so far (keep-alive reuses one).
  [[nodiscard]] std::size_t connections() const;
  // Forgets what was received; answers and options stay.
  void clear();

 private:
  explicit FakeLoki(FakeLokiOptions options);
  static int handlePush(mg_connection* conn, void* self);
  static int countConnection(const mg_connection* conn, void** conn_data);
  int handle(mg_connection* conn);

  FakeLokiOptions options_;
  mg_context* ctx_ = nullptr;
  int port_ = 0;        // what clients connect to: civetweb's, or the TLS front's
  int civet_port_ = 0;  // civetweb's own
  std::unique_ptr<TlsFront> tls_front_;

  // Everything below is shared with civetweb's worker threads.
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // an entry, request or hang began, or stopping_
  FakeLokiAnswer answer_;
  int answer_times_ = -1;
  bool stopping_ = false;
  std::map<Labels, std::vector<LogEntry>> streams_;
  std::size_t entry_count_ = 0;
  struct TenantAnswer {
    FakeLokiAnswer answer;
    int times = -1;
  };
  std::map<std::string, TenantAnswer> tenant_answers_;
  std::map<std::string, std::map<Labels, std::vector<LogEntry>>> tenant_streams_;
  std::map<std::string, std::size_t> tenant_entry_counts_;
  std::vector<FakeLokiRequest> requests_;
  std::size_t connections_ = 0;
  std::size_t hangs_begun_ = 0;
};

// A decoded push body: streams in request order (a stream may repeat).
using DecodedPush = std::vector<std::pair<Labels, std::vector<LogEntry>>>;

// Decodes a push body the way Loki does: Content-Encoding gzip first, then JSON when the content
// type says application/json, else snappy-compressed protobuf.
std::expected<DecodedPush, std::string> decodeLokiPush(std::string_view content_type,
                                                       std::string_view content_encoding,
                                                       std::string_view body);
// Parses a LogQL stream selector of equality matchers, {a="b", c="d"}, unquoting Go escapes;
// the labels come back sorted by name.
std::expected<Labels, std::string> parseLokiLabels(std::string_view selector);
// gunzip (RFC 1952), with zlib.
std::expected<std::string, std::string> gunzip(std::string_view data);

}  // namespace nodewarden::testing
