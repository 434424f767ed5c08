// FakeApiServer: a blocking-socket HTTP/1.1 server on one thread (see fake_apiserver.h). Not
// civetweb: a watch must be written to from the test's calls while the client holds it open, and
// dropped without the final chunk, which is simplest with the socket in hand.
#include "tests/fakes/fake_apiserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace nodewarden::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kTick = std::chrono::milliseconds(10);  // how often a watch looks for news
constexpr std::size_t kMaxRequestBytes = std::size_t{64} * 1024;
constexpr std::string_view kJobsPrefix = "/apis/batch/v1/namespaces/";
constexpr std::string_view kNodesPrefix = "/api/v1/nodes/";

std::string percentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(text[i + 1]) != 0 &&
               std::isxdigit(text[i + 2]) != 0) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool sendChunk(int fd, std::string_view payload) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", payload.size());
  return sendAll(fd, size) && sendAll(fd, payload) && sendAll(fd, "\r\n");
}

const char* statusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    default:
      return "Status";
  }
}

// A meta/v1 Status as the API server writes one for a failure; an empty message: the usual one.
json statusObject(int status, std::string message = {}) {
  std::string reason = statusText(status);
  if (status == 410) reason = "Expired";
  if (message.empty() && status == 403) {
    message =
        "pods is forbidden: User \"system:serviceaccount:monitoring:nodewarden\" cannot list "
        "resource \"pods\" in API group \"\" at the cluster scope";
  } else if (message.empty() && status == 410) {
    message = "too old resource version";
  } else if (message.empty()) {
    message = "fake API server answered " + std::to_string(status);
  }
  reason.erase(std::remove(reason.begin(), reason.end(), ' '), reason.end());
  return json{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"code", status}};
}

