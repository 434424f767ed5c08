#include "tests/support/prometheus_server.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/http_client.h"

namespace nodewarden::testing {

std::expected<PrometheusServer, std::string> PrometheusServer::start(
    PrometheusServerOptions options) {
  PrometheusServer server;
  server.dir_ = options.dir;
  server.port_ = options.port > 0 ? options.port : freeLoopbackPort();
  if (server.port_ <= 0) return std::unexpected("no free loopback port");
  std::filesystem::create_directories(options.dir);
  std::ofstream(options.dir / "prometheus.yml") << options.config_yaml;
  std::vector<std::string> argv = {
      options.binary, "--config.file=" + (options.dir / "prometheus.yml").string(),
      "--storage.tsdb.path=" + (options.dir / "data").string(),
      "--web.listen-address=127.0.0.1:" + std::to_string(server.port_)};
  argv.insert(argv.end(), options.flags.begin(), options.flags.end());
  SpawnOptions spawn;
  spawn.output = options.dir / "prometheus.log";
  auto child = ChildProcess::start(argv, spawn);
  if (!child) return std::unexpected(child.error());
  server.process_ = std::move(*child);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!server.process_.running()) {
      return std::unexpected("prometheus exited " +
                             describeWaitStatus(server.process_.exitStatus().value_or(0)) + "\n" +
                             server.logTail());
    }
    auto r = httpGet(server.url() + "/-/ready", std::chrono::seconds(1));
    if (r && r->status == 200) return server;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::unexpected("prometheus not ready within 60 s\n" + server.logTail());
}

std::expected<std::string, std::string> PrometheusServer::query(const std::string& promql) const {
  auto r = httpGet(url() + "/api/v1/query?query=" + urlEncode(promql), std::chrono::seconds(5));
  if (!r) return std::unexpected(r.error());
  if (r->status != 200)
    return std::unexpected("HTTP " + std::to_string(r->status) + ": " + r->body);
  return r->body;
}

std::string PrometheusServer::logTail() const {
  std::ifstream in(dir_ / "prometheus.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

}  // namespace nodewarden::testing
