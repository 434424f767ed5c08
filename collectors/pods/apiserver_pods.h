// ApiServerPodWatcher: this node's pods from the Kubernetes API server, the way client-go's
// reflector keeps an informer's cache: list (GET /api/v1/pods?fieldSelector=spec.nodeName=<node>),
// remember the list's metadata.resourceVersion, then watch from it
// (&watch=1&resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=<n>): newline-delimited
// JSON events, {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...} (Kubernetes API
// concepts, "Efficient detection of changes" and "Watch bookmarks").
//
// What a reader gets wrong: a watch that ends is normal (timeoutSeconds, an API server restart, a
// load balancer's idle cut) and resumes from the last resourceVersion seen, bookmarks included,
// without a re-list. Only 410 Gone (as an HTTP status, or as an ERROR event whose Status has code
// 410: the resourceVersion was compacted away) throws the watch position away and lists again.
// Everything else that fails (403, 5xx, a refused connection) backs off exponentially with jitter
// and tries again forever; nothing here stops the agent. One thread per watcher does all of it,
// through the agent's one Kubernetes client (kubeapi/api_client.h), which stop() cancels at once.
//
// A pod that is DELETED, or missing from a re-list, is still answered by findPod() and the
// lookups for deleted_grace (its last logs and metrics are read after it is gone), then
// forgotten; pods() and size() are the live pods only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "collectors/pods/owner_chain.h"
#include "collectors/pods/pod.h"
#include "kubeapi/api_client.h"
#include "pipeline/container_metadata.h"
#include "pipeline/retry_backoff.h"  // the wait between failed requests
#include "pipeline/self_metrics.h"

namespace nodewarden::pods {

enum class ApiPodError : std::uint8_t {
  kMalformedJson,  // not JSON, or not an object
  kMissingField,   // no metadata.uid, .name or .namespace
  kBadValue,       // a field of the wrong type or form
};
// The ErrorReporter reason: apiserver_bad_json, apiserver_missing_field, apiserver_bad_value.
[[nodiscard]] std::string_view apiPodErrorReason(ApiPodError error);

// One Pod object (JSON), as in a PodList's items or a watch event's object, through the one
// decoder (pod.h). A pod with any field the decoder had to leave empty is an error here: the API
// server validated the object, so such a field means the object is not what this code reads.
// Throws nothing.
[[nodiscard]] std::expected<PodInfo, ApiPodError> parseApiPod(std::string_view json);

enum class WatchEventType : std::uint8_t { kAdded, kModified, kDeleted, kBookmark, kError };

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  std::string resource_version;  // the object's metadata.resourceVersion (not for kError)
  std::optional<PodInfo> pod;    // kAdded, kModified, kDeleted
  int error_code = 0;            // kError: the Status's code (410 when the position is gone)
  std::string error_message;     // kError: the Status's reason and message
};
// One line of a watch stream. Unknown types and objects that do not parse are errors.
[[nodiscard]] std::expected<WatchEvent, ApiPodError> parseWatchEvent(std::string_view line);

