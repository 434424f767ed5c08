// ApiServerCronJobLookup: the cache, the queue and the worker thread's GETs through one kept
// libcurl easy handle (the connection and TLS session are reused), set up as the pod sources set
// theirs up; the Job JSON is parsed with nlohmann::json without exceptions.
#include "collectors/pods/cronjob_lookup.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>

#include "pipeline/curl_support.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

constexpr std::string_view kComponent = "pods";
constexpr std::size_t kMaxTokenBytes = 64 * 1024;
constexpr std::size_t kMaxQuotedBody = 200;  // of a failure's answer, in the log

constexpr std::string_view kRbacHint =
    "the CronJob of a Job is read from the API server: the agent's service account needs RBAC "
    "\"get\" on jobs.batch, e.g. a ClusterRole rule with apiGroups [\"batch\"], resources "
    "[\"jobs\"], verbs [\"get\"]; until then Jobs are matched to CronJobs by name";

struct Body {
  std::string text;
  std::size_t limit = 0;
  bool too_large = false;
};

std::size_t keepBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  const std::size_t n = size * count;
  if (body->text.size() + n > body->limit) {
    body->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  body->text.append(data, n);
  return n;
}

std::string_view trimmed(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

// "<reason>: <message>" of a meta/v1 Status body, else the body's start.
std::string statusText(std::string_view body) {
  const json status = json::parse(body.begin(), body.end(), nullptr, false);
  if (status.is_object()) {
    const auto reason = status.find("reason");
    const auto message = status.find("message");
    if (reason != status.end() && reason->is_string() && message != status.end() &&
        message->is_string()) {
      return reason->get<std::string>() + ": " + message->get<std::string>();
    }
  }
  return std::string(trimmed(body.substr(0, kMaxQuotedBody)));
}

// The token file's one line; an error names the file.
std::expected<std::string, std::string> readToken(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::unexpected("cannot read the bearer token file " + file);
  std::string token(kMaxTokenBytes + 1, '\0');
  in.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<std::size_t>(in.gcount()));
  if (token.size() > kMaxTokenBytes) return std::unexpected("the token file " + file + " is huge");
  std::string out(trimmed(token));
  if (out.empty() || out.find_first_of("\r\n") != std::string::npos) {
    return std::unexpected("no one-line bearer token in " + file);
  }
  return out;
}

}  // namespace

std::expected<CronJobAnswer, std::string> parseJobOwner(std::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) return std::unexpected(std::string("not JSON"));
  if (!doc.is_object()) return std::unexpected(std::string("not a JSON object"));
  if (const auto kind = doc.find("kind");
      kind != doc.end() && !(kind->is_string() && kind->get_ref<const std::string&>() == "Job")) {
    return std::unexpected(std::string("kind is not Job"));
  }
  const auto meta = doc.find("metadata");
  if (meta == doc.end() || !meta->is_object()) {
    return std::unexpected(std::string("no metadata object"));
  }
  CronJobAnswer answer{CronJobAnswer::State::kNone, {}};
  const auto owners = meta->find("ownerReferences");
  if (owners == meta->end() || owners->is_null()) return answer;
  if (!owners->is_array()) return std::unexpected(std::string("ownerReferences is not a list"));
  for (const json& owner : *owners) {
    if (!owner.is_object()) return std::unexpected(std::string("an ownerReference is no object"));
    const auto controller = owner.find("controller");
    if (controller == owner.end() || !controller->is_boolean() || !controller->get<bool>()) {
      continue;
    }
    const auto kind = owner.find("kind");
    const auto name = owner.find("name");
    if (kind == owner.end() || !kind->is_string() || name == owner.end() || !name->is_string()) {
      return std::unexpected(std::string("the controller reference has no kind or name"));
    }
    if (kind->get_ref<const std::string&>() == "CronJob" &&
        !name->get_ref<const std::string&>().empty()) {
      answer.state = CronJobAnswer::State::kCronJob;
      answer.name = name->get<std::string>();
    }
    break;  // one controller at most (the API server enforces it)
  }
  return answer;
}

