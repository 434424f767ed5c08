// ApiServerPodWatcher: list then watch this node's pods (see apiserver_pods.h for the protocol and
// the retry rules), and the Pod / watch event JSON parsers (core/v1 Pod, meta/v1 WatchEvent).
#include "collectors/pods/apiserver_pods.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>
#include <utility>

#include "kubeapi/api_client.h"
#include "pipeline/retry_backoff.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

constexpr std::string_view kComponent = "pods";
// A watch that ends cleanly after this long, even without events, was a healthy one (a quiet
// node with a short timeoutSeconds); one that ends sooner with nothing counts as a failure, so a
// server that closes every watch at once is retried with backoff instead of in a busy loop.
constexpr auto kMinHealthyWatch = std::chrono::seconds(1);
// A watch outlives its timeoutSeconds by at most this before it is taken for a dead connection.
constexpr auto kWatchGrace = std::chrono::seconds(30);
// A member that is absent or null leaves `out` as it is; one of the wrong type is an error.
bool readString(const json& object, const char* key, std::string& out) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get_ref<const std::string&>();
  return true;
}

bool readInt(const json& object, const char* key, int& out) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return true;
  if (!it->is_number_integer()) return false;
  const auto value = it->get<std::int64_t>();
  if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
    return false;
  }
  out = static_cast<int>(value);
  return true;
}

// The member if it is an object (or array, with want_array); nullptr when absent or null.
// `ok` turns false when it is present with another type.
const json* readNested(const json& object, const char* key, bool& ok, bool want_array = false) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  if (want_array ? !it->is_array() : !it->is_object()) {
    ok = false;
    return nullptr;
  }
  return &*it;
}

// The one decoder (pod.h), strict: any field it had to leave empty rejects the pod.
std::expected<PodInfo, ApiPodError> podFromJson(const json& object) {
  PodFieldProblems problems;
  auto pod = decodePod(object, problems);
  if (!pod) {
    switch (pod.error().kind) {
      case PodRejection::Kind::kNotObject:
        return std::unexpected(ApiPodError::kMalformedJson);
      case PodRejection::Kind::kMissingField:
        return std::unexpected(ApiPodError::kMissingField);
      case PodRejection::Kind::kBadValue:
        break;
    }
    return std::unexpected(ApiPodError::kBadValue);
  }
  if (problems.count > 0) {
    return std::unexpected(problems.first_kind == PodFieldProblem::kMissingName
                               ? ApiPodError::kMissingField
                               : ApiPodError::kBadValue);
  }
  return std::move(*pod);
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = s.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

}  // namespace

std::string_view apiPodErrorReason(ApiPodError error) {
  switch (error) {
    case ApiPodError::kMalformedJson:
      return "apiserver_bad_json";
    case ApiPodError::kMissingField:
      return "apiserver_missing_field";
    case ApiPodError::kBadValue:
      return "apiserver_bad_value";
  }
  return "apiserver_bad_value";
}

std::expected<PodInfo, ApiPodError> parseApiPod(std::string_view text) {
  const json object = json::parse(text.begin(), text.end(), nullptr, false);
  if (object.is_discarded()) return std::unexpected(ApiPodError::kMalformedJson);
  return podFromJson(object);
}

