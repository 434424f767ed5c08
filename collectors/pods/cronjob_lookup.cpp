// ApiServerCronJobLookup: the cache, the queue and the worker thread's GETs through the agent's
// one Kubernetes client (kubeapi/api_client.h); the Job JSON is parsed with nlohmann::json without
// exceptions.
#include "collectors/pods/cronjob_lookup.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "kubeapi/api_client.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

constexpr std::string_view kComponent = "pods";
constexpr std::string_view kRbacHint =
    "the CronJob of a Job is read from the API server: the agent's service account needs RBAC "
    "\"get\" on jobs.batch, e.g. a ClusterRole rule with apiGroups [\"batch\"], resources "
    "[\"jobs\"], verbs [\"get\"]; until then Jobs are matched to CronJobs by name";

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

ApiServerCronJobLookup::ApiServerCronJobLookup(CronJobLookupOptions options, ErrorReporter& errors,
                                               std::unique_ptr<kubeapi::ApiClient> client)
    : options_(std::move(options)), errors_(errors), client_(std::move(client)) {}

std::expected<std::unique_ptr<ApiServerCronJobLookup>, std::string> ApiServerCronJobLookup::create(
    CronJobLookupOptions options, ErrorReporter& errors) {
  const auto bad = [](const std::string& what) {
    return std::unexpected("CronJob lookup: " + what);
  };
  if (options.timeout.count() <= 0) return bad("timeout must be positive");
  if (options.max_response_bytes == 0 || options.max_entries == 0 || options.max_queue == 0) {
    return bad("max_response_bytes, max_entries and max_queue must be positive");
  }
  auto client = kubeapi::ApiClient::create({.url = options.url,
                                            .token_file = options.token_file,
                                            .ca_file = options.ca_file,
                                            .timeout = options.timeout,
                                            .connect_timeout = options.timeout,
                                            .max_body_bytes = options.max_response_bytes});
  if (!client) return bad("the API server " + client.error());
  std::unique_ptr<ApiServerCronJobLookup> self(
      new ApiServerCronJobLookup(std::move(options), errors, std::move(*client)));
  self->worker_ = std::thread([s = self.get()] { s->run(); });
  return self;
}

ApiServerCronJobLookup::~ApiServerCronJobLookup() {
  {
    const std::lock_guard lock(mu_);
    stopping_.store(true);
  }
  client_->cancel();  // ends a request in flight at once
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
  const auto count = [&](std::uint64_t Stats::*field) {
    const std::lock_guard lock(mu_);
    ++(stats_.*field);
  };
  const std::string path =
      "/apis/batch/v1/namespaces/" + client_->escape(ns) + "/jobs/" + client_->escape(job);
  auto got = client_->get(path);
  if (!got) {
    const kubeapi::ApiError& error = got.error();
    if (error.kind == kubeapi::ErrorKind::kCancelled || stopping_.load()) {
      out.kind = Fetched::Kind::kStopped;
      return out;
    }
    // A token that cannot be read sends nothing: no request, and not a failed one.
    if (error.kind != kubeapi::ErrorKind::kToken) {
      count(&Stats::requests);
      count(&Stats::failures);
    }
    return fail(std::string(kubeapi::errorReason(error.kind)), error.message);
  }
  count(&Stats::requests);
  const long status = got->http_status;
  if (status == 404) {
    count(&Stats::not_found);
    out.kind = Fetched::Kind::kNotFound;
    return out;
  }
  const auto refused = [&] { return kubeapi::statusError("GET", client_->url() + path, *got); };
  if (status == 403) {
    count(&Stats::failures);
    count(&Stats::forbidden);
    out.kind = Fetched::Kind::kForbidden;
    out.reason = "forbidden";
    out.detail = refused().message;
    return out;
  }
  if (status == 401) {
    count(&Stats::failures);
    return fail("unauthorized",
                refused().message + " (the bearer token was refused: expired, or the wrong file)");
  }
  if (status != 200) {
    count(&Stats::failures);
    return fail("http_status", refused().message);
  }
  auto answer = parseJobOwner(got->body);
  if (!answer) {
    count(&Stats::failures);
    return fail("bad_json", "GET " + client_->url() + path + ": " + answer.error());
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
