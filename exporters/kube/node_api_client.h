// NodeApiClient: GET and PATCH of one Node in the Kubernetes API server, for the placement feed's
// worker thread, through the agent's one Kubernetes client (kubeapi/api_client.h: the token
// re-read before every request, the cluster CA, a whole-request timeout, cancellation).
//
// What a reader gets wrong: cancel(), from any thread, ends the request in flight at once instead
// of after the timeout, and a cancelled client answers every later request as cancelled without
// sending it. Any HTTP status is an answer here (a 409 is one the feed acts on). One thread makes
// requests.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "kubeapi/api_client.h"

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
  std::string error;       // why no answer came (or why nothing was sent) when status is 0
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
  void cancel() { client_->cancel(); }  // any thread

  [[nodiscard]] const std::string& nodePath() const { return node_path_; }

 private:
  explicit NodeApiClient(std::unique_ptr<kubeapi::ApiClient> client) : client_(std::move(client)) {}
  NodeApiResponse answer(std::expected<kubeapi::Response, kubeapi::ApiError> got) const;

  std::unique_ptr<kubeapi::ApiClient> client_;
  std::string node_path_;  // /api/v1/nodes/<escaped node>
};

}  // namespace nodewarden::kube