std::expected<WatchEvent, ApiPodError> parseWatchEvent(std::string_view line) {
  const json event = json::parse(line.begin(), line.end(), nullptr, false);
  if (event.is_discarded() || !event.is_object()) {
    return std::unexpected(ApiPodError::kMalformedJson);
  }
  std::string type;
  bool ok = readString(event, "type", type);
  const json* object = readNested(event, "object", ok);
  if (!ok) return std::unexpected(ApiPodError::kBadValue);
  if (type.empty() || object == nullptr) return std::unexpected(ApiPodError::kMissingField);
  WatchEvent out;
  if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
    out.type = type == "ADDED"      ? WatchEventType::kAdded
               : type == "MODIFIED" ? WatchEventType::kModified
                                    : WatchEventType::kDeleted;
    auto pod = podFromJson(*object);
    if (!pod) return std::unexpected(pod.error());
    out.resource_version = pod->resource_version;
    out.pod = std::move(*pod);
    return out;
  }
  if (type == "BOOKMARK") {
    // A bookmark's object is a Pod with only metadata.resourceVersion (and kind, apiVersion).
    out.type = WatchEventType::kBookmark;
    const json* meta = readNested(*object, "metadata", ok);
    if (!ok || (meta != nullptr && !readString(*meta, "resourceVersion", out.resource_version))) {
      return std::unexpected(ApiPodError::kBadValue);
    }
    if (out.resource_version.empty()) return std::unexpected(ApiPodError::kMissingField);
    return out;
  }
  if (type == "ERROR") {
    out.type = WatchEventType::kError;
    std::string reason;
    std::string message;
    if (!readInt(*object, "code", out.error_code) || !readString(*object, "reason", reason) ||
        !readString(*object, "message", message)) {
      return std::unexpected(ApiPodError::kBadValue);
    }
    out.error_message = reason + ": " + message;
    return out;
  }
  return std::unexpected(ApiPodError::kBadValue);  // an event type this code does not know
}

std::expected<ApiServerPodsOptions, std::string> withInClusterDefaults(
    ApiServerPodsOptions options, const EnvLookup& env, const std::string& serviceaccount_dir) {
  if (options.url.empty()) {
    const auto host = env("KUBERNETES_SERVICE_HOST");
    const auto port = env("KUBERNETES_SERVICE_PORT");
    if (!host || host->empty() || !port || port->empty()) {
      return std::unexpected(
          "no API server URL: set --apiserver-url, or run in a pod (KUBERNETES_SERVICE_HOST and "
          "KUBERNETES_SERVICE_PORT are not set)");
    }
    const bool ipv6 = host->find(':') != std::string::npos;
    options.url = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + *port;
  }
  std::error_code ec;
  const std::filesystem::path dir(serviceaccount_dir);
  if (options.token_file.empty() && std::filesystem::exists(dir / "token", ec)) {
    options.token_file = (dir / "token").string();
  }
  if (options.ca_file.empty() && std::filesystem::exists(dir / "ca.crt", ec)) {
    options.ca_file = (dir / "ca.crt").string();
  }
  return options;
}

ApiServerPodWatcher::ApiServerPodWatcher(ApiServerPodsOptions options, ErrorReporter& errors,
                                         std::unique_ptr<kubeapi::ApiClient> client)
    : options_(std::move(options)),
      errors_(errors),
      client_(std::move(client)),
      last_activity_(now()) {}

ApiServerPodWatcher::Clock::time_point ApiServerPodWatcher::now() const {
  return options_.now ? options_.now() : Clock::now();
}

std::expected<std::unique_ptr<ApiServerPodWatcher>, std::string> ApiServerPodWatcher::create(
    ApiServerPodsOptions options, ErrorReporter& errors) {
  if (options.node_name.empty()) {
    return std::unexpected("the API server pod source needs a node name (--node-name, NODE_NAME)");
  }
  if (options.deleted_grace.count() < 0) {
    return std::unexpected("the API server pod source's deleted_grace must not be negative");
  }
  auto client = kubeapi::ApiClient::create({.url = options.url,
                                            .token_file = options.token_file,
                                            .ca_file = options.ca_file,
                                            .timeout = options.list_timeout,
                                            .connect_timeout = options.connect_timeout,
                                            .max_body_bytes = options.max_list_bytes});
  if (!client) return std::unexpected("the API server " + client.error());  // the URL's form too
  std::unique_ptr<ApiServerPodWatcher> self(
      new ApiServerPodWatcher(std::move(options), errors, std::move(*client)));
  const ApiServerPodsOptions& o = self->options_;
  self->list_path_ =
      "/api/v1/pods?fieldSelector=" + self->client_->escape("spec.nodeName=" + o.node_name);
  self->watch_path_base_ = self->list_path_ + "&watch=1&allowWatchBookmarks=true&timeoutSeconds=" +
                           std::to_string(o.watch_timeout.count()) + "&resourceVersion=";
  return self;
}

