#include "agent/http_server.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <cstring>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/http_request_head.h"
#include "agent/tls_context.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {
namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A response goes to the connection in pieces of about this size: big enough that the per-piece
// hand-off to the io thread is cheap, small enough that no large body is held whole.
constexpr std::size_t kPieceBytes = 64 * 1024;
// After a response that ends the connection, what the client still sends is read and dropped for
// at most this long before closing, so an unread request does not turn the close into a reset
// that destroys the response in flight (RFC 9112 section 9.6).
constexpr auto kLingerTime = std::chrono::milliseconds(1000);
// After a failed accept (EMFILE, ENFILE) the listener pauses this long instead of spinning.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

// "host:port" or "[v6]:port" into its parts; the brackets are dropped.
std::optional<std::pair<std::string, std::string>> splitListen(const std::string& listen) {
  std::string host;
  std::string port;
  if (listen.starts_with('[')) {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return std::nullopt;
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      !std::ranges::all_of(port, [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(port) > 65535) {
    return std::nullopt;
  }
  if (host.empty()) host = "0.0.0.0";
  return std::pair{host, port};
}

}  // namespace

// --- Request and response ---------------------------------------------------------------------

std::string HttpRequest::param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return {};
}

struct ResponseWriter::Deflater {
  z_stream zs{};
  std::array<char, 32 * 1024> out{};
};

ResponseWriter::ResponseWriter(ResponseSink& sink, const HttpRequest& request)
    : sink_(sink),
      head_(request.method == "HEAD"),
      accepts_gzip_(request.accept_encoding.find("gzip") != std::string::npos),
      chunked_(request.minor_version >= 1),
      // An HTTP/1.0 body is ended by closing: there is no length to frame it with.
      keep_alive_(request.keep_alive && request.minor_version >= 1) {}

ResponseWriter::~ResponseWriter() {
  if (deflater_) deflateEnd(&deflater_->zs);
}

void ResponseWriter::begin(int status, const std::string& content_type, bool compressible) {
  if (status_ != 0) return;
  status_ = status;
  if (compressible && accepts_gzip_) {
    deflater_ = std::make_unique<Deflater>();
    gzip_ = deflateInit2(&deflater_->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) == Z_OK;
  }
  out_ = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) + "\r\n";
  out_ += "Content-Type: " + content_type + "\r\nCache-Control: no-store\r\n";
  if (gzip_) out_ += "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n";
  if (status == 405) out_ += "Allow: GET, HEAD\r\n";
  if (status == 503) out_ += "Retry-After: 1\r\n";
  if (chunked_) out_ += "Transfer-Encoding: chunked\r\n";
  if (!keep_alive_) out_ += "Connection: close\r\n";
  out_ += "\r\n";
  body_start_ = out_.size();
}

void ResponseWriter::appendBody(std::string_view data) {
  if (head_ || gone_ || data.empty()) return;
  out_.append(data);
  if (out_.size() >= kPieceBytes) flush(false);
}

// Frames what is pending after body_start_ as one chunk and hands everything to the sink.
void ResponseWriter::flush(bool last) {
  if (gone_) return;
  const std::size_t body = out_.size() - body_start_;
  if (chunked_ && body > 0) {
    char size[24];
    const int n = std::snprintf(size, sizeof size, "%zx\r\n", body);
    out_.insert(body_start_, size, static_cast<std::size_t>(n));
    out_ += "\r\n";
  }
  if (last && chunked_ && !head_) out_ += "0\r\n\r\n";  // the last chunk, no trailers
  std::string piece;
  piece.swap(out_);
  body_start_ = 0;
  if (!sink_.send(std::move(piece), last)) gone_ = true;
}

void ResponseWriter::deflateSome(int flush_mode) {
  z_stream& zs = deflater_->zs;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(deflater_->out.data());
    zs.avail_out = static_cast<uInt>(deflater_->out.size());
    const int rc = deflate(&zs, flush_mode);
    const std::size_t produced = deflater_->out.size() - zs.avail_out;
    if (produced > 0) appendBody(std::string_view(deflater_->out.data(), produced));
    if (rc == Z_STREAM_END || rc == Z_STREAM_ERROR) break;
  } while (zs.avail_out == 0 || (flush_mode == Z_FINISH));
}

