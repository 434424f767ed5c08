// NodeApiClient: GET and PATCH of one Node in the Kubernetes API server over libcurl, for the
// placement feed's worker thread. Bearer token re-read from its file before every request
// (projected service-account tokens rotate), the cluster CA from ca_file, a whole-request timeout.
//
// What a reader gets wrong: requests run through a multi handle so that cancel(), from any thread,
// ends the one in flight at once (curl_multi_wakeup) instead of after the timeout; a cancelled
// client answers every later request as cancelled without sending it. One thread makes requests.
#pragma once

#include <atomic>
#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace nodewarden::kube {

struct NodeApiOptions {
  std::string url;         // https://host:port, no path
  std::string token_file;  // empty: no Authorization header
  std::string ca_file;     // empty: the system's trust store
  std::string node_name;
  std::chrono::milliseconds timeout{10'000};  // the whole request, connect included
};

struct NodeApiResponse {
  long status = 0;         // the HTTP status; 0 when none came
  std::string body;        // bounded (a Node with many images is still far below the bound)
  std::string error;       // libcurl's error (or why nothing was sent) when status is 0
  bool cancelled = false;  // cancel() ended it, or came before it
  [[nodiscard]] bool ok() const { return status >= 200 && status < 300; }
};

class NodeApiClient {
 public:
  static std::expected<std::unique_ptr<NodeApiClient>, std::string> create(NodeApiOptions options);
  ~NodeApiClient();
  NodeApiClient(const NodeApiClient&) = delete;
  NodeApiClient& operator=(const NodeApiClient&) = delete;

  // GET /api/v1/nodes/<node>
  NodeApiResponse getNode();
  // PATCH /api/v1/nodes/<node>, or .../status with status_subresource.
  NodeApiResponse patchNode(bool status_subresource, std::string_view content_type,
                            const std::string& body);
  void cancel();  // any thread

  [[nodiscard]] const std::string& nodePath() const { return node_path_; }

 private:
  struct Curl;
  explicit NodeApiClient(NodeApiOptions options);
  NodeApiResponse perform(const std::string& path, const char* method,
                          std::string_view content_type, const std::string* body);

  NodeApiOptions options_;
  std::unique_ptr<Curl> curl_;
  std::atomic<bool> cancelled_{false};
  std::string node_path_;  // /api/v1/nodes/<escaped node>
};

}  // namespace nodewarden::kube