ApiServerPodWatcher::~ApiServerPodWatcher() { stop(); }

void ApiServerPodWatcher::start() {
  if (thread_.joinable() || stopping_.load()) return;
  {
    const std::lock_guard lock(mu_);
    last_activity_ = now();
  }
  thread_ = std::thread([this] { run(); });
}

void ApiServerPodWatcher::stop() {
  stopping_.store(true);
  {
    const std::lock_guard lock(mu_);  // a waiter between its check and its wait sees the flag
  }
  wake_.notify_all();
  client_->cancel();  // ends the open list or watch at once
  if (thread_.joinable()) thread_.join();
}

void ApiServerPodWatcher::run() {
  unsigned failures = 0;  // consecutive; reset by a watch that delivered something
  bool need_list = true;
  bool after_gone = false;
  while (!stopping_.load()) {
    if (need_list) {
      const Outcome outcome = list(after_gone);
      if (outcome == Outcome::kStopped) break;
      if (outcome != Outcome::kOk) {
        after_gone = after_gone || outcome == Outcome::kGone;
        if (!waitBackoff(++failures)) break;
        continue;
      }
      need_list = false;
      after_gone = false;
    }
    bool received = false;
    // The real clock, not the injected one: how long a watch lasted is the network's business.
    const auto started = Clock::now();
    const Outcome outcome = watch(received);
    if (outcome == Outcome::kStopped) break;
    const bool healthy = received || Clock::now() - started >= kMinHealthyWatch;
    if (received) failures = 0;
    if (outcome == Outcome::kOk && healthy) continue;  // timeoutSeconds: resume at once
    if (outcome == Outcome::kGone) {
      need_list = true;
      after_gone = true;
      {
        const std::lock_guard lock(mu_);
        ++stats_.relists_gone;
      }
      if (healthy) continue;
    } else if (outcome == Outcome::kOk) {
      failed("apiserver_watch_closed", "the API server ended a watch at once, without events");
    }
    if (!waitBackoff(++failures)) break;
  }
}

ApiServerPodWatcher::Outcome ApiServerPodWatcher::refused(long status, const std::string& detail) {
  if (status == 410) return Outcome::kGone;
  if (status == 403) {
    {
      const std::lock_guard lock(mu_);
      ++stats_.forbidden;
    }
    failed("apiserver_forbidden",
           detail +
               " (the service account needs RBAC to list and watch pods: a ClusterRole with "
               "apiGroups [\"\"], resources [\"pods\"], verbs [\"list\", \"watch\"], bound to it)");
  } else if (status == 401) {
    failed("apiserver_unauthorized",
           detail + " (the bearer token was refused: expired, or the wrong file)");
  } else if (status != 0) {
    failed("apiserver_http_error", detail);
  } else {
    failed("apiserver_connect", detail);
  }
  return Outcome::kFailed;
}

ApiServerPodWatcher::Outcome ApiServerPodWatcher::requestFailed(const kubeapi::ApiError& error,
                                                                std::string_view after_ok) {
  if (error.kind == kubeapi::ErrorKind::kCancelled || stopping_.load()) return Outcome::kStopped;
  if (error.kind == kubeapi::ErrorKind::kToken) {
    failed("apiserver_token", error.message);
    return Outcome::kFailed;
  }
  if (error.http_status != 200) return refused(error.http_status, error.message);
  failed(after_ok, error.message);  // the answer broke off after its 200
  return Outcome::kFailed;
}