void ResponseWriter::write(std::string_view data) {
  if (data.empty() || ended_ || status_ == 0 || head_) return;
  if (gzip_) {
    deflater_->zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    deflater_->zs.avail_in = static_cast<uInt>(data.size());
    deflateSome(Z_NO_FLUSH);
  } else {
    appendBody(data);
  }
}

void ResponseWriter::end() {
  if (ended_) return;
  if (status_ == 0) {
    begin(500, "text/plain; charset=utf-8", false);
    write("the handler sent no response\n");
  }
  ended_ = true;
  if (gzip_ && !head_) {
    deflater_->zs.next_in = nullptr;
    deflater_->zs.avail_in = 0;
    deflateSome(Z_FINISH);
  }
  flush(true);
}

void ResponseWriter::abandon() {
  ended_ = true;
  gone_ = true;
}

// --- The server -----------------------------------------------------------------------------

class Connection;

class HttpServer::Impl {
 public:
  struct Route {
    HttpServer::Handler whole;         // one of the two is set
    HttpServer::StreamHandler stream;  // at most one of these runs at a time
    bool on_io = false;                // whole, cheap and non-blocking: run on the io thread
  };

  explicit Impl(HttpServerOptions options)
      : options_(std::move(options)),
        pool_(static_cast<std::size_t>(std::max(2, options_.handler_threads))),
        stream_strand_(asio::make_strand(pool_.get_executor())) {}

  std::expected<void, std::string> listen(const std::string& listen);
  void run() {
    io_thread_ = std::thread([this] {
      // What escapes a handler on the io thread is caught where it happens (the connection is
      // closed); this is the last line, so the listener outlives anything else.
      while (true) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          report("internal", e.what());
        } catch (...) {
          report("internal", "unknown exception on the io thread");
        }
      }
    });
  }
  void stop();

  void addRoute(const std::string& path, Route route) {
    std::lock_guard lock(routes_mu_);
    routes_[path] = std::make_shared<const Route>(std::move(route));
  }
  std::shared_ptr<const Route> route(std::string_view path) const {
    std::lock_guard lock(routes_mu_);
    const auto it = routes_.find(path);
    return it == routes_.end() ? nullptr : it->second;
  }

  void report(std::string_view reason, std::string_view detail) {
    if (options_.errors != nullptr) options_.errors->report("http", reason, detail);
  }

  void accept();
  void onAccepted(tcp::socket socket);

  const HttpServerOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  tcp::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  asio::thread_pool pool_;
  asio::strand<asio::thread_pool::executor_type> stream_strand_;
  std::thread io_thread_;
  std::unique_ptr<ReloadingTlsContext> tls_;
  int port_ = 0;
  bool stopping_ = false;  // io thread only
  bool stopped_ = false;   // the stopping thread only

  // Open connections, oldest first; io thread only. A connection removes itself when it closes.
  std::list<Connection*> connections_;
  std::atomic<std::size_t> connection_count_{0};
  std::atomic<std::size_t> waiting_{0};         // requests whose handler has not started
  std::atomic<std::size_t> stream_waiting_{0};  // of those, the ones waiting for the stream slot
  std::atomic<std::size_t> buffered_bytes_{0};  // whole-response bytes held, all connections

  // Takes n bytes of the whole-response budget; false when they do not fit.
  bool reserve(std::size_t n) {
    std::size_t held = buffered_bytes_.load(std::memory_order_relaxed);
    do {
      if (n > options_.max_buffered_bytes || held > options_.max_buffered_bytes - n) return false;
    } while (!buffered_bytes_.compare_exchange_weak(held, held + n, std::memory_order_relaxed));
    return true;
  }
  void release(std::size_t n) {
    if (n > 0) buffered_bytes_.fetch_sub(n, std::memory_order_relaxed);
  }

  mutable std::mutex routes_mu_;  // guards routes_
  std::map<std::string, std::shared_ptr<const Route>, std::less<>> routes_;
};

