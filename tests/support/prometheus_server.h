// PrometheusServer: the real Prometheus (/usr/bin/prometheus) for integration tests, on a loopback
// port with its TSDB in a temporary directory, and its HTTP query API.
//
// What a reader gets wrong: start() returns once /-/ready answers 200, which is before any scrape
// or remote-write request has landed; tests wait for their series themselves.
#pragma once

#include <chrono>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/child_process.h"

namespace nodewarden::testing {

struct PrometheusServerOptions {
  std::string binary = "/usr/bin/prometheus";
  std::filesystem::path dir;       // prometheus.yml, data/ and prometheus.log go here
  std::string config_yaml;         // the whole prometheus.yml
  int port = 0;                    // 0: a free loopback port
  std::vector<std::string> flags;  // extra, e.g. --web.enable-remote-write-receiver
};

class PrometheusServer {
 public:
  static std::expected<PrometheusServer, std::string> start(PrometheusServerOptions options);

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // GET /api/v1/query?query=...; the JSON body on a 200 "success", else an error.
  [[nodiscard]] std::expected<std::string, std::string> query(const std::string& promql) const;
  // The last lines of its log, for failure messages.
  [[nodiscard]] std::string logTail() const;
  void stop() { process_.stop(std::chrono::seconds(5)); }

 private:
  std::filesystem::path dir_;
  int port_ = 0;
  ChildProcess process_;
};

}  // namespace nodewarden::testing