ApiServerPodWatcher::Outcome ApiServerPodWatcher::list(bool after_gone) {
  // The first list may come from the API server's watch cache (resourceVersion=0), which spares
  // etcd when a DaemonSet's pods all start at once; after 410 Gone the list must be a fresh one
  // (no resourceVersion) or it could go back in time, as client-go's reflector does.
  const std::string path = after_gone ? list_path_ : list_path_ + "&resourceVersion=0";
  auto got = client_->get(path, options_.list_timeout);
  if (!got) {
    if (got.error().kind == kubeapi::ErrorKind::kTooLarge && !stopping_.load()) {
      failed("apiserver_list_too_large", "GET " + client_->url() + path + ": the PodList passed " +
                                             std::to_string(options_.max_list_bytes) +
                                             " bytes (max_list_bytes)");
      return Outcome::kFailed;
    }
    return requestFailed(got.error(), "apiserver_list_failed");
  }
  if (stopping_.load()) return Outcome::kStopped;
  if (got->http_status != 200) {
    return refused(got->http_status,
                   kubeapi::statusError("GET", client_->url() + path, *got).message);
  }
  const std::string url = client_->url() + path;
  const json root = json::parse(got->body.begin(), got->body.end(), nullptr, false);
  got->body = std::string();  // a list can be large; the watch needs none of it
  std::string rv;
  bool ok = root.is_object();
  const json* meta = ok ? readNested(root, "metadata", ok) : nullptr;
  const json* items = ok ? readNested(root, "items", ok, true) : nullptr;
  if (!ok || meta == nullptr || !readString(*meta, "resourceVersion", rv) || rv.empty()) {
    failed("apiserver_bad_list", "GET " + url + ": not a PodList with a metadata.resourceVersion");
    return Outcome::kFailed;
  }
  PodMap next;
  if (items != nullptr) {
    for (const json& item : *items) {
      auto pod = podFromJson(item);
      if (!pod) {
        badEvent(apiPodErrorReason(pod.error()), "a pod in the PodList that does not parse");
        continue;
      }
      std::string uid = pod->uid;
      next.insert_or_assign(std::move(uid), std::move(*pod));
    }
  }
  const std::lock_guard lock(mu_);
  const Clock::time_point t = now();
  // A pod the watch knew and the list no longer has was deleted while the watch was away (410):
  // it gets the same grace period as one seen DELETED. One that is back is simply live.
  std::erase_if(departed_, [&](const auto& entry) { return next.contains(entry.first); });
  for (auto& [uid, pod] : pods_) {
    if (!next.contains(uid))
      departed_.try_emplace(uid, Departed{std::move(pod), t + options_.deleted_grace});
  }
  std::erase_if(departed_, [&](const auto& entry) { return entry.second.forget_at <= t; });
  pods_ = std::move(next);
  uid_by_container_.clear();
  for (const auto& [uid, d] : departed_) indexContainersLocked(d.pod, true);
  for (const auto& [uid, pod] : pods_) indexContainersLocked(pod, true);  // live ones win
  resource_version_ = std::move(rv);
  synced_ = true;
  last_activity_ = t;
  ++stats_.lists;
  generation_.fetch_add(1, std::memory_order_release);
  return Outcome::kOk;
}

ApiServerPodWatcher::Outcome ApiServerPodWatcher::watch(bool& received_any) {
  std::string rv;
  {
    const std::lock_guard lock(mu_);
    rv = resource_version_;
    ++stats_.watches;
  }
  const std::string path = watch_path_base_ + client_->escape(rv);
  gone_ = false;
  stream_error_ = false;
  received_any_ = false;
  auto got = client_->stream(
      path, options_.watch_timeout + kWatchGrace, options_.max_event_bytes,
      [this](std::string_view line) {
        onWatchLine(line);
        // An ERROR event ends the watch: the server closes it anyway, this is just sooner.
        return !gone_ && !stream_error_;
      },
      [this] {
        badEvent("apiserver_event_too_large",
                 "a watch event longer than max_event_bytes was skipped");
      });
  received_any = received_any_;
  if (stopping_.load()) return Outcome::kStopped;
  if (gone_) return Outcome::kGone;
  if (!got) {
    if (stream_error_ && got.error().http_status == 200) return Outcome::kFailed;
    return requestFailed(got.error(), "apiserver_watch_dropped");
  }
  if (got->http_status != 200) {
    return refused(got->http_status,
                   kubeapi::statusError("GET", client_->url() + path, *got).message);
  }
  if (stream_error_) return Outcome::kFailed;  // counted when the ERROR event came
  return Outcome::kOk;
}

