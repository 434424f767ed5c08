// ApiClient: the one HTTP client of the agent for Kubernetes endpoints, the API server and the
// kubelet: one kept libcurl easy handle (one connection, one TLS session) driven through a multi
// handle, the bearer token re-read from its file before every request, the CA file or the explicit
// insecure_skip_verify, a whole-request timeout, cancellation from any thread; GET, PATCH, and a
// streamed GET whose body is handed over line by line (a watch). A Kubernetes meta/v1 Status body
// (kind: Status, reason, message, code) of a failed answer becomes an error that names it.
//
// Why this folder: the pod sources and the CronJob lookup (collectors/) and the placement feed's
// Node client (exporters/) all need it, collectors/ and exporters/ may not include each other, and
// pipeline/ is the core that knows nothing of Kubernetes. kubeapi/ depends on pipeline/ only
// (curl_support, retry_backoff); collectors/ and exporters/ depend on it. It also holds what both
// sides decode alike: the RFC 3339 time (rfc3339.h).
//
// What a reader gets wrong:
//  - An answer with any HTTP status is a Response, not an error: a 404 is an answer to the CronJob
//    lookup, a 409 to a Node patch. statusError() turns a non-2xx Response into an ApiError that
//    names the server's Status. Only a request that got no complete answer is an ApiError of its
//    own (token, connect, tls, timeout, too_large, cancelled, transport); http_status then says
//    whether headers had come (a watch dropped after its 200).
//  - cancel() is for shutdown: it ends the request in flight at once (curl_multi_wakeup, not at
//    the next timeout) and every later request fails with kCancelled without being sent.
//  - Not thread-safe apart from cancel(): one thread makes requests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace nodewarden::kubeapi {

struct ClientOptions {
  std::string url;         // https://host:port (or http://), no path; a trailing '/' is dropped
  std::string token_file;  // read before every request; empty: no Authorization header
  std::string ca_file;     // PEM bundle to verify the server with; empty: the system's
  bool insecure_skip_verify = false;  // no verification at all (a self-signed kubelet)
  bool bypass_proxy = false;          // ignore the environment's proxy (the node's own kubelet)
  std::chrono::milliseconds timeout{10'000};  // a whole request, unless the call gives its own
  std::chrono::milliseconds connect_timeout{10'000};
  std::size_t max_body_bytes = std::size_t{16} << 20U;  // of a buffered answer: kTooLarge beyond
};

enum class ErrorKind : std::uint8_t {
  kToken,       // the token file cannot be read, is empty, or holds a line break: nothing sent
  kConnect,     // no TCP connection (refused, unreachable, DNS)
  kTls,         // the handshake failed: certificate not trusted, wrong name, bad CA file
  kTimeout,     // no complete answer within the timeout
  kTooLarge,    // the answer passed max_body_bytes
  kCancelled,   // cancel() came before or during the request
  kTransport,   // any other libcurl failure
  kHttpStatus,  // statusError(): the server answered, but not 2xx
};
// token, connect, tls, timeout, too_large, cancelled, transport, http_status
[[nodiscard]] std::string_view errorReason(ErrorKind kind);

// A meta/v1 Status object, as the API server writes one for a failure (and in a watch's ERROR).
struct Status {
  std::string reason;   // NotFound, Forbidden, Expired, Conflict, ... (may be empty)
  std::string message;  // the human text
  int code = 0;         // the HTTP status it stands for
};
// A Status from a body: kind "Status", or (kind absent) a reason or message; nullopt otherwise.
[[nodiscard]] std::optional<Status> parseStatus(std::string_view body);

struct ApiError {
  ErrorKind kind = ErrorKind::kTransport;
  long http_status = 0;          // the answer's status when headers came, else 0
  std::optional<Status> status;  // kHttpStatus: the body's Status, when it was one
  std::string detail;            // what happened: "HTTP 403: Forbidden: ...", "timed out ..."
  std::string message;           // "<METHOD> <url>: " + detail
};

struct Response {
  long http_status = 0;
  std::string body;              // buffered requests; a streamed one's only when not 200 (bounded)
  bool ended_by_reader = false;  // stream(): the line handler asked to stop
};

// "<METHOD> <url>: HTTP <code>: <reason>: <message>" from a Status body, or the body's start.
[[nodiscard]] ApiError statusError(std::string_view method, std::string_view url,
                                   const Response& response);

class ApiClient {
 public:
  // Checks the URL and sets libcurl up; sends nothing. An error reads after "the API server ".
  static std::expected<std::unique_ptr<ApiClient>, std::string> create(ClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  using Timeout = std::optional<std::chrono::milliseconds>;  // nullopt: options' timeout

  // GET url() + path, the answer buffered.
  std::expected<Response, ApiError> get(std::string_view path, Timeout timeout = std::nullopt);
  // PATCH url() + path with the body.
  std::expected<Response, ApiError> patch(std::string_view path, std::string_view content_type,
                                          std::string_view body, Timeout timeout = std::nullopt);

  // A streamed GET (a watch): a 200 answer's newline-delimited body goes to on_line one line at
  // a time (without its newline; a last line without one too, when the answer ends cleanly), and
  // on_line returning false ends the request (ended_by_reader). A line longer than
  // max_line_bytes is dropped up to its newline and on_oversize is called. A non-200 answer's
  // body is kept in Response::body (bounded) instead.
  using LineHandler = std::function<bool(std::string_view line)>;
  std::expected<Response, ApiError> stream(std::string_view path, std::chrono::milliseconds timeout,
                                           std::size_t max_line_bytes, const LineHandler& on_line,
                                           const std::function<void()>& on_oversize);

  void cancel();  // any thread
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }

  // Percent-encodes a path segment or query value.
  [[nodiscard]] std::string escape(std::string_view text) const;
  [[nodiscard]] const std::string& url() const { return options_.url; }
  [[nodiscard]] const ClientOptions& options() const { return options_; }

 private:
  struct Curl;
  explicit ApiClient(ClientOptions options);
  std::expected<Response, ApiError> perform(std::string_view method, std::string_view path,
                                            std::string_view content_type,
                                            const std::string_view* body, Timeout timeout);

  ClientOptions options_;
  std::unique_ptr<Curl> curl_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace nodewarden::kubeapi