// One client connection. Everything but the sinks' hand-offs runs on the io thread; a handler on
// the pool reaches the socket only by posting to it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State { kHandshake, kReadingHead, kHandling, kClosing, kClosed };

  Connection(HttpServer::Impl& server, tcp::socket socket, std::shared_ptr<asio::ssl::context> tls)
      : server_(server),
        plain_(std::move(socket)),
        timer_(server.io_),
        tls_context_(std::move(tls)),
        buffer_(server.options_.max_head_bytes) {
    if (tls_context_) tls_.emplace(std::move(plain_), *tls_context_);
    server_.connections_.push_back(this);
    self_in_list_ = std::prev(server_.connections_.end());
    server_.connection_count_.store(server_.connections_.size(), std::memory_order_relaxed);
    asio::error_code ec;
    lowest().set_option(tcp::no_delay(true), ec);
  }

  [[nodiscard]] State state() const { return state_; }

  // Takes the request dispatched to the pool back from the queue: true for whoever (the pool
  // task starting it, or the io thread evicting the connection) claims it first.
  bool claim() {
    if (!pending_.exchange(false)) return false;
    server_.waiting_.fetch_sub(1);
    if (pending_stream_) server_.stream_waiting_.fetch_sub(1);
    return true;
  }

  void start() {
    if (!tls_) {
      readHead();
      return;
    }
    state_ = State::kHandshake;
    armDeadline(server_.options_.header_timeout, Phase::kHandshake);
    tls_->async_handshake(asio::ssl::stream_base::server,
                          [self = shared_from_this()](const asio::error_code& ec) {
                            if (self->state_ == State::kClosed) return;
                            if (ec) {
                              self->server_.report("tls_handshake", ec.message());
                              self->close();
                              return;
                            }
                            self->readHead();
                          });
  }

  // Writes one piece of a response on the io thread; done(ok) runs there once it is written, or
  // failed, or the client did not take it within write_timeout (the connection is then closed).
  // reserved: bytes of the whole-response budget this piece holds, released once written or
  // when the connection closes. stream_deadline: when set, the whole response must be taken by
  // then.
  void write(std::string bytes, bool last, std::function<void(bool)> done, std::size_t reserved = 0,
             std::optional<Clock::time_point> stream_deadline = std::nullopt) {
    asio::post(server_.io_, [self = shared_from_this(), bytes = std::move(bytes), last,
                             done = std::move(done), reserved, stream_deadline]() mutable {
      self->writeOnIo(std::move(bytes), last, std::move(done), reserved, stream_deadline);
    });
  }

  // A handler failed half-way: what was sent cannot be completed into a valid response.
  void abort() {
    asio::post(server_.io_, [self = shared_from_this()] { self->close(); });
  }

  void close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    ++deadline_generation_;
    timer_.cancel();
    asio::error_code ec;
    lowest().close(ec);
    server_.release(budget_held_);
    budget_held_ = 0;
    server_.connections_.erase(self_in_list_);
    server_.connection_count_.store(server_.connections_.size(), std::memory_order_relaxed);
  }

 private:
  enum class Phase { kHandshake, kHead, kWrite, kStream, kLinger };

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : plain_; }

  void armDeadline(std::chrono::milliseconds after, Phase phase) {
    const std::uint64_t generation = ++deadline_generation_;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), generation, phase](const asio::error_code& ec) {
      if (ec || generation != self->deadline_generation_ || self->state_ == State::kClosed) return;
      self->onDeadline(phase);
    });
  }

  void cancelDeadline() {
    ++deadline_generation_;
    timer_.cancel();
  }

  void onDeadline(Phase phase) {
    switch (phase) {
      case Phase::kHandshake:
        server_.report("header_timeout", "no TLS handshake within the header timeout");
        break;
      case Phase::kHead:
        // A keep-alive connection that went quiet after its last response is merely idle.
        if (served_ == 0 || have_ > 0) {
          server_.report("header_timeout", "no complete request head within the header timeout");
        }
        break;
      case Phase::kWrite:
        server_.report("write_timeout", "the client did not read the response in time");
        break;
      case Phase::kStream:
        server_.report("stream_timeout", "the client did not take the stream within its deadline");
        break;
      case Phase::kLinger:
        break;
    }
    close();
  }

  // Waits for the next request head, with the head deadline armed once: bytes trickling in do
  // not extend it.
  void readHead() {
    state_ = State::kReadingHead;
    if (server_.stopping_) {
      close();
      return;
    }
    if (parseBuffered()) return;
    armDeadline(server_.options_.header_timeout, Phase::kHead);
    readMore();
  }

  void readMore() {
    auto on_read = [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
      if (self->state_ != State::kReadingHead) return;
      if (ec) {
        // The client went away (EOF, reset) or the socket was closed: nothing to answer.
        self->close();
        return;
      }
      self->have_ += n;
      if (self->parseBuffered()) return;
      if (self->have_ == self->buffer_.size()) {
        self->server_.report("head_too_large", "request head longer than max_head_bytes");
        self->respondAndClose(431, "request head too large\n");
        return;
      }
      self->readMore();
    };
    auto buf = asio::buffer(buffer_.data() + have_, buffer_.size() - have_);
    if (tls_) {
      tls_->async_read_some(buf, std::move(on_read));
    } else {
      plain_.async_read_some(buf, std::move(on_read));
    }
  }

  // Dispatches the head in the buffer if it is complete; false when more bytes are needed.
  bool parseBuffered() {
    const std::string_view data(buffer_.data(), have_);
    // Only the new bytes (and the 3 before them) can complete the blank line: a head trickled in
    // byte by byte is scanned once, not once per byte.
    const std::size_t from = scanned_ > 3 ? scanned_ - 3 : 0;
    const std::size_t found = http::findHeadEnd(data.substr(from));
    scanned_ = have_;
    if (found == std::string_view::npos) return false;
    const std::size_t end = from + found;
    scanned_ = 0;
    cancelDeadline();
    auto head = http::parseRequestHead(data.substr(0, end));
    if (!head) {
      server_.report("bad_request", head.error());
      respondAndClose(400, "bad request: " + head.error() + "\n");
      return true;
    }
    HttpRequest request;
    request.method = head->method;
    request.path = head->path;
    request.query = head->query;
    request.accept_encoding = head->accept_encoding;
    request.minor_version = head->minor_version;
    // A body is not read (no route takes one): the connection ends after the response.
    request.keep_alive = head->keep_alive && !head->has_body;
    // Pipelined bytes after this head stay for the next request.
    std::memmove(buffer_.data(), buffer_.data() + end, have_ - end);
    have_ -= end;
    if (head->has_body) have_ = 0;
    scanned_ = 0;
    dispatch(std::move(request));
    return true;
  }

  void dispatch(HttpRequest request) {
    state_ = State::kHandling;
    keep_alive_after_ = request.keep_alive && request.minor_version >= 1;
    auto route = server_.route(request.path);
    if (!route) {
      respond(request, 404, "not found\n");
      return;
    }
    if (request.method != "GET" && request.method != "HEAD") {
      respond(request, 405, "only GET and HEAD\n");
      return;
    }
    auto params = http::parseQuery(request.query);
    if (!params) {
      server_.report("bad_request", params.error());
      respond(request, 400, "bad query: " + params.error() + "\n");
      return;
    }
    request.params = std::move(*params);
    if (route->on_io) {
      try {
        runWhole(*route, request);
      } catch (...) {
        server_.report("handler", "exception while answering");
        close();
      }
      return;
    }
    auto self = shared_from_this();
    pending_stream_ = !route->whole;
    if (pending_stream_) {
      if (server_.stream_waiting_.load() >= server_.options_.max_stream_queue) {
        server_.report("stream_queue_full", "too many requests waiting for the stream slot");
        respond(request, 503, "busy: too many requests waiting for this path, retry later\n");
        return;
      }
      server_.stream_waiting_.fetch_add(1);
    }
    server_.waiting_.fetch_add(1);
    pending_.store(true);
    auto task = [self, route, request = std::move(request)] {
      if (!self->claim()) return;  // evicted while it waited
      try {
        if (route->whole) {
          self->runWhole(*route, request);
        } else {
          self->runStream(*route, request);
        }
      } catch (...) {
        self->server_.report("handler", "exception while answering");
        self->abort();
      }
    };
    if (route->whole) {
      asio::post(server_.pool_, std::move(task));
    } else {
      asio::post(server_.stream_strand_, std::move(task));
    }
  }

  // Collects a whole response and writes it without waiting: the pool thread is free at once.
  class BufferedSink : public ResponseSink {
   public:
    explicit BufferedSink(std::shared_ptr<Connection> conn, std::size_t reserved = 0)
        : conn_(std::move(conn)), reserved_(reserved) {}
    ~BufferedSink() override { conn_->server_.release(reserved_); }  // when never handed over
    bool send(std::string bytes, bool last) override {
      bytes_ += bytes;
      if (last) {
        conn_->write(std::move(bytes_), true, nullptr, reserved_);
        reserved_ = 0;
      }
      return true;
    }

   private:
    std::shared_ptr<Connection> conn_;
    std::string bytes_;
    std::size_t reserved_;
  };

  // Hands each piece to the io thread and waits until the client took it (or the write
  // deadline passed): the handler renders no faster than the client reads.
  class StreamSink : public ResponseSink {
   public:
    explicit StreamSink(std::shared_ptr<Connection> conn)
        : conn_(std::move(conn)),
          deadline_(Clock::now() + conn_->server_.options_.stream_timeout) {}
    bool send(std::string bytes, bool last) override {
      auto written = std::make_shared<std::promise<bool>>();
      auto result = written->get_future();
      conn_->write(
          std::move(bytes), last, [written](bool ok) { written->set_value(ok); }, 0, deadline_);
      return result.get();
    }

   private:
    std::shared_ptr<Connection> conn_;
    Clock::time_point deadline_;
  };

  // An answer of the server's own (404, 405, 400), written from the io thread.
  void respond(const HttpRequest& request, int status, const std::string& body) {
    BufferedSink sink(shared_from_this());
    ResponseWriter w(sink, request);
    w.begin(status, "text/plain; charset=utf-8", false);
    w.write(body);
    w.end();
  }

  void respondAndClose(int status, const std::string& body) {
    state_ = State::kHandling;
    keep_alive_after_ = false;
    HttpRequest request;
    request.keep_alive = false;
    request.method = "GET";
    have_ = 0;
    respond(request, status, body);
  }

  void runWhole(const HttpServer::Impl::Route& route, const HttpRequest& request) {
    HttpResponse r;
    try {
      r = route.whole(request);
    } catch (const std::exception& e) {
      server_.report("handler", e.what());
      r = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n", false};
    } catch (...) {
      server_.report("handler", "unknown exception");
      r = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n", false};
    }
    std::size_t reserved = 0;
    if (!route.on_io) {
      // The body and its framing are held until the client took them: bounded over all
      // connections, so a thousand clients that never read cannot hold a thousand bodies.
      reserved = r.body.size() + 1024;
      if (!server_.reserve(reserved)) {
        server_.report("response_budget", "buffered responses over max_buffered_bytes");
        r = HttpResponse{503, "text/plain; charset=utf-8", "busy: too many responses in flight\n",
                         false};
        reserved = 0;
      }
    }
    BufferedSink sink(shared_from_this(), reserved);
    ResponseWriter w(sink, request);
    w.begin(r.status, r.content_type, r.compressible);
    w.write(r.body);
    w.end();
  }

  void runStream(const HttpServer::Impl::Route& route, const HttpRequest& request) {
    StreamSink sink(shared_from_this());
    ResponseWriter w(sink, request);
    try {
      route.stream(request, w);
    } catch (...) {
      server_.report("handler", "exception in a stream handler");
      if (w.status() != 0) {
        w.abandon();
        abort();
        return;
      }
      w.begin(500, "text/plain; charset=utf-8", false);
      w.write("internal error\n");
    }
    w.end();
  }

  void writeOnIo(std::string bytes, bool last, std::function<void(bool)> done, std::size_t reserved,
                 std::optional<Clock::time_point> stream_deadline) {
    if (state_ == State::kClosed) {
      server_.release(reserved);
      if (done) done(false);
      return;
    }
    budget_held_ += reserved;
    out_ = std::move(bytes);
    out_at_ = 0;
    last_ = last;
    done_ = std::move(done);
    stream_deadline_ = stream_deadline;
    writePiece();
  }

  // Writes the next piece of out_ (at most kPieceBytes), each with its own write deadline, and
  // within the stream's total deadline when there is one.
  void writePiece() {
    const std::size_t n = std::min(kPieceBytes, out_.size() - out_at_);
    auto timeout = server_.options_.write_timeout;
    Phase phase = Phase::kWrite;
    if (stream_deadline_) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(*stream_deadline_ - Clock::now());
      if (left <= std::chrono::milliseconds::zero()) {
        onDeadline(Phase::kStream);
        failWrite();
        return;
      }
      if (left < timeout) {
        timeout = left;
        phase = Phase::kStream;
      }
    }
    armDeadline(timeout, phase);
    auto on_written = [self = shared_from_this(), n](const asio::error_code& ec, std::size_t) {
      if (self->state_ == State::kClosed || ec) {
        self->close();
        self->failWrite();
        return;
      }
      self->out_at_ += n;
      if (self->out_at_ < self->out_.size()) {
        self->writePiece();
        return;
      }
      self->cancelDeadline();
      self->server_.release(self->budget_held_);
      self->budget_held_ = 0;
      auto done = std::move(self->done_);
      self->done_ = nullptr;
      if (self->last_) self->finishResponse();
      if (done) done(true);
    };
    auto buf = asio::buffer(out_.data() + out_at_, n);
    if (tls_) {
      asio::async_write(*tls_, buf, std::move(on_written));
    } else {
      asio::async_write(plain_, buf, std::move(on_written));
    }
  }

  void failWrite() {
    auto done = std::move(done_);
    done_ = nullptr;
    if (done) done(false);
  }

  void finishResponse() {
    ++served_;
    std::string().swap(out_);
    if (keep_alive_after_ && !server_.stopping_) {
      readHead();
    } else {
      lingerClose();
    }
  }

  void lingerClose() {
    state_ = State::kClosing;
    asio::error_code ec;
    lowest().shutdown(tcp::socket::shutdown_send, ec);
    armDeadline(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTime),
                         server_.options_.header_timeout),
                Phase::kLinger);
    drain();
  }

  void drain() {
    lowest().async_read_some(asio::buffer(buffer_),
                             [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
                               if (self->state_ != State::kClosing) return;
                               if (ec) {
                                 self->close();
                                 return;
                               }
                               self->drain();
                             });
  }

  HttpServer::Impl& server_;
  tcp::socket plain_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  asio::steady_timer timer_;
  std::shared_ptr<asio::ssl::context> tls_context_;  // kept for the stream's lifetime
  std::vector<char> buffer_;                         // the request head; max_head_bytes
  std::size_t have_ = 0;                             // bytes of buffer_ filled
  std::size_t scanned_ = 0;         // bytes of buffer_ already searched for the end of the head
  std::string out_;                 // what is being written, in pieces of kPieceBytes
  std::size_t out_at_ = 0;          // bytes of out_ already written
  bool last_ = false;               // out_ ends the response
  std::function<void(bool)> done_;  // told when out_ is written or failed
  std::optional<Clock::time_point> stream_deadline_;
  std::size_t budget_held_ = 0;       // whole-response budget bytes held; io thread only
  std::atomic<bool> pending_{false};  // dispatched to the pool and not yet started
  bool pending_stream_ = false;       // what waits is a stream request
  std::uint64_t deadline_generation_ = 0;
  std::uint64_t served_ = 0;
  bool keep_alive_after_ = false;  // whether another request may follow the current response
  State state_ = State::kReadingHead;
  std::list<Connection*>::iterator self_in_list_;
};

}  // namespace nodewarden