void ApiServerPodWatcher::onWatchLine(std::string_view line) {
  line = trim(line);
  if (line.empty()) return;
  auto event = parseWatchEvent(line);
  if (!event) {
    badEvent(apiPodErrorReason(event.error()), "a watch event that does not parse was skipped");
    return;
  }
  applyEvent(std::move(*event));
}

void ApiServerPodWatcher::applyEvent(WatchEvent event) {
  if (event.type == WatchEventType::kError) {
    if (event.error_code == 410) {
      gone_ = true;  // the position was compacted away: list again
    } else {
      stream_error_ = true;
      failed("apiserver_watch_error", "watch ERROR event, code " +
                                          std::to_string(event.error_code) + ": " +
                                          event.error_message);
    }
    return;
  }
  received_any_ = true;
  const std::lock_guard lock(mu_);
  const Clock::time_point t = now();
  last_activity_ = t;
  forgetExpiredLocked(t);
  if (!event.resource_version.empty()) resource_version_ = std::move(event.resource_version);
  if (event.type == WatchEventType::kBookmark) {
    ++stats_.bookmarks;
    return;
  }
  ++stats_.events;
  PodInfo& incoming = *event.pod;
  const auto it = pods_.find(incoming.uid);
  if (it != pods_.end()) indexContainersLocked(it->second, false);
  if (event.type == WatchEventType::kDeleted) {
    if (it != pods_.end()) pods_.erase(it);
    departLocked(std::move(incoming), t);  // the DELETED object is the pod's last state
    forgetExpiredLocked(t);                // at once when deleted_grace is 0
    // A pod first seen DELETED (a short Job's, between two watches) is answered now too.
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  if (const auto d = departed_.find(incoming.uid); d != departed_.end()) {
    indexContainersLocked(d->second.pod, false);  // back within its grace period: live again
    departed_.erase(d);
  }
  indexContainersLocked(incoming, true);
  if (it != pods_.end()) {
    it->second = std::move(incoming);
  } else {
    std::string uid = incoming.uid;
    pods_.emplace(std::move(uid), std::move(incoming));
  }
  // After the maps: a collector that sees the new number finds what it stands for.
  generation_.fetch_add(1, std::memory_order_release);
}

void ApiServerPodWatcher::indexContainersLocked(const PodInfo& pod, bool add) {
  for (const auto* list : {&pod.init_containers, &pod.containers}) {
    for (const ContainerStatus& c : *list) {
      if (c.container_id.empty()) continue;
      if (add) {
        uid_by_container_.insert_or_assign(c.container_id, pod.uid);
      } else if (const auto it = uid_by_container_.find(c.container_id);
                 it != uid_by_container_.end() && it->second == pod.uid) {
        uid_by_container_.erase(it);
      }
    }
  }
}

void ApiServerPodWatcher::departLocked(PodInfo pod, Clock::time_point t) {
  const auto it = departed_.find(pod.uid);
  if (it != departed_.end()) {  // deleted twice (a replayed event): the first grace period holds
    indexContainersLocked(it->second.pod, false);
    it->second.pod = std::move(pod);
    indexContainersLocked(it->second.pod, true);
    return;
  }
  indexContainersLocked(pod, true);
  std::string uid = pod.uid;
  departed_.emplace(std::move(uid), Departed{std::move(pod), t + options_.deleted_grace});
}

void ApiServerPodWatcher::forgetExpiredLocked(Clock::time_point t) {
  for (auto it = departed_.begin(); it != departed_.end();) {
    if (it->second.forget_at > t) {
      ++it;
      continue;
    }
    indexContainersLocked(it->second.pod, false);
    it = departed_.erase(it);
  }
}

const PodInfo* ApiServerPodWatcher::findLocked(std::string_view uid) const {
  if (const auto it = pods_.find(uid); it != pods_.end()) return &it->second;
  // The clock is read only for a departed pod: live lookups cost what they did.
  if (const auto it = departed_.find(uid); it != departed_.end() && now() < it->second.forget_at) {
    return &it->second.pod;
  }
  return nullptr;
}

void ApiServerPodWatcher::refresh() {
  const std::lock_guard lock(mu_);
  if (!departed_.empty()) forgetExpiredLocked(now());
}

void ApiServerPodWatcher::failed(std::string_view reason, const std::string& detail) {
  {
    const std::lock_guard lock(mu_);
    ++stats_.failures;
    stats_.last_error = detail;
  }
  errors_.report(kComponent, reason, detail);
}

void ApiServerPodWatcher::badEvent(std::string_view reason, const std::string& detail) {
  {
    const std::lock_guard lock(mu_);
    ++stats_.bad_events;
  }
  errors_.report(kComponent, reason, detail);
}

bool ApiServerPodWatcher::waitBackoff(unsigned failures) {
  thread_local std::minstd_rand random(
      static_cast<std::minstd_rand::result_type>(std::random_device{}()));
  // The agent's one retry policy (pipeline/retry_backoff.h).
  const auto delay = backoffDelay(failures, options_.backoff_initial, options_.backoff_max, random);
  std::unique_lock lock(mu_);
  stats_.last_backoff = delay;
  return !wake_.wait_for(lock, delay, [this] { return stopping_.load(); });
}

std::optional<PodInfo> ApiServerPodWatcher::findPod(std::string_view uid) const {
  const std::lock_guard lock(mu_);
  const PodInfo* pod = findLocked(uid);
  if (pod == nullptr) return std::nullopt;
  return *pod;
}

std::vector<PodInfo> ApiServerPodWatcher::pods() const {
  std::vector<PodInfo> out;
  {
    const std::lock_guard lock(mu_);
    out.reserve(pods_.size());
    for (const auto& [uid, pod] : pods_) out.push_back(pod);
  }
  std::sort(out.begin(), out.end(), [](const PodInfo& a, const PodInfo& b) {
    return std::tie(a.namespace_name, a.name, a.uid) < std::tie(b.namespace_name, b.name, b.uid);
  });
  return out;
}

std::size_t ApiServerPodWatcher::size() const {
  const std::lock_guard lock(mu_);
  return pods_.size();
}

std::size_t ApiServerPodWatcher::departedCount() const {
  const std::lock_guard lock(mu_);
  return departed_.size();
}

std::string ApiServerPodWatcher::resourceVersion() const {
  const std::lock_guard lock(mu_);
  return resource_version_;
}

bool ApiServerPodWatcher::synced() const {
  const std::lock_guard lock(mu_);
  return synced_;
}

ApiServerPodWatcher::Clock::duration ApiServerPodWatcher::staleness() const {
  const std::lock_guard lock(mu_);
  return now() - last_activity_;
}

ApiServerPodWatcher::Stats ApiServerPodWatcher::stats() const {
  const std::lock_guard lock(mu_);
  return stats_;
}

std::optional<ContainerIdentity> ApiServerPodWatcher::container(std::string_view id) const {
  const std::lock_guard lock(mu_);
  const auto uid = uid_by_container_.find(id);
  if (uid == uid_by_container_.end()) return std::nullopt;
  const PodInfo* pod = findLocked(uid->second);
  if (pod == nullptr) return std::nullopt;
  const ContainerStatus* c = findContainer(*pod, id);
  if (c == nullptr) return std::nullopt;
  return ContainerIdentity{pod->uid, pod->namespace_name, pod->name, c->name, c->image, false};
}

std::optional<PodIdentity> ApiServerPodWatcher::pod(std::string_view uid) const {
  PodIdentity id;
  {
    const std::lock_guard lock(mu_);
    const PodInfo* found = findLocked(uid);
    if (found == nullptr) return std::nullopt;
    id = podIdentity(*found);
  }
  resolveOwnerChain(id, options_.cronjobs.get());  // outside the lock: the lookup has its own
  return id;
}

}  // namespace nodewarden::pods