struct ApiServerPodsOptions {
  using Clock = std::chrono::steady_clock;
  std::string url;         // https://host:port (no path); empty: in-cluster
  std::string token_file;  // read again before every request; empty: in-cluster, or no token
  std::string ca_file;     // empty: in-cluster, or the system's trust store
  std::string node_name;   // required
  std::chrono::seconds watch_timeout{300};  // timeoutSeconds; the server ends the watch after it
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds list_timeout{60'000};
  // The agent's one retry policy (pipeline/retry_backoff.h) between failed requests.
  std::chrono::milliseconds backoff_initial{800};  // client-go's reflector: 800 ms ...
  std::chrono::milliseconds backoff_max{30'000};   // ... to 30 s
  std::size_t max_list_bytes = 64U << 20U;         // a node's PodList is far smaller; bounds memory
  std::size_t max_event_bytes = 4U << 20U;         // one watch line; longer lines are skipped
  // How long a deleted pod is still answered by findPod(), container() and pod(); it is
  // forgotten after (so memory holds only the pods deleted within this window). 0: at once.
  std::chrono::milliseconds deleted_grace{120'000};
  // Empty: Clock::now. For the grace period and staleness(); called from the watch thread and
  // from lookups, under the watcher's lock.
  std::function<Clock::time_point()> now;
  // Where pod() asks for the CronJob of a Job pod's Job (owner_chain.h); null: the CronJob
  // controller's naming rule answers. Shared with the kubelet source.
  std::shared_ptr<CronJobLookup> cronjobs;
};

// Fills what is empty from the in-cluster defaults: url from KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT (https, IPv6 bracketed), token_file and ca_file from
// <serviceaccount_dir>/token and ca.crt when those files exist. An error names what is missing.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
[[nodiscard]] std::expected<ApiServerPodsOptions, std::string> withInClusterDefaults(
    ApiServerPodsOptions options, const EnvLookup& env,
    const std::string& serviceaccount_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

class ApiServerPodWatcher final : public ContainerMetadata {
 public:
  using Clock = ApiServerPodsOptions::Clock;

  // Checks the options (url and node_name set) and sets libcurl up; starts nothing.
  static std::expected<std::unique_ptr<ApiServerPodWatcher>, std::string> create(
      ApiServerPodsOptions options, ErrorReporter& errors);
  ~ApiServerPodWatcher() override;  // stop()s
  ApiServerPodWatcher(const ApiServerPodWatcher&) = delete;
  ApiServerPodWatcher& operator=(const ApiServerPodWatcher&) = delete;

  // Starts the watch thread; once only.
  void start();
  // Ends the open request and any backoff wait at once and joins the thread. Idempotent.
  void stop();

  // Snapshots, safe from any thread. findPod() also answers a deleted pod (its last state) within
  // deleted_grace; pods() and size() are the live pods only.
  [[nodiscard]] std::optional<PodInfo> findPod(std::string_view uid) const;
  [[nodiscard]] std::vector<PodInfo> pods() const;
  [[nodiscard]] std::size_t size() const;
  // Deleted pods still kept for their grace period (until an event or refresh() forgets them).
  [[nodiscard]] std::size_t departedCount() const;
  [[nodiscard]] std::string resourceVersion() const;  // the watch's position; empty before a list
  [[nodiscard]] bool synced() const override;         // a list has succeeded
  // Time since the last list, event or bookmark; before the first list, since start().
  [[nodiscard]] Clock::duration staleness() const;

  struct Stats {
    std::uint64_t lists = 0;         // successful lists
    std::uint64_t relists_gone = 0;  // lists forced by 410 Gone
    std::uint64_t watches = 0;       // watch requests made
    std::uint64_t events = 0;        // ADDED, MODIFIED, DELETED applied
    std::uint64_t bookmarks = 0;
    std::uint64_t bad_events = 0;  // lines and items skipped (also in ErrorReporter)
    std::uint64_t failures = 0;    // failed requests (403, 5xx, connection), before backoff
    std::uint64_t forbidden = 0;   // 403s among them
    std::chrono::milliseconds last_backoff{0};
    std::string last_error;  // the latest failure's detail, as logged
  };
  [[nodiscard]] Stats stats() const;

  // ContainerMetadata. The watch thread keeps the map current; refresh() only forgets the deleted
  // pods whose grace period is over (a quiet watch would otherwise keep them).
  void refresh() override;
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override;
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override;
  // Moves with every list and every ADDED, MODIFIED or DELETED event (the watch thread's; a pod
  // first seen DELETED is still answered). The watch is live: requestRefresh() has nothing to do.
  [[nodiscard]] std::uint64_t generation() const override {
    return generation_.load(std::memory_order_acquire);
  }

 private:
  enum class Outcome : std::uint8_t { kOk, kGone, kFailed, kStopped };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PodMap = std::unordered_map<std::string, PodInfo, StringHash, std::equal_to<>>;
  // A deleted pod: its last state, answered until forget_at.
  struct Departed {
    PodInfo pod;
    Clock::time_point forget_at;
  };

  ApiServerPodWatcher(ApiServerPodsOptions options, ErrorReporter& errors,
                      std::unique_ptr<kubeapi::ApiClient> client);
  void run();
  Outcome list(bool after_gone);
  // received_any: an event or bookmark arrived, so the connection was healthy.
  Outcome watch(bool& received_any);
  void onWatchLine(std::string_view line);
  void badEvent(std::string_view reason, const std::string& detail);
  void applyEvent(WatchEvent event);
  void failed(std::string_view reason, const std::string& detail);
  // The outcome of a request answered with something other than 200 (status 0: not answered).
  Outcome refused(long status, const std::string& detail);
  // The outcome of a request that got no complete answer; after_ok: the reason when its 200 had
  // come (the list or the watch broke off).
  Outcome requestFailed(const kubeapi::ApiError& error, std::string_view after_ok);
  bool waitBackoff(unsigned failures);  // false when stopping
  void indexContainersLocked(const PodInfo& pod, bool add);
  [[nodiscard]] Clock::time_point now() const;
  // A live pod, or a deleted one within its grace period; nullptr otherwise.
  [[nodiscard]] const PodInfo* findLocked(std::string_view uid) const;
  void departLocked(PodInfo pod, Clock::time_point t);
  void forgetExpiredLocked(Clock::time_point t);

  ApiServerPodsOptions options_;
  ErrorReporter& errors_;
  std::unique_ptr<kubeapi::ApiClient> client_;  // the watch thread's (and cancel() by stop)
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> generation_{0};  // see generation()
  std::string list_path_;
  std::string watch_path_base_;

  // Watch-thread state for the request in flight.
  bool gone_ = false;          // an ERROR event said 410
  bool stream_error_ = false;  // an ERROR event with another code
  bool received_any_ = false;

  mutable std::mutex mu_;         // guards everything below; never held across a request
  std::condition_variable wake_;  // stopping_ set: ends a backoff wait
  PodMap pods_;
  std::unordered_map<std::string, Departed, StringHash, std::equal_to<>> departed_;  // not in pods_
  // The containers of pods_ and departed_.
  std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> uid_by_container_;
  std::string resource_version_;
  bool synced_ = false;
  Clock::time_point last_activity_{};
  Stats stats_;
};

}  // namespace nodewarden::pods