bool sendResponse(int fd, int status, const std::string& body) {
  const std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + statusText(status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  return sendAll(fd, head) && sendAll(fd, body);
}

std::string eventLine(std::string_view type, const json& object) {
  return json{{"type", type}, {"object", object}}.dump() + "\n";
}

// True when the peer closed (or reset) the connection; never blocks.
bool peerGone(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if ((p.revents & (POLLHUP | POLLERR)) != 0) return true;
  char byte = 0;
  return ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

}  // namespace

bool FakeApiRequest::watch() const {
  const auto it = params.find("watch");
  return it != params.end() && (it->second == "1" || it->second == "true");
}

std::optional<std::string> FakeApiRequest::resourceVersion() const {
  const auto it = params.find("resourceVersion");
  if (it == params.end()) return std::nullopt;
  return it->second;
}

std::expected<std::unique_ptr<FakeApiServer>, std::string> FakeApiServer::start() {
  std::unique_ptr<FakeApiServer> self(new FakeApiServer());
  self->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (self->listen_fd_ < 0) return std::unexpected(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(self->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(self->listen_fd_, 16) != 0) {
    return std::unexpected(std::string("bind/listen: ") + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(self->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  self->port_ = ntohs(addr.sin_port);
  self->thread_ = std::thread([s = self.get()] { s->serve(); });
  return self;
}

FakeApiServer::~FakeApiServer() {
  stopping_.store(true);
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (std::thread& t : connections_) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::string FakeApiServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string FakeApiServer::nextRvLocked() { return std::to_string(++rv_); }

std::string FakeApiServer::putPod(json pod) {
  std::string rv;
  {
    const std::lock_guard lock(mutex_);
    rv = nextRvLocked();
    pod["metadata"]["resourceVersion"] = rv;
    const std::string uid = pod["metadata"].value("uid", "");
    const bool known = pods_.contains(uid);
    history_.push_back({rv_, eventLine(known ? "MODIFIED" : "ADDED", pod)});
    pods_[uid] = std::move(pod);
  }
  changed_.notify_all();
  return rv;
}

std::string FakeApiServer::deletePod(const std::string& uid) {
  std::string rv;
  {
    const std::lock_guard lock(mutex_);
    rv = nextRvLocked();
    const auto it = pods_.find(uid);
    if (it == pods_.end()) return rv;
    it->second["metadata"]["resourceVersion"] = rv;
    history_.push_back({rv_, eventLine("DELETED", it->second)});
    pods_.erase(it);
  }
  changed_.notify_all();
  return rv;
}

std::string FakeApiServer::bookmark() {
  std::string rv;
  {
    const std::lock_guard lock(mutex_);
    rv_ += 5;  // writes to other nodes' pods, invisible through this field selector
    rv = std::to_string(rv_);
    const json object = {
        {"kind", "Pod"}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", rv}}}};
    history_.push_back({rv_, eventLine("BOOKMARK", object)});
  }
  changed_.notify_all();
  return rv;
}

void FakeApiServer::sendLine(std::string line) {
  {
    const std::lock_guard lock(mutex_);
    raw_lines_.push_back(std::move(line) + "\n");
  }
  changed_.notify_all();
}

void FakeApiServer::dropWatch() {
  {
    const std::lock_guard lock(mutex_);
    ++drops_;
  }
  changed_.notify_all();
}

void FakeApiServer::endWatch() {
  {
    const std::lock_guard lock(mutex_);
    ++ends_;
  }
  changed_.notify_all();
}

void FakeApiServer::expire(GoneMode mode) {
  {
    const std::lock_guard lock(mutex_);
    ++rv_;
    compacted_ = rv_;
    history_.clear();
    gone_mode_ = mode;
    ++expiries_;
  }
  changed_.notify_all();
}

std::string FakeApiServer::putNode(json node) {
  const std::lock_guard lock(mutex_);
  std::string rv = nextRvLocked();
  node["metadata"]["resourceVersion"] = rv;
  const std::string name = node["metadata"].value("name", "");
  nodes_[name] = std::move(node);
  return rv;
}

std::optional<json> FakeApiServer::node(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  const auto it = nodes_.find(name);
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

void FakeApiServer::answerNodes(int status, int times) {
  const std::lock_guard lock(mutex_);
  node_status_ = status;
  node_times_ = times;
}

void FakeApiServer::holdNodes(bool hold) {
  {
    const std::lock_guard lock(mutex_);
    nodes_held_ = hold;
  }
  changed_.notify_all();
}

bool FakeApiServer::waitForHeldNodes(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return nodes_waiting_ >= count; });
}

void FakeApiServer::changeNodeAfterNextGet(std::function<void(json&)> change) {
  const std::lock_guard lock(mutex_);
  after_get_ = std::move(change);
}

void FakeApiServer::answer(int status, int times) {
  const std::lock_guard lock(mutex_);
  answer_status_ = status;
  answer_times_ = times;
}

void FakeApiServer::putJob(json job) {
  const std::lock_guard lock(mutex_);
  const json& meta = job["metadata"];
  jobs_[meta.value("namespace", "") + "/" + meta.value("name", "")] = std::move(job);
}

void FakeApiServer::answerJobs(int status, int times) {
  const std::lock_guard lock(mutex_);
  job_status_ = status;
  job_times_ = times;
}

bool FakeApiServer::waitForHeldJobs(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return jobs_waiting_ >= count; });
}

void FakeApiServer::holdJobs(bool hold) {
  {
    const std::lock_guard lock(mutex_);
    jobs_held_ = hold;
  }
  changed_.notify_all();
}

std::string FakeApiServer::resourceVersion() const {
  const std::lock_guard lock(mutex_);
  return std::to_string(rv_);
}

std::vector<FakeApiRequest> FakeApiServer::requests() const {
  const std::lock_guard lock(mutex_);
  return requests_;
}

bool FakeApiServer::waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

bool FakeApiServer::waitForWatch(std::size_t nth, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return watches_streaming_ >= nth; });
}

void FakeApiServer::recordLocked(FakeApiRequest request) {
  requests_.push_back(std::move(request));
  changed_.notify_all();
}

void FakeApiServer::serve() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kTick.count())) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    connections_.emplace_back([this, fd] {
      handle(fd);
      ::close(fd);
    });
  }
}