struct ApiServerCronJobLookup::Curl {
  CURL* handle = nullptr;
  std::array<char, CURL_ERROR_SIZE> error{};
  ~Curl() {
    if (handle != nullptr) curl_easy_cleanup(handle);
  }
};

ApiServerCronJobLookup::ApiServerCronJobLookup(CronJobLookupOptions options, ErrorReporter& errors)
    : options_(std::move(options)), errors_(errors), curl_(std::make_unique<Curl>()) {}

std::expected<std::unique_ptr<ApiServerCronJobLookup>, std::string> ApiServerCronJobLookup::create(
    CronJobLookupOptions options, ErrorReporter& errors) {
  const auto bad = [](const std::string& what) {
    return std::unexpected("CronJob lookup: " + what);
  };
  while (options.url.ends_with('/')) options.url.pop_back();
  if (!options.url.starts_with("https://") && !options.url.starts_with("http://")) {
    return bad("the API server URL must start with https:// or http://: '" + options.url + "'");
  }
  if (options.timeout.count() <= 0) return bad("timeout must be positive");
  if (options.max_response_bytes == 0 || options.max_entries == 0 || options.max_queue == 0) {
    return bad("max_response_bytes, max_entries and max_queue must be positive");
  }
  initCurlOnce();
  std::unique_ptr<ApiServerCronJobLookup> self(
      new ApiServerCronJobLookup(std::move(options), errors));
  Curl& c = *self->curl_;
  c.handle = curl_easy_init();
  if (c.handle == nullptr) return bad("curl_easy_init failed");
  CURL* h = c.handle;
  const auto timeout_ms = static_cast<long>(self->options_.timeout.count());
  bool ok = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;  // not alone in the process
  ok = ok && curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_USERAGENT, "nodewarden") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &keepBody) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c.error.data()) == CURLE_OK;
  // Destruction sets stopping_: the progress callback then ends a request in flight.
  ok = ok && curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &abortWhenCancelled) == CURLE_OK;
  ok = ok && curl_easy_setopt(h, CURLOPT_XFERINFODATA, &self->stopping_) == CURLE_OK;
  if (!self->options_.ca_file.empty()) {
    ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, self->options_.ca_file.c_str()) == CURLE_OK;
  }
  if (!ok) return bad(std::string("libcurl refused an option: ") + c.error.data());
  self->worker_ = std::thread([s = self.get()] { s->run(); });
  return self;
}

ApiServerCronJobLookup::~ApiServerCronJobLookup() {
  {
    const std::lock_guard lock(mu_);
    stopping_.store(true);
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

ApiServerCronJobLookup::Clock::time_point ApiServerCronJobLookup::now() const {
  return options_.now ? options_.now() : Clock::now();
}

CronJobAnswer ApiServerCronJobLookup::cronJobOf(std::string_view namespace_name,
                                                std::string_view job) {
  if (namespace_name.empty() || job.empty()) return {};
  std::string key;
  key.reserve(namespace_name.size() + job.size() + 1);
  key.append(namespace_name).push_back('/');
  key.append(job);
  bool full = false;
  CronJobAnswer out;
  {
    const std::lock_guard lock(mu_);
    const Clock::time_point t = now();
    const bool paused = t < paused_until_;
    if (const auto it = cache_.find(key); it != cache_.end()) {
      Entry& e = it->second;
      // Past its time: asked again, and meanwhile it answers what it knew.
      if (!e.queued && e.expires <= t && !paused && queue_.size() < options_.max_queue) {
        e.queued = true;
        queue_.push_back(key);
        wake_.notify_all();
      }
      return e.answer;
    }
    if (paused) return {};  // the naming rule, without a request
    if (queue_.size() >= options_.max_queue) {
      ++stats_.queue_full;
      full = true;
    } else {
      makeRoomLocked(t);
      Entry e;
      e.answer.state = CronJobAnswer::State::kPending;
      e.queued = true;
      cache_.emplace(key, e);
      queue_.push_back(std::move(key));
      wake_.notify_all();
      out.state = CronJobAnswer::State::kPending;
    }
  }
  if (full) {
    errors_.report(kComponent, "apiserver_job_lookup_queue_full",
                   "more Jobs to look up than max_queue; the rest are matched by name for now");
  }
  return out;
}

void ApiServerCronJobLookup::makeRoomLocked(Clock::time_point t) {
  if (cache_.size() < options_.max_entries) return;
  // First what has expired and is not being asked again, then the answer that expires soonest.
  const auto before = cache_.size();
  std::erase_if(
      cache_, [&](const auto& entry) { return !entry.second.queued && entry.second.expires <= t; });
  stats_.evicted += before - cache_.size();
  while (cache_.size() >= options_.max_entries) {
    auto victim = cache_.end();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->second.queued) continue;
      if (victim == cache_.end() || it->second.expires < victim->second.expires) victim = it;
    }
    if (victim == cache_.end()) return;  // all queued: at most max_queue + 1 entries
    cache_.erase(victim);
    ++stats_.evicted;
  }
}

