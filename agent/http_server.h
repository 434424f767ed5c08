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
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  // listen is "host:port" or "[v6]:port". Fails with a message when the address is taken or bad.
  static std::expected<std::unique_ptr<HttpServer>, std::string> start(const std::string& listen);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before requests arrive; the path must match exactly.
  void handle(const std::string& path, Handler handler);
  [[nodiscard]] int port() const { return port_; }
  void stop();

 private:
  HttpServer() = default;
  static int dispatch(mg_connection* conn, void* cbdata);
  void wakeListener() const;

  struct Route {
    HttpServer* server;
    std::string path;
    Handler handler;
  };
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::string wake_host_;
  std::vector<std::unique_ptr<Route>> routes_;
};

// gzip (RFC 1952) of data, with zlib.
std::string gzipCompress(std::string_view data);

}  // namespace nodewarden
