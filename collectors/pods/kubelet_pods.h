// KubeletPodsClient: the kubelet's own list of the pods bound to this node, GET /pods on
// https://<node>:10250, read with the service-account token the way the kubelet authorizes it
// (webhook authz: "get" on nodes/proxy, or nodes/pods where KubeletFineGrainedAuthz is on), and
// decoded by the one Pod decoder (pod.h) into PodInfo. KubeletPodsMetadata serves it as a
// ContainerMetadata source (the second source, after the runtime's state on the node).
//
// The PodList is the core/v1 JSON the API server would give (kubernetes pkg/kubelet/server
// server.go getPods encodes kubelet.GetPods()); pod.h lists the fields read.
//
// What a reader gets wrong:
//  - The statuses in /pods are the API server's copy as the kubelet last received it (only static
//    pods carry the kubelet's own), so they lag the runtime by a round trip; a pod deleted from
//    the API leaves /pods soon after. Names and owners are safe to take from here; an outcome's
//    exact moment is not.
//  - A pod with a bad field is kept (the field left empty) and counted in PodList::bad_fields;
//    the API server source rejects such a pod instead (pod.h says why).
//  - The kubelet's serving certificate is often self-signed and not signed by the cluster CA (it
//    is only with serverTLSBootstrap); then verification needs its own CA file, or the explicit
//    insecure_skip_verify that metrics-server calls --kubelet-insecure-tls.
//  - The token file is read on every fetch: projected service-account tokens rotate (about
//    hourly) and the old one stops working.
//  - A pod that leaves /pods is still answered by KubeletPodsMetadata for deleted_grace: its
//    last log lines and metrics are read after it is gone, and they must still carry its names.
//    pods() is only what the kubelet listed last; findPod() and the lookups also see the departed.
#pragma once

#include <array>
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
#include "pipeline/self_metrics.h"

namespace nodewarden::pods {

struct PodList {
  std::vector<PodInfo> pods;
  std::size_t skipped = 0;      // items without a usable uid, name or namespace: not in pods
  std::size_t bad_fields = 0;   // fields of kept items that had the wrong type or form: left empty
  std::string first_skipped;    // why the first item was skipped, for the log
  std::string first_bad_field;  // what the first bad field was, for the log
};

enum class KubeletError : std::uint8_t {
  kToken,         // the token file cannot be read, or is empty
  kConnect,       // no TCP connection (refused, unreachable, DNS)
  kTls,           // the handshake failed: certificate not trusted, wrong name, bad CA file
  kTimeout,       // no complete answer within the timeout
  kUnauthorized,  // 401: the kubelet did not accept the token
  kForbidden,     // 403: the token's service account lacks the RBAC
  kHttpStatus,    // any other non-200 answer
  kTooLarge,      // the answer exceeded max_response_bytes
  kBadJson,       // the body is not JSON
  kNotPodList,    // JSON, but not a PodList
  kTransport,     // any other libcurl failure
};

struct KubeletFailure {
  KubeletError error;
  std::string message;  // names the URL and what to do about it
  long http_status = 0;
};

// The ErrorReporter reason ("kubelet_" + this): token, connect, tls, timeout, unauthorized,
// forbidden, http_status, too_large, bad_json, not_podlist, transport.
[[nodiscard]] std::string_view kubeletErrorReason(KubeletError error);

// Parses a PodList body. Fails only when the whole body is unusable (not JSON, not a PodList);
// bad items are counted and skipped, bad fields counted and left empty. Throws nothing.
[[nodiscard]] std::expected<PodList, KubeletFailure> parsePodList(std::string_view json);

struct KubeletPodsOptions {
  std::string url;         // the kubelet's base URL, https://<node>:10250; /pods is appended
  std::string token_file;  // read on every fetch; empty: send no Authorization
  std::string ca_file;     // empty: the system trust store
  bool insecure_skip_verify = false;
  std::chrono::milliseconds timeout{5000};     // the whole request, connect included
  std::size_t max_response_bytes = 64u << 20;  // a full node's list is a few MiB at most
};

// The agent's one Kubernetes client (kubeapi/api_client.h): the TLS session and connection are
// reused. Not thread-safe: fetch()
// belongs to one thread at a time; cancel() may be called from any thread.
class KubeletPodsClient {
 public:
  static std::expected<std::unique_ptr<KubeletPodsClient>, std::string> create(
      KubeletPodsOptions options);
  ~KubeletPodsClient();
  KubeletPodsClient(const KubeletPodsClient&) = delete;
  KubeletPodsClient& operator=(const KubeletPodsClient&) = delete;

  // GET /pods, blocking for at most the timeout.
  [[nodiscard]] std::expected<PodList, KubeletFailure> fetch();
  // Makes a fetch in progress (at once) and every later one fail with kTransport; for shutdown.
  void cancel() { client_->cancel(); }
  [[nodiscard]] const std::string& podsUrl() const { return pods_url_; }

 private:
  KubeletPodsClient(KubeletPodsOptions options, std::unique_ptr<kubeapi::ApiClient> client);