void ApiServerCronJobLookup::run() {
  std::unique_lock lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_.load() || !queue_.empty(); });
    if (stopping_.load()) return;
    std::string key = std::move(queue_.front());
    queue_.pop_front();
    in_flight_ = true;
    if (now() < paused_until_) {
      settleLocked(key, Fetched{Fetched::Kind::kForbidden, {}, {}, {}}, now());
    } else {
      lock.unlock();
      const Fetched fetched = fetch(key);  // the network wait, outside the lock
      if (fetched.kind == Fetched::Kind::kFailed) {
        errors_.report(kComponent, "apiserver_job_lookup_" + fetched.reason, fetched.detail);
      } else if (fetched.kind == Fetched::Kind::kForbidden) {
        bool first = false;
        {
          const std::lock_guard relock(mu_);
          first = !forbidden_logged_;
          forbidden_logged_ = true;
        }
        if (first) {
          errors_.report(kComponent, "apiserver_job_lookup_forbidden",
                         fetched.detail + "; " + std::string(kRbacHint));
        } else {
          errors_.countOnly(kComponent, "apiserver_job_lookup_forbidden");
        }
      }
      lock.lock();
      if (fetched.kind == Fetched::Kind::kStopped) return;
      settleLocked(key, fetched, now());
    }
    in_flight_ = false;
    wake_.notify_all();
  }
}

void ApiServerCronJobLookup::settleLocked(const std::string& key, const Fetched& fetched,
                                          Clock::time_point t) {
  const auto it = cache_.find(key);
  if (it == cache_.end()) return;
  Entry& e = it->second;
  e.queued = false;
  const bool knew = e.answer.state == CronJobAnswer::State::kCronJob ||
                    e.answer.state == CronJobAnswer::State::kNone;
  switch (fetched.kind) {
    case Fetched::Kind::kAnswer:
      e.answer = fetched.answer;
      e.expires = t + options_.answer_ttl;
      return;
    case Fetched::Kind::kNotFound:
      e.answer = CronJobAnswer{};  // gone: the naming rule answers
      e.expires = t + options_.answer_ttl;
      return;
    case Fetched::Kind::kForbidden:
      if (t >= paused_until_) paused_until_ = t + options_.forbidden_pause;
      if (!knew) e.answer = CronJobAnswer{};
      e.expires = paused_until_;
      // Nothing else is asked until the pause ends: what waits gets the naming rule.
      for (const std::string& waiting : queue_) {
        if (const auto w = cache_.find(waiting); w != cache_.end()) {
          w->second.queued = false;
          if (w->second.answer.state == CronJobAnswer::State::kPending) {
            w->second.answer = CronJobAnswer{};
          }
          w->second.expires = paused_until_;
        }
      }
      queue_.clear();
      return;
    case Fetched::Kind::kFailed:
    case Fetched::Kind::kStopped:
      if (!knew) e.answer = CronJobAnswer{};  // a refresh that failed keeps what was known
      e.expires = t + options_.failure_ttl;
      return;
  }
}