namespace nodewarden {

std::expected<void, std::string> HttpServer::Impl::listen(const std::string& listen) {
  const auto parts = splitListen(listen);
  if (!parts) return std::unexpected("listen address '" + listen + "' is not host:port");
  asio::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(parts->first, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<unsigned short>(std::stoi(parts->second)));
  } else {
    tcp::resolver resolver(io_);
    const auto results = resolver.resolve(
        parts->first, parts->second, tcp::resolver::numeric_service | tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return std::unexpected("cannot listen on " + listen + ": cannot resolve '" + parts->first +
                             "': " + (ec ? ec.message() : "no address"));
    }
    endpoint = results.begin()->endpoint();
  }
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return std::unexpected("cannot listen on " + listen + ": " + ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  return {};
}

void HttpServer::Impl::accept() {
  acceptor_.async_accept([this](const asio::error_code& ec, tcp::socket socket) {
    if (stopping_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors (EMFILE) most likely: pause rather than spin on the ready listener.
      report("accept", ec.message());
      accept_retry_.expires_after(kAcceptRetry);
      accept_retry_.async_wait([this](const asio::error_code& e) {
        if (!e && !stopping_) accept();
      });
      return;
    }
    onAccepted(std::move(socket));
    accept();
  });
}

void HttpServer::Impl::onAccepted(tcp::socket socket) {
  if (connections_.size() >= options_.max_connections) {
    // Room for the newcomer: the connection that has waited longest for a request head is the
    // likeliest to be idle or hostile. One that is being answered is never cut off.
    // One already answered and lingering to close goes first.
    auto oldest = std::ranges::find_if(connections_, [](const Connection* c) {
      return c->state() == Connection::State::kClosing;
    });
    if (oldest == connections_.end()) {
      oldest = std::ranges::find_if(connections_, [](const Connection* c) {
        return c->state() == Connection::State::kReadingHead ||
               c->state() == Connection::State::kHandshake;
      });
    }
    // Then the oldest whose request still waits for a handler: nothing was started for it, and
    // queued requests must not make the server refuse every newcomer (probes included).
    if (oldest == connections_.end()) {
      oldest = std::ranges::find_if(connections_, [](Connection* c) {
        return c->state() == Connection::State::kHandling && c->claim();
      });
    }
    report("connection_limit", "max_connections reached");
    if (oldest == connections_.end()) {
      asio::error_code ec;
      socket.close(ec);
      return;
    }
    (*oldest)->close();
  }
  std::shared_ptr<asio::ssl::context> context;
  if (tls_) {
    std::string error;
    context = tls_->current(Clock::now(), error);
    if (!error.empty()) report("tls_reload", error);
  }
  try {
    std::make_shared<Connection>(*this, std::move(socket), std::move(context))->start();
  } catch (const std::exception& e) {
    // bad_alloc, or the TLS stream failing to set up: this connection only.
    report("internal", e.what());
  }
}

void HttpServer::Impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  // On the io thread: no new connections, and every open one closed, so a handler waiting for a
  // write is answered at once.
  std::promise<void> closed;
  asio::post(io_, [this, &closed] {
    stopping_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
    while (!connections_.empty()) connections_.front()->close();
    closed.set_value();
  });
  if (io_thread_.joinable()) {
    closed.get_future().wait();
    pool_.join();
    work_.reset();
    io_.stop();
    io_thread_.join();
  } else {
    pool_.join();
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

std::expected<std::unique_ptr<HttpServer>, std::string> HttpServer::start(
    const std::string& listen, HttpServerOptions options) {
  if (options.tls.cert_file.empty() != options.tls.key_file.empty()) {
    return std::unexpected("TLS needs both a certificate file and a key file");
  }
  if (options.max_head_bytes < 256) options.max_head_bytes = 256;
  if (options.max_connections < 1) options.max_connections = 1;
  if (options.max_stream_queue < 1) options.max_stream_queue = 1;
  auto impl = std::make_unique<Impl>(options);
  if (!options.tls.cert_file.empty()) {
    auto tls = ReloadingTlsContext::load(options.tls, options.tls_reload_interval);
    if (!tls) return std::unexpected("TLS: " + tls.error());
    impl->tls_ = std::move(*tls);
  }
  if (auto r = impl->listen(listen); !r) return std::unexpected(r.error());
  impl->accept();
  impl->run();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::handle(const std::string& path, Handler handler) {
  impl_->addRoute(path, Impl::Route{std::move(handler), nullptr});
}

void HttpServer::handleStream(const std::string& path, StreamHandler handler) {
  impl_->addRoute(path, Impl::Route{nullptr, std::move(handler)});
}

void HttpServer::handleInline(const std::string& path, Handler handler) {
  impl_->addRoute(path, Impl::Route{std::move(handler), nullptr, true});
}

std::size_t HttpServer::waiting() const { return impl_->waiting_.load(std::memory_order_relaxed); }

int HttpServer::port() const { return impl_->port_; }

std::size_t HttpServer::connections() const {
  return impl_->connection_count_.load(std::memory_order_relaxed);
}

void HttpServer::stop() {
  if (impl_) impl_->stop();
}

}  // namespace nodewarden
