// FakeApiServer: the pods list/watch slice of the Kubernetes API for tests, plain HTTP on
// 127.0.0.1 on a free port, and GET of single batch/v1 Jobs. GET /api/v1/pods answers a PodList
// stamped with the current resourceVersion; with watch=1 it streams newline-delimited watch events
// (chunked, as the API server does) from the resourceVersion asked for: the events after it from
// its history first, then each change the test makes, until the test drops or ends the stream,
// timeoutSeconds pass, or the client goes away. GET /apis/batch/v1/namespaces/<ns>/jobs/<name>
// answers the Job the test put, or 404. GET and PATCH of /api/v1/nodes/<name> (and PATCH of its
// /status) serve the Node the test put: a PATCH is applied to the stored Node as the API server
// would (application/merge-patch+json: RFC 7386, lists such as spec.taints replaced whole;
// application/strategic-merge-patch+json: the same, except that status.conditions merge by
// "type"; the /status subresource takes only status, the Node itself everything but status), a
// metadata.resourceVersion in the patch that is not the current one is answered 409 Conflict, and
// each applied patch takes the next resourceVersion.
//
// What a reader gets wrong: the stream is not scripted line by line. The fake keeps cluster state
// and an event history, like the API server's watch cache, so a watch that resumes from an older
// resourceVersion gets what it missed, in order, whatever the timing; expire() compacts that
// history, and a watch from before it is answered 410 Gone (an ERROR event, or an HTTP 410, as
// chosen). Each connection is served on a thread of its own, so a Job can be fetched while a
// watch is open; every response closes its connection. Every wait here is bounded by its caller.
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
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace nodewarden::testing {

enum class GoneMode : std::uint8_t {
  kErrorEvent,  // 200, then {"type":"ERROR","object":{Status code 410}} and the end of the stream
  kHttpStatus,  // HTTP 410 with a Status body
};

struct FakeApiRequest {
  std::string method;
  std::string path;
  std::string query;                          // raw, as sent
  std::map<std::string, std::string> params;  // the query, percent-decoded
  std::string authorization;                  // the Authorization header, empty when absent
  std::string content_type;                   // the Content-Type header, empty when absent
  std::string body;                           // the request body (PATCH), empty when none
  int status = 0;                             // what the fake answered
  [[nodiscard]] bool watch() const;           // watch=1 or watch=true
  // The resourceVersion parameter, or nullopt when the request had none.
  [[nodiscard]] std::optional<std::string> resourceVersion() const;
};

class FakeApiServer {
 public:
  static std::expected<std::unique_ptr<FakeApiServer>, std::string> start();
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const;  // http://127.0.0.1:<port>

  // Cluster state. Each change takes the next resourceVersion (it is set in the pod's
  // metadata) and becomes an event in the history: ADDED for a new uid, else MODIFIED.
  // Returns the new resourceVersion.
  std::string putPod(nlohmann::json pod);
  std::string deletePod(const std::string& uid);  // DELETED with the last state of the pod
  // Changes elsewhere in the cluster advance the resourceVersion; a BOOKMARK carries it.
  std::string bookmark();
  // A raw line (a newline is added) for the open watch, or the next one when none is open.
  void sendLine(std::string line);
  // Closes the open watch mid-stream (no final chunk): a dropped connection. Changes made after
  // this call go to the next watch, through the history.
  void dropWatch();
  void endWatch();  // ends the open watch cleanly, as timeoutSeconds would
  // Compacts the history: every resourceVersion until now is gone. The open watch gets an ERROR
  // 410 event (kErrorEvent) or is dropped (kHttpStatus); later watches from before it get 410 in
  // that form. Lists are unaffected.
  void expire(GoneMode mode);
  // The next `times` requests (-1: all, until answerOk()) get this status and a Status body.
  void answer(int status, int times = -1);
  void answerOk() { answer(200, 0); }

  // Jobs, by metadata.namespace and metadata.name; GETs of others answer 404.
  void putJob(nlohmann::json job);
  // The next `times` Job GETs (-1: all, until answerJobs(200, 0)) get this status.
  void answerJobs(int status, int times = -1);
  // While held, Job GETs wait (until released or the fake stops) before they are answered (and
  // recorded in requests()).
  void holdJobs(bool hold);
  // Waits until at least `count` Job GETs are being held; false when `timeout` passed first.
  bool waitForHeldJobs(std::size_t count, std::chrono::milliseconds timeout) const;

  // Nodes, by metadata.name; the Node takes the next resourceVersion. Requests for others: 404.
  std::string putNode(nlohmann::json node);
  // The stored Node as patched so far; nullopt when there is none of that name.
  [[nodiscard]] std::optional<nlohmann::json> node(const std::string& name) const;
  // The next `times` Node requests, GET or PATCH (-1: all, until answerNodes(200, 0)), get this
  // status and a Status body without touching the Node.
  void answerNodes(int status, int times = -1);
  // While held, Node requests wait (until released or the fake stops) before they are answered
  // (and recorded in requests()): a hung API server.
  void holdNodes(bool hold);
  // Waits until at least `count` Node requests are being held; false when `timeout` passed first.
  bool waitForHeldNodes(std::size_t count, std::chrono::milliseconds timeout) const;
  // Another client's write: `change` is applied to the Node right after the next GET of it is
  // answered, and takes a new resourceVersion, so a PATCH carrying the one that GET returned gets
  // 409 Conflict. Once.
  void changeNodeAfterNextGet(std::function<void(nlohmann::json&)> change);

  [[nodiscard]] std::string resourceVersion() const;
  [[nodiscard]] std::vector<FakeApiRequest> requests() const;
  // Waits until at least `count` requests were answered; false when `timeout` passed first.
  bool waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const;
  // Waits until the nth watch request (1-based) is streaming with its backlog sent.
  bool waitForWatch(std::size_t nth, std::chrono::milliseconds timeout) const;

 private:
  struct HistoryEntry {
    std::uint64_t rv = 0;
    std::string line;
  };
  FakeApiServer() = default;
  void serve();
  void handle(int fd);
  void answerJob(int fd, FakeApiRequest& request, std::unique_lock<std::mutex>& lock);
  void answerNode(int fd, FakeApiRequest& request, std::unique_lock<std::mutex>& lock);
  void streamWatch(int fd, FakeApiRequest& request);
  std::string nextRvLocked();
  void recordLocked(FakeApiRequest request);

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::thread> connections_;  // one per accepted connection; the serve thread's
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // state, requests or watches changed
  std::uint64_t rv_ = 100;
  std::uint64_t compacted_ = 0;  // watches from a resourceVersion below this get 410
  GoneMode gone_mode_ = GoneMode::kErrorEvent;
  std::map<std::string, nlohmann::json> pods_;  // by uid
  std::vector<HistoryEntry> history_;
  std::vector<std::string> raw_lines_;  // for the open (or next) watch
  std::uint64_t drops_ = 0;             // dropWatch() calls, so the open watch sees a new one
  std::uint64_t ends_ = 0;
  std::uint64_t expiries_ = 0;
  int answer_status_ = 200;
  int answer_times_ = 0;
  std::vector<FakeApiRequest> requests_;
  std::map<std::string, nlohmann::json> jobs_;  // by "<namespace>/<name>"
  int job_status_ = 200;
  int job_times_ = 0;
  bool jobs_held_ = false;
  std::size_t jobs_waiting_ = 0;                 // Job GETs held right now
  std::size_t watches_streaming_ = 0;            // watch requests that reached their live phase
  std::map<std::string, nlohmann::json> nodes_;  // by name
  int node_status_ = 200;
  int node_times_ = 0;
  bool nodes_held_ = false;
  std::size_t nodes_waiting_ = 0;  // Node requests held right now
  std::function<void(nlohmann::json&)> after_get_;
};

}  // namespace nodewarden::testing
