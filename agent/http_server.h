// HttpServer: the agent's one HTTP listener (/metrics, /healthz, /readyz, /jobs, /signals), on
// standalone asio, optionally behind TLS (asio::ssl over OpenSSL) with certificate files that are
// reloaded when they change.
//
// One io thread accepts connections and reads request heads asynchronously, so an idle or
// slow-sending connection costs a socket, a timer and a head buffer (max_head_bytes), never a
// thread: hundreds of them cannot stall /healthz. A head must arrive whole within header_timeout
// (also the keep-alive idle limit), must fit in max_head_bytes, and every piece of a response
// must be taken by the client within write_timeout; past any of these the connection is closed
// and counted in nodewarden_errors_total{component="http"}. Handlers run on a small fixed pool.
//
// What a reader gets wrong: handlers must be cheap and thread-safe; they read state the
// collection thread publishes (under a lock or atomics), they never collect. A stream handler
// (/metrics) blocks its pool thread while the client reads, for at most stream_timeout; at most
// one stream handler runs at a time and at most max_stream_queue wait for it (503 beyond), so the
// other pool thread always serves the whole-response handlers. Inline handlers (/healthz,
// /readyz) run on the io thread and wait for no pool. Whole responses are written in 64 KiB
// pieces and their bytes held count against max_buffered_bytes (503 beyond). An exception
// escaping a handler or a connection is counted (reason="handler" or "internal") and closes that
// connection only.
#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/tls_context.h"

namespace nodewarden {

class ErrorReporter;

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool compressible = false;  // gzip when the client accepts it
};

struct HttpRequest {
  std::string method;
  std::string path;
  std::string accept_encoding;
  std::string query;  // the raw query string, without '?'; empty when none
  // The query's parameters, percent-decoded, in order. A query that cannot be decoded never
  // reaches a handler: the server answers 400 itself.
  std::vector<std::pair<std::string, std::string>> params;
  int minor_version = 1;  // HTTP/1.<minor>
  bool keep_alive = true;

  // A query parameter's value (the first one of that name), decoded, of any length that fits in
  // the request head; empty when absent.
  [[nodiscard]] std::string param(std::string_view name) const;
};

// Where a ResponseWriter's bytes go: the connection. Implemented by the server.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // Takes the next bytes of the response (last: nothing follows). False once the client is gone;
  // the writer then drops the rest.
  virtual bool send(std::string bytes, bool last) = 0;
};

// Streams one response: headers at begin(), the body in HTTP/1.1 chunks (gzip-compressed on the
// fly when the response is compressible and the client accepts gzip), handed to the sink in
// pieces of about 64 KiB, so no body is held whole. An HTTP/1.0 client gets the body unframed,
// ended by closing the connection.
class ResponseWriter {
 public:
  ResponseWriter(ResponseSink& sink, const HttpRequest& request);
  ~ResponseWriter();
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  void begin(int status, const std::string& content_type, bool compressible);
  void write(std::string_view data);
  void end();
  // Whether the client is gone (closed, reset, or cut off at a deadline): what is written is then
  // dropped, and a handler that renders a long body should stop early.
  [[nodiscard]] bool gone() const { return gone_; }
  // Drops the rest after a handler failed half-way (the server then closes the connection: a
  // truncated body must not look complete).
  void abandon();
  [[nodiscard]] int status() const { return status_; }
  // Whether the connection may carry another request after this response.
  [[nodiscard]] bool keepAlive() const { return keep_alive_; }

 private:
  void deflateSome(int flush_mode);
  void appendBody(std::string_view data);
  void flush(bool last);
  ResponseSink& sink_;
  bool head_;
  bool accepts_gzip_;
  bool chunked_;
  bool keep_alive_;
  bool gzip_ = false;
  bool ended_ = false;
  bool gone_ = false;
  int status_ = 0;
  std::string out_;             // not yet handed to the sink: head and/or body bytes
  std::size_t body_start_ = 0;  // where in out_ the unframed body bytes start
  struct Deflater;
  std::unique_ptr<Deflater> deflater_;
};

struct HttpServerOptions {
  // A request head must arrive whole within this; also how long a keep-alive connection may sit
  // idle between requests.
  std::chrono::milliseconds header_timeout{5000};
  // Each piece of a response (about 64 KiB) must be taken by the client within this.
  std::chrono::milliseconds write_timeout{10000};
  // A whole stream response (/metrics) must be taken within this, however steadily the client
  // reads: the one stream slot is never held longer.
  std::chrono::milliseconds stream_timeout{60000};
  // Stream requests waiting for the stream slot at most; beyond it they are answered 503 with
  // Retry-After (counted as reason="stream_queue_full").
  std::size_t max_stream_queue = 4;
  // Bytes of whole (buffered) responses held at once, summed over all connections; a response
  // that does not fit is answered 503 with Retry-After (reason="response_budget").
  std::size_t max_buffered_bytes = 64 * 1024 * 1024;
  // A longer request head is answered 431 and the connection closed.
  std::size_t max_head_bytes = 8 * 1024;
  // Open connections at most; beyond it the oldest one waiting for a request (or whose request
  // still waits for a handler to start) is closed to make room, or the new one refused when none
  // does.
  std::size_t max_connections = 1024;
  int handler_threads = 2;  // at least 2: one of them is never taken by a stream handler
  // TLS on the listener when both are set (PEM files); client_ca_file adds client-certificate
  // verification. The files' stamps (mtime, size, inode) are looked at on a new connection at most
  // once per tls_reload_interval; a changed pair is loaded for later connections, a bad one is
  // counted and logged and the previous pair kept.
  TlsFiles tls;
  std::chrono::milliseconds tls_reload_interval{5000};
  ErrorReporter* errors = nullptr;  // counts component="http" reasons; may be null
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using StreamHandler = std::function<void(const HttpRequest&, ResponseWriter&)>;

  // listen is "host:port" or "[v6]:port". Fails with a message when the address is taken or bad,
  // or when the TLS files cannot be loaded.
  static std::expected<std::unique_ptr<HttpServer>, std::string> start(
      const std::string& listen, HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register at any time; the path must match exactly. A whole-response handler's body is built
  // on the pool and then written without holding a pool thread.
  void handle(const std::string& path, Handler handler);
  void handleStream(const std::string& path, StreamHandler handler);
  // For cheap handlers that never block (health, readiness): answered on the io thread at once,
  // never queued behind the pool's slow handlers. Not subject to the response budget.
  void handleInline(const std::string& path, Handler handler);
  [[nodiscard]] int port() const;
  // Connections open right now (for tests and the self-metrics).
  [[nodiscard]] std::size_t connections() const;
  // Requests dispatched whose handler has not started yet (for tests and the self-metrics).
  [[nodiscard]] std::size_t waiting() const;
  void stop();

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodewarden
