// KubeletPodsClient and KubeletPodsMetadata: GET /pods through the agent's one Kubernetes client
// (kubeapi/api_client.h), parsed with nlohmann::json without exceptions.
#include "collectors/pods/kubelet_pods.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kubeapi/api_client.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

// The RBAC the agent needs, named in every 401 and 403 message.
constexpr std::string_view kRbacHint =
    "the agent's service account needs RBAC \"get\" on nodes/proxy (or on nodes/pods where the "
    "cluster enables KubeletFineGrainedAuthz), e.g. a ClusterRole with apiGroups [\"\"], "
    "resources [\"nodes/proxy\", \"nodes/pods\"], verbs [\"get\"]";

}  // namespace

std::string_view kubeletErrorReason(KubeletError error) {
  switch (error) {
    case KubeletError::kToken:
      return "token";
    case KubeletError::kConnect:
      return "connect";
    case KubeletError::kTls:
      return "tls";
    case KubeletError::kTimeout:
      return "timeout";
    case KubeletError::kUnauthorized:
      return "unauthorized";
    case KubeletError::kForbidden:
      return "forbidden";
    case KubeletError::kHttpStatus:
      return "http_status";
    case KubeletError::kTooLarge:
      return "too_large";
    case KubeletError::kBadJson:
      return "bad_json";
    case KubeletError::kNotPodList:
      return "not_podlist";
    case KubeletError::kTransport:
      break;
  }
  return "transport";
}

std::expected<PodList, KubeletFailure> parsePodList(std::string_view text) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded())
    return std::unexpected(KubeletFailure{KubeletError::kBadJson, "not JSON"});
  if (!doc.is_object()) {
    return std::unexpected(KubeletFailure{KubeletError::kNotPodList, "not a JSON object"});
  }
  const auto kind = doc.find("kind");
  if (kind != doc.end() && !kind->is_null() &&
      (!kind->is_string() || kind->get<std::string>() != "PodList")) {
    return std::unexpected(KubeletFailure{KubeletError::kNotPodList, "kind is not PodList"});
  }
  const auto items = doc.find("items");
  if (items == doc.end() || !(items->is_array() || items->is_null())) {
    return std::unexpected(KubeletFailure{KubeletError::kNotPodList, "no items array"});
  }
  PodList list;
  // The kubelet source keeps a pod with bad fields (pod.h): only unusable items are skipped.
  PodFieldProblems problems;
  if (items->is_array()) {
    list.pods.reserve(items->size());
    for (const json& item : *items) {
      auto pod = decodePod(item, problems);
      if (pod) {
        list.pods.push_back(std::move(*pod));
        continue;
      }
      if (list.first_skipped.empty()) list.first_skipped = std::move(pod.error().why);
      ++list.skipped;
    }
  }
  list.bad_fields = problems.count;
  list.first_bad_field = std::move(problems.first);
  return list;
}

// ---- KubeletPodsClient ----

KubeletPodsClient::KubeletPodsClient(KubeletPodsOptions options,
                                     std::unique_ptr<kubeapi::ApiClient> client)
    : options_(std::move(options)), client_(std::move(client)) {}

KubeletPodsClient::~KubeletPodsClient() = default;

std::expected<std::unique_ptr<KubeletPodsClient>, std::string> KubeletPodsClient::create(
    KubeletPodsOptions options) {
  const auto bad = [](const std::string& what) { return std::unexpected("kubelet pods: " + what); };
  if (!options.url.starts_with("https://") && !options.url.starts_with("http://")) {
    return bad("url '" + options.url + "' is not an https:// URL");
  }
  if (!options.ca_file.empty() && !std::ifstream(options.ca_file).good()) {
    return bad("ca_file '" + options.ca_file + "' cannot be read");
  }
  if (options.timeout.count() <= 0) return bad("timeout must be positive");
  if (options.max_response_bytes == 0) return bad("max_response_bytes must be positive");
  auto client = kubeapi::ApiClient::create({.url = options.url,
                                            .token_file = options.token_file,
                                            .ca_file = options.ca_file,
                                            .insecure_skip_verify = options.insecure_skip_verify,
                                            // The kubelet is this node's own daemon: a proxy
                                            // from the environment never leads to it.
                                            .bypass_proxy = true,
                                            .timeout = options.timeout,
                                            .connect_timeout = options.timeout,
                                            .max_body_bytes = options.max_response_bytes});
  if (!client) return bad(client.error());
  std::unique_ptr<KubeletPodsClient> self(
      new KubeletPodsClient(std::move(options), std::move(*client)));
  self->pods_url_ = self->client_->url() + "/pods";
  return self;
}

std::expected<PodList, KubeletFailure> KubeletPodsClient::fetch() {
  const auto fail = [&](KubeletError error, const std::string& what, long status = 0) {
    return std::unexpected(KubeletFailure{error, "GET " + pods_url_ + ": " + what, status});
  };
  auto got = client_->get("/pods");
  if (!got) {
    const kubeapi::ApiError& e = got.error();
    switch (e.kind) {
      case kubeapi::ErrorKind::kToken:
        return fail(KubeletError::kToken, e.detail);
      case kubeapi::ErrorKind::kConnect:
        return fail(KubeletError::kConnect, e.detail);
      case kubeapi::ErrorKind::kTls:
        return fail(KubeletError::kTls,
                    e.detail +
                        "; the kubelet's serving certificate is often self-signed: give its "
                        "CA in ca_file, or set insecure_skip_verify");
      case kubeapi::ErrorKind::kTimeout:
        return fail(KubeletError::kTimeout, e.detail);
      case kubeapi::ErrorKind::kTooLarge:
        return fail(KubeletError::kTooLarge, "the answer exceeds max_response_bytes (" +
                                                 std::to_string(options_.max_response_bytes) + ")");
      case kubeapi::ErrorKind::kCancelled:
      case kubeapi::ErrorKind::kTransport:
      case kubeapi::ErrorKind::kHttpStatus:
        break;
    }
    return fail(KubeletError::kTransport, e.detail);
  }
  const long status = got->http_status;
  if (status == 401) {
    return fail(KubeletError::kUnauthorized,
                "401 Unauthorized: the kubelet did not accept the bearer token from '" +
                    options_.token_file + "'; " + std::string(kRbacHint),
                status);
  }
  if (status == 403) {
    // The kubelet answers a 403 in plain text, naming the verb and subresource it checked.
    return fail(KubeletError::kForbidden,
                kubeapi::statusError("GET", pods_url_, *got).detail + "; " + std::string(kRbacHint),
                status);
  }
  if (status != 200) {
    return fail(KubeletError::kHttpStatus, "answered " + std::to_string(status), status);
  }
  auto list = parsePodList(got->body);
  if (!list) return fail(list.error().error, list.error().message, status);
  return list;
}

// ---- KubeletPodsMetadata ----

KubeletPodsMetadata::KubeletPodsMetadata(std::unique_ptr<KubeletPodsClient> client,
                                         ErrorReporter& errors, KubeletPodsMetadataOptions options)
    : client_(std::move(client)), errors_(errors), options_(std::move(options)) {
  if (options_.background) fetcher_ = std::thread([this] { fetchLoop(); });
}

KubeletPodsMetadata::~KubeletPodsMetadata() {
  if (!fetcher_.joinable()) return;
  {
    const std::scoped_lock lock(mutex_);
    stopping_ = true;
  }
  client_->cancel();  // a fetch in flight ends at libcurl's next progress call (about 1 s)
  wake_.notify_all();
  fetcher_.join();
}

KubeletPodsMetadata::Clock::time_point KubeletPodsMetadata::now() const {
  return options_.now ? options_.now() : Clock::now();
}

KubeletPodsMetadata::Result KubeletPodsMetadata::fetchNow(Clock::time_point started) {
  auto list = client_->fetch();
  return {std::move(list), started, now()};
}

void KubeletPodsMetadata::fetchLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return requested_ || stopping_; });
    if (stopping_) return;
    requested_ = false;
    const Clock::time_point started = requested_at_;
    lock.unlock();
    Result result = fetchNow(started);  // the network wait, outside the lock
    lock.lock();
    done_ = std::move(result);
    in_flight_ = false;
    wake_.notify_all();
  }
}

void KubeletPodsMetadata::refresh() {
  const Clock::time_point t = now();
  forgetExpired(t);
  std::optional<Result> finished;
  if (options_.background) {
    const std::scoped_lock lock(mutex_);
    finished.swap(done_);
  }
  if (finished) takeIn(std::move(*finished));
  fetchIfDue(t);
}

void KubeletPodsMetadata::requestRefresh() {
  early_requested_ = true;
  // Inline mode fetches only in refresh(): this never waits for the network.
  if (options_.background) fetchIfDue(now());
}

void KubeletPodsMetadata::fetchIfDue(Clock::time_point t) {
  const auto since = [&](std::chrono::milliseconds d) {
    return !last_attempt_ || t - *last_attempt_ >= d;
  };
  const bool due = since(options_.refresh_interval);
  if (!due && !(early_requested_ && since(options_.early_refresh_gap))) return;
  if (options_.background) {
    const std::scoped_lock lock(mutex_);
    // The last one is still out: it counts as this interval's. An early request stays: the list
    // in flight may have been made before the new pod was.
    if (in_flight_) return;
    in_flight_ = true;
    requested_ = true;
    requested_at_ = t;
    last_attempt_ = t;
    wake_.notify_all();
  } else {
    last_attempt_ = t;
  }
  if (!due) ++stats_.early;
  early_requested_ = false;
  if (!options_.background) takeIn(fetchNow(t));
}

