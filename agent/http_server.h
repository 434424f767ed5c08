// HttpServer: the agent's one HTTP listener (/metrics, /healthz, /readyz), on civetweb, the
// embedded server prometheus-cpp itself uses. Handlers run on civetweb's small worker pool.
//
// What a reader gets wrong: handlers must be cheap and thread-safe; they read state the
// collection thread publishes (under a lock or atomics), they never collect.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <vector>

struct mg_context;
struct mg_connection;

namespace nodewarden {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool compressible = false;  // gzip when the client accepts it
};

struct HttpRequest {
  std::string method;
  std::string accept_encoding;
  std::string query;  // the raw query string, without '?'; empty when none

  // A query parameter's value, URL-decoded; empty when absent (or longer than 1 KiB).
  [[nodiscard]] std::string param(const char* name) const;
};

// Streams one response: headers at begin(), the body in HTTP/1.1 chunks (gzip-compressed on the
// fly when the response is compressible and the client accepts gzip), so no body is held whole.
class ResponseWriter {
 public:
  ResponseWriter(mg_connection* conn, const HttpRequest& request);
  ~ResponseWriter();
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  void begin(int status, const std::string& content_type, bool compressible);
  void write(std::string_view data);
  void end();
  [[nodiscard]] int status() const { return status_; }

 private:
  void deflateSome(int flush_mode);
  void send(std::string_view data);
  mg_connection* conn_;
  bool head_;
  bool accepts_gzip_;
  bool gzip_ = false;
  bool ended_ = false;
  int status_ = 0;
  struct Deflater;
  std::unique_ptr<Deflater> deflater_;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  using StreamHandler = std::function<void(const HttpRequest&, ResponseWriter&)>;

  // listen is "host:port" or "[v6]:port". Fails with a message when the address is taken or bad.
  static std::expected<std::unique_ptr<HttpServer>, std::string> start(const std::string& listen);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before requests arrive; the path must match exactly.
  void handle(const std::string& path, Handler handler);
  void handleStream(const std::string& path, StreamHandler handler);
  [[nodiscard]] int port() const { return port_; }
  void stop();

 private:
  HttpServer() = default;
  static int dispatch(mg_connection* conn, void* cbdata);
  void wakeListener() const;

  struct Route {
    std::string path;
    StreamHandler handler;
  };
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::string wake_host_;
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace nodewarden
