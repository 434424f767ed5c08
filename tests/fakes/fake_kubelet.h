// FakeKubelet: the kubelet's read-only pod listing, GET /pods, over HTTPS on 127.0.0.1 for tests.
// It authenticates the way a kubelet with webhook authn/authz answers a service account: no
// bearer token → 401, a token it does not accept → 403 with the kubelet's Forbidden text, the
// right one → 200 with the PodList JSON the test set. On command it answers 500 or hangs.
//
// What a reader gets wrong: a hang answers 503 when it ends and ends early when the fake stops,
// so destroying a FakeKubelet never waits out a hang; every wait here is bounded by its caller.
// TLS is terminated by a TlsFront (tls_front.h), never by civetweb.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct mg_connection;
struct mg_context;

namespace nodewarden::testing {

class TlsFront;

struct FakeKubeletOptions {
  std::string token;             // the bearer token it accepts; must not be empty
  std::string certificate_file;  // the server's certificate (chain), PEM
  std::string key_file;          // its key, PEM; empty when in certificate_file
  std::string pod_list = R"({"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]})";
  int port = 0;  // 0: a free port
};

struct FakeKubeletRequest {
  std::string method;
  std::string path;
  std::string authorization;  // the header as sent, empty when absent
  int status = 0;             // what the fake answered
};

class FakeKubelet {
 public:
  static std::expected<std::unique_ptr<FakeKubelet>, std::string> start(FakeKubeletOptions options);
  ~FakeKubelet();
  FakeKubelet(const FakeKubelet&) = delete;
  FakeKubelet& operator=(const FakeKubelet&) = delete;

  [[nodiscard]] int port() const { return port_; }
  // https://127.0.0.1:<port>, the base a client appends /pods to.
  [[nodiscard]] std::string url() const;

  // What GET /pods answers from now on (any bytes: tests serve garbage too).
  void setPodList(std::string json);
  void setToken(std::string token);
  // Answer the next `times` authorized requests with `status` (-1: until told otherwise).
  void failWith(int status, int times = -1);
  // Answer nothing for `duration` (at most 30 s) on the next `times` authorized requests.
  void hang(std::chrono::milliseconds duration, int times = -1);
  // Back to answering 200 with the pod list.
  void behave();

  [[nodiscard]] std::vector<FakeKubeletRequest> requests() const;
  // Waits until at least `count` requests were answered; false when `timeout` passed first.
  bool waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const;
  // Waits until at least `count` requests began a hang (the client is now waiting on the fake);
  // false when `timeout` passed first.
  bool waitForHangs(std::size_t count, std::chrono::milliseconds timeout) const;

 private:
  explicit FakeKubelet(FakeKubeletOptions options);
  static int handlePods(mg_connection* conn, void* self);
  int handle(mg_connection* conn);

  mg_context* ctx_ = nullptr;
  int port_ = 0;        // the TLS front's
  int civet_port_ = 0;  // civetweb's, behind it
  std::unique_ptr<TlsFront> tls_front_;

  // Everything below is shared with civetweb's worker threads.
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // a request was answered or hangs, or stopping_
  FakeKubeletOptions options_;
  int fail_status_ = 0;
  std::chrono::milliseconds hang_{0};
  int times_ = 0;  // for fail_status_ or hang_; -1: always
  bool stopping_ = false;
  std::vector<FakeKubeletRequest> requests_;
  std::size_t hangs_begun_ = 0;
};

}  // namespace nodewarden::testing
