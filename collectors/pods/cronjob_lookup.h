// ApiServerCronJobLookup: the CronJob that controls a Job, read from the API server for the owner
// chain (owner_chain.h): GET /apis/batch/v1/namespaces/<namespace>/jobs/<name>, the batch/v1 Job's
// metadata.ownerReferences, the one with controller: true. It needs RBAC "get" on jobs.batch.
//
// What a reader gets wrong: cronJobOf() never waits for the network. A Job asked about for the
// first time answers kPending and is queued for the lookup's one worker thread (no thread per
// request). Answers are cached by namespace/name: a CronJob or "no CronJob" for answer_ttl, a Job
// that is gone (404) too, as kUnavailable so the naming rule answers; a failed request for
// failure_ttl. An entry past its time still answers what it knew while it is asked again, so a pod
// never flips back to "unknown". A 403 is logged once, naming the RBAC, and stops every request
// for forbidden_pause (the naming rule answers meanwhile); the ones after it are only counted. The
// cache and the queue are bounded: a question that finds the queue full answers kUnavailable, is
// counted, and is asked again the next time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "collectors/pods/owner_chain.h"
#include "kubeapi/api_client.h"
#include "pipeline/self_metrics.h"

namespace nodewarden::pods {

// A batch/v1 Job's controlling CronJob from its JSON: kCronJob with the name, or kNone when its
// controller is something else or it has none. Fails when the text is not a Job object.
[[nodiscard]] std::expected<CronJobAnswer, std::string> parseJobOwner(std::string_view json);

struct CronJobLookupOptions {
  using Clock = std::chrono::steady_clock;
  std::string url;         // the API server, https://host:port, as the pod watcher uses it
  std::string token_file;  // read before every request (projected tokens rotate); empty: none
  std::string ca_file;     // empty: the system's trust store
  std::chrono::milliseconds timeout{5'000};    // one request, connect included
  std::size_t max_response_bytes = 2U << 20U;  // a Job is a few KiB; etcd caps objects at 1.5 MiB
  std::size_t max_entries = 4096;              // cached answers
  std::size_t max_queue = 256;                 // questions waiting for the worker
  std::chrono::milliseconds answer_ttl{600'000};       // a CronJob, "none", or a Job gone
  std::chrono::milliseconds failure_ttl{60'000};       // a failed request is tried again after
  std::chrono::milliseconds forbidden_pause{300'000};  // no request at all after a 403
  std::function<Clock::time_point()> now;              // empty: Clock::now; called under the lock
};

class ApiServerCronJobLookup final : public CronJobLookup {
 public:
  using Clock = CronJobLookupOptions::Clock;

  // Checks the options, sets the client up and starts the worker thread.
  static std::expected<std::unique_ptr<ApiServerCronJobLookup>, std::string> create(
      CronJobLookupOptions options, ErrorReporter& errors);
  ~ApiServerCronJobLookup() override;  // ends a request in flight (within about a second)
  ApiServerCronJobLookup(const ApiServerCronJobLookup&) = delete;
  ApiServerCronJobLookup& operator=(const ApiServerCronJobLookup&) = delete;

  [[nodiscard]] CronJobAnswer cronJobOf(std::string_view namespace_name,
                                        std::string_view job) override;

  // Waits until no question is queued or in flight; false when `timeout` passed first.
  bool waitIdle(std::chrono::milliseconds timeout) const;

  struct Stats {
    std::uint64_t requests = 0;    // GETs made
    std::uint64_t cronjobs = 0;    // answered: a CronJob controls the Job
    std::uint64_t none = 0;        // answered: no CronJob does
    std::uint64_t not_found = 0;   // 404: the Job is gone
    std::uint64_t failures = 0;    // every other failed request (403s included)
    std::uint64_t forbidden = 0;   // 403s
    std::uint64_t queue_full = 0;  // questions not queued
    std::uint64_t evicted = 0;     // cached answers dropped to stay within max_entries
  };
  [[nodiscard]] Stats stats() const;
  [[nodiscard]] std::size_t cacheSize() const;

 private:
  struct Entry {
    CronJobAnswer answer;  // kPending until the first answer
    Clock::time_point expires = Clock::time_point::max();
    bool queued = false;  // in queue_ or in flight
  };
  // What one request found out.
  struct Fetched {
    enum class Kind : std::uint8_t { kAnswer, kNotFound, kForbidden, kFailed, kStopped };
    Kind kind = Kind::kFailed;
    CronJobAnswer answer;
    std::string reason;  // kFailed and kForbidden: the ErrorReporter reason's suffix
    std::string detail;  // for the log
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  ApiServerCronJobLookup(CronJobLookupOptions options, ErrorReporter& errors,
                         std::unique_ptr<kubeapi::ApiClient> client);
  void run();
  Fetched fetch(std::string_view key);  // the worker thread's
  void settleLocked(const std::string& key, const Fetched& fetched, Clock::time_point t);
  void makeRoomLocked(Clock::time_point t);
  [[nodiscard]] Clock::time_point now() const;

  CronJobLookupOptions options_;
  ErrorReporter& errors_;
  std::unique_ptr<kubeapi::ApiClient> client_;  // the worker thread's (cancel(): any thread)
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;                 // guards everything below; never held across a request
  mutable std::condition_variable wake_;  // queued, settled, or stopping_
  std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> cache_;  // "<ns>/<job>"
  std::deque<std::string> queue_;  // keys of cache_ entries with queued set
  bool in_flight_ = false;
  Clock::time_point paused_until_{};  // after a 403
  bool forbidden_logged_ = false;
  Stats stats_;
  std::thread worker_;  // last: started after everything it uses
};

}  // namespace nodewarden::pods