void FakeApiServer::handle(int fd) {
  // Read the request head, then a body of Content-Length bytes, bounded in size and time.
  std::string head;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (Clock::now() > deadline || head.size() > kMaxRequestBytes || stopping_.load()) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kTick.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<std::size_t>(n));
  }
  FakeApiRequest request;
  const auto line_end = head.find("\r\n");
  const std::string line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return;
  request.method = line.substr(0, sp1);
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) {
    request.query = target.substr(q + 1);
    std::string_view rest = request.query;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      const auto eq = pair.find('=');
      request.params[percentDecode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : percentDecode(pair.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      rest.remove_prefix(amp + 1);
    }
  }
  std::size_t content_length = 0;
  for (std::size_t pos = line_end + 2; pos < head.size();) {
    const auto end = head.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;
    const std::string header = head.substr(pos, end - pos);
    const auto colon = header.find(':');
    std::string name = header.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string value =
        colon == std::string::npos ? "" : header.substr(std::min(header.size(), colon + 1));
    const auto first = value.find_first_not_of(' ');
    const std::string trimmed = first == std::string::npos ? "" : value.substr(first);
    if (name == "authorization") request.authorization = trimmed;
    if (name == "content-type") request.content_type = trimmed;
    if (name == "content-length") content_length = std::strtoull(trimmed.c_str(), nullptr, 10);
    pos = end + 2;
  }
  if (content_length > kMaxRequestBytes) return;
  request.body = head.substr(head.find("\r\n\r\n") + 4);
  while (request.body.size() < content_length) {
    if (Clock::now() > deadline || stopping_.load()) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(kTick.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    request.body.append(buf, static_cast<std::size_t>(n));
  }
  request.body.resize(content_length);

  std::unique_lock lock(mutex_);
  if (request.method == "GET" && request.path.starts_with(kJobsPrefix)) {
    answerJob(fd, request, lock);
    return;
  }
  if (request.path.starts_with(kNodesPrefix)) {
    answerNode(fd, request, lock);
    return;
  }
  int status = 200;
  if (request.method != "GET" || request.path != "/api/v1/pods") status = 404;
  if (status == 200 && answer_times_ != 0) {
    status = answer_status_;
    if (answer_times_ > 0) --answer_times_;
  }
  if (status == 200 && request.watch()) {
    lock.unlock();
    streamWatch(fd, request);
    return;
  }
  std::string body;
  if (status == 200) {
    json list = {{"kind", "PodList"},
                 {"apiVersion", "v1"},
                 {"metadata", {{"resourceVersion", std::to_string(rv_)}}},
                 {"items", json::array()}};
    for (const auto& [uid, pod] : pods_) list["items"].push_back(pod);
    body = list.dump();
  } else {
    body = statusObject(status).dump();
  }
  request.status = status;
  recordLocked(std::move(request));
  lock.unlock();
  (void)sendResponse(fd, status, body);
}

void FakeApiServer::answerJob(int fd, FakeApiRequest& request, std::unique_lock<std::mutex>& lock) {
  if (jobs_held_) {
    ++jobs_waiting_;
    changed_.notify_all();
    // Polled: the destructor sets stopping_ without the lock, so a plain wait could miss it.
    while (jobs_held_ && !stopping_.load()) changed_.wait_for(lock, kTick);
    --jobs_waiting_;
  }
  // /apis/batch/v1/namespaces/<ns>/jobs/<name>
  const std::string_view rest = std::string_view(request.path).substr(kJobsPrefix.size());
  const auto slash = rest.find('/');
  std::string ns;
  std::string name;
  if (slash != std::string_view::npos && rest.substr(slash).starts_with("/jobs/")) {
    ns = percentDecode(rest.substr(0, slash));
    name = percentDecode(rest.substr(slash + 6));
  }
  int status = 200;
  std::string body;
  if (job_times_ != 0) {
    status = job_status_;
    if (job_times_ > 0) --job_times_;
  }
  if (status == 200) {
    const auto it = jobs_.find(ns + "/" + name);
    if (it != jobs_.end()) {
      body = it->second.dump();
    } else {
      status = 404;
      body = statusObject(404, "jobs.batch \"" + name + "\" not found").dump();
    }
  } else if (status == 403) {
    body = statusObject(403, "jobs.batch \"" + name +
                                 "\" is forbidden: User \"system:serviceaccount:monitoring:"
                                 "nodewarden\" cannot get resource \"jobs\" in API group "
                                 "\"batch\" in the namespace \"" +
                                 ns + "\"")
               .dump();
  } else {
    body = statusObject(status).dump();
  }
  request.status = status;
  recordLocked(request);
  lock.unlock();
  (void)sendResponse(fd, status, body);
}

void FakeApiServer::answerNode(int fd, FakeApiRequest& request,
                               std::unique_lock<std::mutex>& lock) {
  if (nodes_held_) {
    ++nodes_waiting_;
    changed_.notify_all();
    // Polled: the destructor sets stopping_ without the lock, so a plain wait could miss it.
    while (nodes_held_ && !stopping_.load()) changed_.wait_for(lock, kTick);
    --nodes_waiting_;
    if (stopping_.load()) return;
  }
  // /api/v1/nodes/<name> or /api/v1/nodes/<name>/status
  std::string name = request.path.substr(kNodesPrefix.size());
  bool status_subresource = false;
  if (name.ends_with("/status")) {
    status_subresource = true;
    name.resize(name.size() - 7);
  }
  name = percentDecode(name);
  int status = 200;
  std::string message;
  if (node_times_ != 0) {
    status = node_status_;
    if (node_times_ > 0) --node_times_;
  }
  const auto it = nodes_.find(name);
  const bool get = request.method == "GET" && !status_subresource;
  if (status == 200 && (it == nodes_.end() || (!get && request.method != "PATCH"))) {
    status = 404;
    message = "nodes \"" + name + "\" not found";
  }
  json patch;
  if (status == 200 && !get) {
    patch = json::parse(request.body, nullptr, false);
    const bool merge = request.content_type == "application/merge-patch+json";
    const bool strategic = request.content_type == "application/strategic-merge-patch+json";
    if (!merge && !strategic) {
      status = 415;
      message = "the body of the request was in an unknown format";
    } else if (!patch.is_object()) {
      status = 400;
      message = "the patch is not a JSON object";
    }
  }
  if (status == 200 && !get) {
    json& stored = it->second;
    const json* rv = nullptr;
    if (const auto m = patch.find("metadata"); m != patch.end() && m->is_object()) {
      if (const auto r = m->find("resourceVersion"); r != m->end()) rv = &*r;
    }
    if (rv != nullptr && *rv != stored["metadata"]["resourceVersion"]) {
      status = 409;
      message = "Operation cannot be fulfilled on nodes \"" + name +
                "\": the object has been modified; please apply your changes to the latest "
                "version and try again";
    } else {
      // The status subresource writes status only; the Node itself everything else.
      json part = json::object();
      if (status_subresource) {
        if (patch.contains("status")) part["status"] = patch["status"];
      } else {
        part = patch;
        part.erase("status");
      }
      json conditions;
      if (request.content_type == "application/strategic-merge-patch+json" &&
          part.contains("status") && part["status"].is_object() &&
          part["status"].contains("conditions") && part["status"]["conditions"].is_array()) {
        conditions = part["status"]["conditions"];
        part["status"].erase("conditions");
      }
      stored.merge_patch(part);
      if (conditions.is_array()) {
        json& list = stored["status"]["conditions"];
        if (!list.is_array()) list = json::array();
        for (const json& c : conditions) {
          const auto same = std::find_if(list.begin(), list.end(), [&](const json& e) {
            return e.is_object() && c.is_object() && e.value("type", "") == c.value("type", "");
          });
          if (same != list.end()) {
            same->merge_patch(c);
          } else {
            list.push_back(c);
          }
        }
      }
      stored["metadata"]["resourceVersion"] = nextRvLocked();
    }
  }
  if (status == 403) {
    message = "nodes \"" + name +
              "\" is forbidden: User \"system:serviceaccount:monitoring:nodewarden\" cannot " +
              (get ? "get" : "patch") + " resource \"nodes" +
              (status_subresource ? "/status" : "") + "\" in API group \"\" at the cluster scope";
  }
  std::string body;
  if (status == 200) {
    body = it->second.dump();
    if (get && after_get_) {
      auto change = std::move(after_get_);
      after_get_ = nullptr;
      change(it->second);
      it->second["metadata"]["resourceVersion"] = nextRvLocked();
    }
  } else {
    body = statusObject(status, message).dump();
  }
  request.status = status;
  recordLocked(request);
  lock.unlock();
  (void)sendResponse(fd, status, body);
}

void FakeApiServer::streamWatch(int fd, FakeApiRequest& request) {
  std::unique_lock lock(mutex_);
  const auto rv_param = request.resourceVersion();
  std::uint64_t from = 0;
  bool valid = rv_param.has_value() && !rv_param->empty();
  if (valid) {
    const char* end = rv_param->data() + rv_param->size();
    valid = std::from_chars(rv_param->data(), end, from).ptr == end;
  }
  if (!valid) {
    request.status = 400;
    recordLocked(request);
    lock.unlock();
    (void)sendResponse(fd, 400, statusObject(400).dump());
    return;
  }
  const bool too_old = from < compacted_;
  if (too_old && gone_mode_ == GoneMode::kHttpStatus) {
    request.status = 410;
    recordLocked(request);
    lock.unlock();
    (void)sendResponse(fd, 410, statusObject(410).dump());
    return;
  }
  request.status = 200;
  recordLocked(request);
  const std::uint64_t drops = drops_;
  const std::uint64_t ends = ends_;
  const std::uint64_t expiries = expiries_;
  const auto timeout_it = request.params.find("timeoutSeconds");
  const auto timeout = std::chrono::seconds(
      timeout_it != request.params.end() ? std::atoi(timeout_it->second.c_str()) : 1800);
  const auto deadline = Clock::now() + timeout;
  lock.unlock();

  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\n";
  if (!sendAll(fd, head)) return;
  if (too_old) {  // GoneMode::kErrorEvent
    (void)sendChunk(fd, eventLine("ERROR", statusObject(410)));
    (void)sendAll(fd, "0\r\n\r\n");
    return;
  }
  std::uint64_t sent = from;
  bool caught_up = false;
  while (!stopping_.load()) {
    std::vector<std::string> out;
    bool drop = false;
    bool end = false;
    bool gone = false;
    lock.lock();
    changed_.wait_for(lock, kTick, [&] {
      return stopping_.load() || !raw_lines_.empty() || drops_ != drops || ends_ != ends ||
             expiries_ != expiries || (!history_.empty() && history_.back().rv > sent);
    });
    // A drop wins over what is pending: what the test does after dropWatch() is for the next
    // watch (replayed from the history), never for the one being dropped.
    drop = drops_ != drops || (expiries_ != expiries && gone_mode_ == GoneMode::kHttpStatus);
    if (!drop) {
      out.swap(raw_lines_);
      for (const HistoryEntry& e : history_) {
        if (e.rv > sent) out.push_back(e.line);
      }
      if (!history_.empty()) sent = std::max(sent, history_.back().rv);
    }
    gone = expiries_ != expiries && gone_mode_ == GoneMode::kErrorEvent;
    end = ends_ != ends || Clock::now() >= deadline;
    lock.unlock();
    for (const std::string& line : out) {
      if (!sendChunk(fd, line)) return;
    }
    if (!caught_up) {
      caught_up = true;
      lock.lock();
      ++watches_streaming_;
      lock.unlock();
      changed_.notify_all();
    }
    if (drop) return;  // the caller closes the socket: no final chunk
    if (gone) {
      (void)sendChunk(fd, eventLine("ERROR", statusObject(410)));
      (void)sendAll(fd, "0\r\n\r\n");
      return;
    }
    if (end) {
      (void)sendAll(fd, "0\r\n\r\n");
      return;
    }
    if (peerGone(fd)) return;
  }
}

}  // namespace nodewarden::testing
