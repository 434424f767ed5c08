// FakeKubelet: civetweb serves GET /pods behind a TlsFront. The 401 and 403 bodies are the
// kubelet's own (pkg/kubelet/server/auth.go: "Unauthorized", and the Forbidden line naming the
// user, verb, resource and subresource it checked).
#include "tests/fakes/fake_kubelet.h"

#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

#include "tests/fakes/civetweb_stop.h"
#include "tests/fakes/tls_front.h"

namespace nodewarden::testing {
namespace {

constexpr std::chrono::milliseconds kMaxHang{30'000};

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void reply(mg_connection* conn, int status, std::string_view content_type, std::string_view body) {
  const std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                           std::string(reasonPhrase(status)) +
                           "\r\nContent-Type: " + std::string(content_type) +
                           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  mg_write(conn, head.data(), head.size());
  if (!body.empty()) mg_write(conn, body.data(), body.size());
}

std::once_flag g_civetweb_init;

}  // namespace

FakeKubelet::FakeKubelet(FakeKubeletOptions options) : options_(std::move(options)) {}

std::expected<std::unique_ptr<FakeKubelet>, std::string> FakeKubelet::start(
    FakeKubeletOptions options) {
  std::call_once(g_civetweb_init, [] { mg_init_library(0); });
  if (options.token.empty()) return std::unexpected("fake kubelet: token is empty");
  if (options.certificate_file.empty()) {
    return std::unexpected("fake kubelet: certificate_file is empty (it serves HTTPS only)");
  }
  std::unique_ptr<FakeKubelet> fake(new FakeKubelet(std::move(options)));
  const char* civet_options[] = {"listening_ports",
                                 "127.0.0.1:0",
                                 "num_threads",
                                 "8",
                                 "request_timeout_ms",
                                 "30000",
                                 "enable_keep_alive",
                                 "yes",
                                 "keep_alive_timeout_ms",
                                 "5000",
                                 nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  fake->ctx_ = mg_start(&callbacks, fake.get(), civet_options);
  if (fake->ctx_ == nullptr) return std::unexpected("fake kubelet: civetweb did not start");
  std::array<mg_server_port, 2> info{};
  if (mg_get_server_ports(fake->ctx_, static_cast<int>(info.size()), info.data()) < 1) {
    return std::unexpected("fake kubelet: no listening port");
  }
  fake->civet_port_ = info[0].port;
  mg_set_request_handler(fake->ctx_, "/pods", &FakeKubelet::handlePods, fake.get());
  auto front = TlsFront::start(
      {fake->options_.certificate_file, fake->options_.key_file, fake->options_.port},
      fake->civet_port_);
  if (!front) return std::unexpected("fake kubelet: " + front.error());
  fake->tls_front_ = std::move(*front);
  fake->port_ = fake->tls_front_->port();
  return fake;
}

FakeKubelet::~FakeKubelet() {
  tls_front_.reset();  // its relays hold connections to civetweb; they end first
  if (ctx_ == nullptr) return;
  {
    const std::scoped_lock lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();  // ends hangs at once
  stopCivetweb(ctx_, civet_port_);
}

std::string FakeKubelet::url() const { return "https://127.0.0.1:" + std::to_string(port_); }

void FakeKubelet::setPodList(std::string json) {
  const std::scoped_lock lock(mutex_);
  options_.pod_list = std::move(json);
}

void FakeKubelet::setToken(std::string token) {
  const std::scoped_lock lock(mutex_);
  options_.token = std::move(token);
}

void FakeKubelet::failWith(int status, int times) {
  const std::scoped_lock lock(mutex_);
  fail_status_ = status;
  hang_ = {};
  times_ = times;
}

void FakeKubelet::hang(std::chrono::milliseconds duration, int times) {
  const std::scoped_lock lock(mutex_);
  fail_status_ = 0;
  hang_ = std::min(duration, kMaxHang);
  times_ = times;
}

void FakeKubelet::behave() {
  const std::scoped_lock lock(mutex_);
  fail_status_ = 0;
  hang_ = {};
  times_ = 0;
}

std::vector<FakeKubeletRequest> FakeKubelet::requests() const {
  const std::scoped_lock lock(mutex_);
  return requests_;
}

bool FakeKubelet::waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

bool FakeKubelet::waitForHangs(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return hangs_begun_ >= count; });
}

int FakeKubelet::handlePods(mg_connection* conn, void* self) {
  try {
    return static_cast<FakeKubelet*>(self)->handle(conn);
  } catch (const std::exception& e) {  // nothing may unwind into civetweb's C
    reply(conn, 500, "text/plain", std::string("fake kubelet: ") + e.what());
    return 500;
  }
}

int FakeKubelet::handle(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  FakeKubeletRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri != nullptr ? info->local_uri : "";
  if (const char* auth = mg_get_header(conn, "Authorization"); auth != nullptr) {
    request.authorization = auth;
  }

  std::unique_lock lock(mutex_);
  const auto finish = [&](int status, std::string_view content_type, std::string body) {
    request.status = status;
    requests_.push_back(std::move(request));  // recorded before the answer goes out
    lock.unlock();
    changed_.notify_all();
    reply(conn, status, content_type, body);
    return status;
  };
  if (request.path != "/pods") return finish(404, "text/plain", "404 page not found\n");
  if (request.method != "GET") return finish(405, "text/plain", "405: Method Not Allowed\n");
  if (!request.authorization.starts_with("Bearer "))
    return finish(401, "text/plain", "Unauthorized");
  if (request.authorization.substr(7) != options_.token) {
    return finish(403, "text/plain",
                  "Forbidden (user=system:serviceaccount:monitoring:nodewarden, verb=get, "
                  "resource=nodes, subresource(s)=[proxy])");
  }
  int fail_status = 0;
  std::chrono::milliseconds hang{0};
  if (times_ != 0) {
    fail_status = fail_status_;
    hang = hang_;
    if (times_ > 0) --times_;
  }
  if (hang.count() > 0) {
    ++hangs_begun_;
    changed_.notify_all();
    changed_.wait_for(lock, hang, [&] { return stopping_; });
    return finish(503, "text/plain", "fake kubelet: hung");
  }
  if (fail_status != 0) {
    return finish(fail_status, "text/plain",
                  "fake kubelet answers " + std::to_string(fail_status) + "\n");
  }
  return finish(200, "application/json", options_.pod_list);
}

}  // namespace nodewarden::testing