  KubeletPodsOptions options_;
  std::string pods_url_;
  std::unique_ptr<kubeapi::ApiClient> client_;
};

struct KubeletPodsMetadataOptions {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds refresh_interval{10'000};  // at most one fetch per interval
  // requestRefresh() (a cgroup of a pod not in the list appeared) starts a fetch before the
  // interval is over, but never sooner than this after the last one: a burst of new pods costs
  // one fetch per gap, not one each.
  std::chrono::milliseconds early_refresh_gap{1'000};
  // true: fetches run on the adapter's own thread and refresh() never waits for the network; a
  // finished fetch is taken in by the next refresh(). false: refresh() fetches inline.
  bool background = true;
  std::function<Clock::time_point()> now;  // empty: Clock::now; called from both threads
  // How long a pod that left /pods is still answered by container(), pod() and findPod(); it is
  // forgotten after (so memory holds only the pods that left within this window). 0: at once.
  std::chrono::milliseconds deleted_grace{120'000};
  // Where pod() asks for the CronJob of a Job pod's Job (owner_chain.h); null: the CronJob
  // controller's naming rule answers. Shared with the API-server source.
  std::shared_ptr<CronJobLookup> cronjobs;
};

// The kubelet's pods as a ContainerMetadata source. A failed fetch keeps the last good list and
// is counted under ("pods", "kubelet_<reason>"); staleness() says how old the list is. Lookups and
// refresh() belong to one thread (the collector's); only the hand-off from the fetch thread is
// shared.
class KubeletPodsMetadata final : public ContainerMetadata {
 public:
  using Clock = KubeletPodsMetadataOptions::Clock;
  KubeletPodsMetadata(std::unique_ptr<KubeletPodsClient> client, ErrorReporter& errors,
                      KubeletPodsMetadataOptions options = {});
  ~KubeletPodsMetadata() override;
  KubeletPodsMetadata(const KubeletPodsMetadata&) = delete;
  KubeletPodsMetadata& operator=(const KubeletPodsMetadata&) = delete;

  void refresh() override;
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view id) const override;
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override;
  // The first fetch's result (a list, or a failure) was taken in.
  [[nodiscard]] bool synced() const override { return stats_.fetches > 0; }
  // Moves when a list that differs from the last one is taken in.
  [[nodiscard]] std::uint64_t generation() const override { return generation_; }
  // Starts a fetch now (background mode; inline: at the next refresh()) unless one is in flight
  // or began less than early_refresh_gap ago; then as soon as that is over.
  void requestRefresh() override;

  // Everything /pods says about a pod (owner, phase, statuses), or nullptr; a departed pod's last
  // state within its grace period. Valid until the next refresh().
  [[nodiscard]] const PodInfo* findPod(std::string_view uid) const;
  // The last good list: live pods only.
  [[nodiscard]] const std::vector<PodInfo>& pods() const { return pods_; }
  // Pods gone from /pods and still within deleted_grace (until refresh() forgets them).
  [[nodiscard]] std::size_t departedCount() const { return departed_.size(); }
  // The age of the last good list; nullopt before the first one.
  [[nodiscard]] std::optional<Clock::duration> staleness() const;
  // Background mode: waits until no fetch is in flight (its result then waits for refresh()).
  bool waitForFetch(std::chrono::milliseconds timeout) const;
  // How many fetches that began at or after `t` have been taken in (listed or failed), up to
  // kListingsKept: a cgroup found at t waits for the first fetch that cannot predate it, and one
  // more (CgroupCollectorOptions::listings_since). Same thread as refresh().
  [[nodiscard]] std::size_t listingsSince(Clock::time_point t) const;
  static constexpr std::size_t kListingsKept = 4;

  struct Stats {
    std::size_t fetches = 0;  // attempts whose result was taken in
    std::size_t failures = 0;
    std::size_t early = 0;  // fetches started before refresh_interval because of requestRefresh()
  };
  [[nodiscard]] const Stats& stats() const { return stats_; }

 private:
  struct Result {
    std::expected<PodList, KubeletFailure> list;
    // When it was asked for: one asked for after a cgroup was found lists the kubelet's state
    // from after that.
    Clock::time_point started;
    Clock::time_point at;  // when the answer came
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
  // A pod that left /pods: its last listed state, answered until forget_at.
  struct Departed {
    PodInfo pod;
    Clock::time_point forget_at;
  };
  // What the indexes point at: a pod in pods_ (forget_at max) or in departed_.
  struct Indexed {
    const PodInfo* pod = nullptr;
    Clock::time_point forget_at = Clock::time_point::max();
  };

  [[nodiscard]] Clock::time_point now() const;
  Result fetchNow(Clock::time_point started);
  void takeIn(Result result);
  // Starts a fetch when the interval is over, or early when one was requested and the gap is.
  void fetchIfDue(Clock::time_point t);
  void fetchLoop();
  void reindex();
  void forgetExpired(Clock::time_point t);
  // Live, or departed and still within its grace period.
  [[nodiscard]] bool answerable(const Indexed& entry) const;

  std::unique_ptr<KubeletPodsClient> client_;
  ErrorReporter& errors_;
  KubeletPodsMetadataOptions options_;

  // The collector thread's.
  std::vector<PodInfo> pods_;
  StringMap<Departed> departed_;  // by uid; never a uid that is in pods_
  // Into pods_ and departed_ (node-based: its elements stay put); rebuilt when either changes.
  StringMap<Indexed> pod_by_uid_;
  StringMap<std::pair<Indexed, const ContainerStatus*>> container_by_id_;
  std::optional<Clock::time_point> last_good_;
  std::optional<Clock::time_point> last_attempt_;
  bool early_requested_ = false;  // requestRefresh() since the last fetch began
  // When the last kListingsKept fetches taken in began, oldest first (for listingsSince()).
  std::array<Clock::time_point, kListingsKept> taken_started_{};
  std::size_t taken_count_ = 0;
  std::uint64_t generation_ = 0;
  Stats stats_;

  // Shared with the fetch thread (background mode), guarded by mutex_.
  mutable std::mutex mutex_;
  mutable std::condition_variable wake_;  // a fetch was asked for or finished, or stopping_
  bool requested_ = false;
  Clock::time_point requested_at_{};  // when requested_ was set: the fetch's Result::started
  bool in_flight_ = false;
  bool stopping_ = false;
  std::optional<Result> done_;
  std::thread fetcher_;  // last member: started after everything it uses
};

}  // namespace nodewarden::pods
