// NodeApiClient: the Node's path on the agent's one Kubernetes client (see node_api_client.h).
#include "exporters/kube/node_api_client.h"

#include <algorithm>

namespace nodewarden::kube {
namespace {

constexpr std::size_t kMaxBodyBytes = std::size_t{16} << 20U;
constexpr std::chrono::milliseconds kMaxConnectTimeout{10'000};

}  // namespace

NodeApiClient::~NodeApiClient() = default;

std::expected<std::unique_ptr<NodeApiClient>, std::string> NodeApiClient::create(
    NodeApiOptions options) {
  if (options.node_name.empty()) return std::unexpected("no node name");
  if (options.timeout.count() <= 0) return std::unexpected("the request timeout must be > 0");
  auto client =
      kubeapi::ApiClient::create({.url = std::move(options.url),
                                  .token_file = std::move(options.token_file),
                                  .ca_file = std::move(options.ca_file),
                                  .timeout = options.timeout,
                                  .connect_timeout = std::min(options.timeout, kMaxConnectTimeout),
                                  .max_body_bytes = kMaxBodyBytes});
  if (!client) return std::unexpected("the API server " + client.error());
  std::unique_ptr<NodeApiClient> self(new NodeApiClient(std::move(*client)));
  self->node_path_ = "/api/v1/nodes/" + self->client_->escape(options.node_name);
  return self;
}

NodeApiResponse NodeApiClient::getNode() { return answer(client_->get(node_path_)); }

NodeApiResponse NodeApiClient::patchNode(bool status_subresource, std::string_view content_type,
                                         const std::string& body) {
  return answer(
      client_->patch(status_subresource ? node_path_ + "/status" : node_path_, content_type, body));
}

NodeApiResponse NodeApiClient::answer(
    std::expected<kubeapi::Response, kubeapi::ApiError> got) const {
  NodeApiResponse out;
  if (!got) {
    out.cancelled = got.error().kind == kubeapi::ErrorKind::kCancelled;
    out.error = got.error().detail;  // the feed names the operation itself
    return out;
  }
  out.status = got->http_status;
  out.body = std::move(got->body);
  return out;
}

}  // namespace nodewarden::kube