bool KubeletPodsMetadata::waitForFetch(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, timeout, [&] { return !in_flight_; });
}

std::size_t KubeletPodsMetadata::listingsSince(Clock::time_point t) const {
  const std::size_t kept = std::min(taken_count_, kListingsKept);
  std::size_t n = 0;
  for (std::size_t i = kListingsKept - kept; i < kListingsKept; ++i) {
    if (taken_started_[i] >= t) ++n;
  }
  return n;
}

void KubeletPodsMetadata::takeIn(Result result) {
  ++stats_.fetches;
  // Fetches are taken in in the order they began (one is out at a time): a shift keeps the
  // newest starts.
  std::shift_left(taken_started_.begin(), taken_started_.end(), 1);
  taken_started_.back() = result.started;
  ++taken_count_;
  if (!result.list) {
    ++stats_.failures;
    const KubeletFailure& failure = result.list.error();
    errors_.report("pods", "kubelet_" + std::string(kubeletErrorReason(failure.error)),
                   failure.message);
    return;  // the last good list stays
  }
  PodList& list = *result.list;
  for (std::size_t i = 0; i < list.skipped; ++i) {
    errors_.report("pods", "kubelet_bad_pod", list.first_skipped);
  }
  for (std::size_t i = 0; i < list.bad_fields; ++i) {
    errors_.report("pods", "kubelet_bad_field", list.first_bad_field);
  }
  if (list.pods != pods_) ++generation_;
  std::vector<PodInfo> previous = std::move(pods_);
  pods_ = std::move(list.pods);
  last_good_ = result.at;
  StringMap<bool> listed;
  listed.reserve(pods_.size());
  for (const PodInfo& p : pods_) listed.emplace(p.uid, true);
  // Back in the list within its grace period: simply live again.
  std::erase_if(departed_, [&](const auto& entry) { return listed.contains(entry.first); });
  // Gone from the list: kept for the grace period, counted from the list that left it out.
  const Clock::time_point forget_at = result.at + options_.deleted_grace;
  for (PodInfo& p : previous) {
    if (listed.contains(p.uid)) continue;
    std::string uid = p.uid;
    departed_.try_emplace(std::move(uid), Departed{std::move(p), forget_at});
  }
  std::erase_if(departed_, [&](const auto& entry) { return entry.second.forget_at <= result.at; });
  reindex();
}

void KubeletPodsMetadata::reindex() {
  pod_by_uid_.clear();
  container_by_id_.clear();
  const auto add = [&](const PodInfo& p, Clock::time_point forget_at) {
    const Indexed entry{&p, forget_at};
    pod_by_uid_.emplace(p.uid, entry);
    for (const auto* statuses : {&p.init_containers, &p.containers}) {
      for (const ContainerStatus& c : *statuses) {
        // emplace: a live pod's claim on an id wins over a departed one's.
        if (!c.container_id.empty()) container_by_id_.emplace(c.container_id, std::pair{entry, &c});
      }
    }
  };
  for (const PodInfo& p : pods_) add(p, Clock::time_point::max());
  for (const auto& [uid, departed] : departed_) add(departed.pod, departed.forget_at);
}

void KubeletPodsMetadata::forgetExpired(Clock::time_point t) {
  if (std::erase_if(departed_, [&](const auto& entry) { return entry.second.forget_at <= t; }) >
      0) {
    reindex();
  }
}

bool KubeletPodsMetadata::answerable(const Indexed& entry) const {
  // The clock is read only for a departed pod: live lookups stay as cheap as before.
  return entry.forget_at == Clock::time_point::max() || now() < entry.forget_at;
}

std::optional<ContainerIdentity> KubeletPodsMetadata::container(std::string_view id) const {
  const auto it = container_by_id_.find(id);
  if (it == container_by_id_.end() || !answerable(it->second.first)) return std::nullopt;
  const PodInfo& p = *it->second.first.pod;
  const ContainerStatus& c = *it->second.second;
  return ContainerIdentity{p.uid, p.namespace_name, p.name, c.name, c.image, false};
}

std::optional<PodIdentity> KubeletPodsMetadata::pod(std::string_view uid) const {
  const PodInfo* p = findPod(uid);
  if (p == nullptr) return std::nullopt;
  PodIdentity id = podIdentity(*p);
  resolveOwnerChain(id, options_.cronjobs.get());
  return id;
}

const PodInfo* KubeletPodsMetadata::findPod(std::string_view uid) const {
  const auto it = pod_by_uid_.find(uid);
  return it == pod_by_uid_.end() || !answerable(it->second) ? nullptr : it->second.pod;
}

std::optional<KubeletPodsMetadata::Clock::duration> KubeletPodsMetadata::staleness() const {
  if (!last_good_) return std::nullopt;
  return now() - *last_good_;
}

}  // namespace nodewarden::pods
