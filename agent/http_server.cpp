#include "agent/http_server.h"

#include <civetweb.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

namespace nodewarden {
namespace {

std::once_flag g_init;

// civetweb wants "host:port" as "host:port" but IPv6 as "[::1]:port" with a '+' for dual stack;
// both pass through as written. Reject obviously bad input early with a clear message.
bool splitListen(const std::string& listen, std::string& host, int& port) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) return false;
  host = listen.substr(0, colon);
  try {
    std::size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    return used == listen.size() - colon - 1 && port >= 0 && port <= 65535;
  } catch (...) {
    return false;
  }
}

}  // namespace

std::expected<std::unique_ptr<HttpServer>, std::string> HttpServer::start(
    const std::string& listen) {
  std::string host;
  int port = 0;
  if (!splitListen(listen, host, port)) {
    return std::unexpected("listen address '" + listen + "' is not host:port");
  }
  std::call_once(g_init, [] { mg_init_library(0); });
  std::unique_ptr<HttpServer> server(new HttpServer());
  const std::string ports = listen;
  const char* options[] = {
      "listening_ports", ports.c_str(),       "num_threads", "4",    "request_timeout_ms",
      "10000",           "enable_keep_alive", "yes",         nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };  // we log ourselves
  server->ctx_ = mg_start(&callbacks, nullptr, options);
  if (server->ctx_ == nullptr) {
    return std::unexpected("cannot listen on " + listen + " (address in use or not local?)");
  }
  mg_server_port ports_info[4]{};
  const int n = mg_get_server_ports(server->ctx_, 4, ports_info);
  server->port_ = n > 0 ? ports_info[0].port : port;
  // Where to connect to wake the listener on stop: a wildcard address is reached on loopback.
  if (host.empty() || host == "0.0.0.0") {
    server->wake_host_ = "127.0.0.1";
  } else if (host == "[::]") {
    server->wake_host_ = "::1";
  } else if (host.front() == '[' && host.back() == ']') {
    server->wake_host_ = host.substr(1, host.size() - 2);
  } else {
    server->wake_host_ = host;
  }
  return server;
}

HttpServer::~HttpServer() { stop(); }

// civetweb's listener polls with a 2 s quantum before it looks at its stop flag again; a
// connection of our own wakes it at once, so shutdown takes milliseconds, not seconds.
void HttpServer::wakeListener() const {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(port_);
  if (::getaddrinfo(wake_host_.c_str(), port.c_str(), &hints, &res) != 0) return;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const bool ok = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
    if (ok) break;
  }
  ::freeaddrinfo(res);
}

void HttpServer::stop() {
  if (ctx_ == nullptr) return;
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    mg_stop(ctx_);
    done = true;
  });
  while (!done) {
    wakeListener();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopper.join();
  ctx_ = nullptr;
}

void HttpServer::handle(const std::string& path, Handler handler) {
  handleStream(path, [h = std::move(handler)](const HttpRequest& req, ResponseWriter& w) {
    const HttpResponse r = h(req);
    w.begin(r.status, r.content_type, r.compressible);
    w.write(r.body);
    w.end();
  });
}

void HttpServer::handleStream(const std::string& path, StreamHandler handler) {
  auto route = std::make_unique<Route>(Route{path, std::move(handler)});
  mg_set_request_handler(ctx_, route->path.c_str(), &HttpServer::dispatch, route.get());
  routes_.push_back(std::move(route));
}

struct ResponseWriter::Deflater {
  z_stream zs{};
  std::array<char, 32 * 1024> out{};
};

ResponseWriter::ResponseWriter(mg_connection* conn, const HttpRequest& request)
    : conn_(conn),
      head_(request.method == "HEAD"),
      accepts_gzip_(request.accept_encoding.find("gzip") != std::string::npos) {}

ResponseWriter::~ResponseWriter() {
  if (status_ != 0 && !ended_) end();
  if (deflater_) deflateEnd(&deflater_->zs);
}

void ResponseWriter::begin(int status, const std::string& content_type, bool compressible) {
  status_ = status;
  if (compressible && accepts_gzip_) {
    deflater_ = std::make_unique<Deflater>();
    gzip_ = deflateInit2(&deflater_->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) == Z_OK;
  }
  mg_response_header_start(conn_, status);
  mg_response_header_add(conn_, "Content-Type", content_type.c_str(), -1);
  mg_response_header_add(conn_, "Cache-Control", "no-store", -1);
  if (gzip_) {
    mg_response_header_add(conn_, "Content-Encoding", "gzip", -1);
    mg_response_header_add(conn_, "Vary", "Accept-Encoding", -1);
  }
  mg_response_header_add(conn_, "Transfer-Encoding", "chunked", -1);
  mg_response_header_send(conn_);
}

void ResponseWriter::send(std::string_view data) {
  if (!head_ && !data.empty()) {
    mg_send_chunk(conn_, data.data(), static_cast<unsigned int>(data.size()));
  }
}

void ResponseWriter::deflateSome(int flush_mode) {
  z_stream& zs = deflater_->zs;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(deflater_->out.data());
    zs.avail_out = static_cast<uInt>(deflater_->out.size());
    const int rc = deflate(&zs, flush_mode);
    const std::size_t produced = deflater_->out.size() - zs.avail_out;
    if (produced > 0) send(std::string_view(deflater_->out.data(), produced));
    if (rc == Z_STREAM_END || rc == Z_STREAM_ERROR) break;
  } while (zs.avail_out == 0 || (flush_mode == Z_FINISH));
}

void ResponseWriter::write(std::string_view data) {
  if (data.empty() || ended_) return;
  if (gzip_) {
    deflater_->zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    deflater_->zs.avail_in = static_cast<uInt>(data.size());
    deflateSome(Z_NO_FLUSH);
  } else {
    send(data);
  }
}

void ResponseWriter::end() {
  if (ended_) return;
  ended_ = true;
  if (gzip_) {
    deflater_->zs.next_in = nullptr;
    deflater_->zs.avail_in = 0;
    deflateSome(Z_FINISH);
  }
  if (!head_) mg_send_chunk(conn_, "", 0);  // the last chunk
}

std::string HttpRequest::param(const char* name) const {
  if (query.empty()) return {};
  char buf[1024];
  const int n = mg_get_var(query.data(), query.size(), name, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

int HttpServer::dispatch(mg_connection* conn, void* cbdata) {
  const auto* route = static_cast<const Route*>(cbdata);
  const mg_request_info* info = mg_get_request_info(conn);
  // Handlers are registered for exact paths; civetweb matches prefixes, so /metricsX is a 404.
  if (info->local_uri != nullptr && route->path != info->local_uri) {
    mg_send_http_error(conn, 404, "%s", "not found\n");
    return 404;
  }
  HttpRequest req;
  req.method = info->request_method != nullptr ? info->request_method : "";
  if (const char* ae = mg_get_header(conn, "Accept-Encoding")) req.accept_encoding = ae;
  if (info->query_string != nullptr) req.query = info->query_string;
  ResponseWriter writer(conn, req);
  if (req.method != "GET" && req.method != "HEAD") {
    writer.begin(405, "text/plain", false);
    writer.write("only GET and HEAD\n");
  } else {
    route->handler(req, writer);
  }
  writer.end();
  return writer.status();
}

}  // namespace nodewarden