ApiServerCronJobLookup::Fetched ApiServerCronJobLookup::fetch(std::string_view key) {
  const auto slash = key.find('/');
  const std::string_view ns = key.substr(0, slash);
  const std::string_view job = key.substr(slash + 1);
  Fetched out;
  const auto fail = [&](std::string reason, std::string detail) {
    out.kind = Fetched::Kind::kFailed;
    out.reason = std::move(reason);
    out.detail = std::move(detail);
    return out;
  };
  CURL* h = curl_->handle;
  const auto escape = [&](std::string_view text) {
    char* escaped = curl_easy_escape(h, text.data(), static_cast<int>(text.size()));
    std::string s = escaped != nullptr ? escaped : "";
    curl_free(escaped);
    return s;
  };
  const std::string url =
      options_.url + "/apis/batch/v1/namespaces/" + escape(ns) + "/jobs/" + escape(job);
  CurlHeaders headers;
  bool ok = appendHeader(headers, "Accept: application/json");
  if (!options_.token_file.empty()) {
    auto token = readToken(options_.token_file);
    if (!token) return fail("token", "GET " + url + ": " + token.error());
    ok = ok && appendHeader(headers, "Authorization: Bearer " + *token);
  }
  if (!ok) return fail("transport", "GET " + url + ": out of memory building the headers");
  Body body{{}, options_.max_response_bytes, false};
  curl_->error[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  {
    const std::lock_guard lock(mu_);
    ++stats_.requests;
  }
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);  // the list dies with this scope
  curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
  const auto count = [&](std::uint64_t Stats::*field) {
    const std::lock_guard lock(mu_);
    ++(stats_.*field);
  };
  if (rc != CURLE_OK) {
    if (stopping_.load()) {
      out.kind = Fetched::Kind::kStopped;
      return out;
    }
    count(&Stats::failures);
    std::string what = "GET " + url + ": " + curl_easy_strerror(rc);
    if (curl_->error[0] != '\0') what += std::string(" (") + curl_->error.data() + ")";
    switch (rc) {
      case CURLE_WRITE_ERROR:
        if (body.too_large) {
          return fail("too_large", "GET " + url + ": the answer passed " +
                                       std::to_string(options_.max_response_bytes) + " bytes");
        }
        break;
      case CURLE_OPERATION_TIMEDOUT:
        return fail("timeout", what);
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
        return fail("connect", what);
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CERTPROBLEM:
        return fail("tls", what);
      default:
        break;
    }
    return fail("transport", what);
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  const auto said = [&] { return statusText(body.text); };
  if (status == 404) {
    count(&Stats::not_found);
    out.kind = Fetched::Kind::kNotFound;
    return out;
  }
  if (status == 403) {
    count(&Stats::failures);
    count(&Stats::forbidden);
    out.kind = Fetched::Kind::kForbidden;
    out.reason = "forbidden";
    out.detail = "GET " + url + ": 403: " + said();
    return out;
  }
  if (status == 401) {
    count(&Stats::failures);
    return fail("unauthorized", "GET " + url +
                                    ": 401: the bearer token was refused (expired, or the wrong "
                                    "file): " +
                                    said());
  }
  if (status != 200) {
    count(&Stats::failures);
    return fail("http_status", "GET " + url + ": HTTP " + std::to_string(status) + ": " + said());
  }
  auto answer = parseJobOwner(body.text);
  if (!answer) {
    count(&Stats::failures);
    return fail("bad_json", "GET " + url + ": " + answer.error());
  }
  count(answer->state == CronJobAnswer::State::kCronJob ? &Stats::cronjobs : &Stats::none);
  out.kind = Fetched::Kind::kAnswer;
  out.answer = std::move(*answer);
  return out;
}

bool ApiServerCronJobLookup::waitIdle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return wake_.wait_for(lock, timeout, [&] { return queue_.empty() && !in_flight_; });
}

ApiServerCronJobLookup::Stats ApiServerCronJobLookup::stats() const {
  const std::lock_guard lock(mu_);
  return stats_;
}

std::size_t ApiServerCronJobLookup::cacheSize() const {
  const std::lock_guard lock(mu_);
  return cache_.size();
}

}  // namespace nodewarden::pods
