// nodewarden: the per-node agent. `run` collects and serves; `check-config FILE` validates a
// config the way `run` would; `config` prints the documented defaults (`--deploy`: the
// DaemonSet's config, deploy/config/nodewarden.yaml); `version` prints the version.
//
// Signals: the agent handles SIGTERM/SIGINT (stop, with the flush), SIGHUP (reload) and SIGUSR1,
// SIGUSR2, SIGALRM (ignored) from the moment it is built; before that they are ignored here, so no
// stray one ends the process by its default action during start-up. SIGPIPE is ignored for good: a
// peer that closed its socket is an error return, never the end of the agent.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/json_log.h"
#include "pipeline/allocator.h"

namespace {

constexpr int kExitConfig = 2;

struct Overrides {
  std::optional<std::string> listen, cgroup_root, proc_root, log_root, state_dir, node_name,
      interval, log_level, loki_url, loki_tenant, remote_write_url, journal_dir, kubelet_url,
      apiserver_url, token_file, ca_file, tls_cert_file, tls_key_file, tls_client_ca_file;
  std::vector<std::string> runtime_state_dirs;
  std::vector<std::string> pod_labels;
};

std::string defaultNodeName() {
  if (const char* env = std::getenv("NODE_NAME"); env != nullptr && *env != '\0') return env;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) return host;
  return "";
}

// Applies flags over the file's values. A bad flag value is a ConfigError naming the flag.
std::expected<void, nodewarden::ConfigError> applyOverrides(const Overrides& o,
                                                            nodewarden::Config& c) {
  if (o.listen) c.listen = *o.listen;
  if (o.cgroup_root) c.paths.cgroup_root = *o.cgroup_root;
  if (o.proc_root) c.paths.proc_root = *o.proc_root;
  if (o.log_root) c.paths.log_root = *o.log_root;
  if (o.state_dir) c.paths.state_dir = *o.state_dir;
  if (o.node_name) c.node_name = *o.node_name;
  if (o.log_level) c.log_level = *o.log_level;
  if (o.loki_url) c.loki.url = *o.loki_url;
  if (o.loki_tenant) c.loki.tenant = *o.loki_tenant;
  if (o.remote_write_url) c.remote_write.url = *o.remote_write_url;
  if (o.journal_dir) c.journal.dir = *o.journal_dir;
  if (!o.runtime_state_dirs.empty()) c.paths.runtime_state_dirs = o.runtime_state_dirs;
  if (!o.pod_labels.empty()) c.kubernetes.pod_labels = o.pod_labels;
  if (o.kubelet_url) c.kubernetes.kubelet_url = *o.kubelet_url;
  if (o.apiserver_url) c.kubernetes.apiserver_url = *o.apiserver_url;
  if (o.token_file) c.kubernetes.token_file = *o.token_file;
  if (o.ca_file) c.kubernetes.ca_file = *o.ca_file;
  if (o.tls_cert_file) c.tls.cert_file = *o.tls_cert_file;
  if (o.tls_key_file) c.tls.key_file = *o.tls_key_file;
  if (o.tls_client_ca_file) c.tls.client_ca_file = *o.tls_client_ca_file;
  if (o.interval) {
    auto d = nodewarden::parseDuration(*o.interval);
    if (!d) return std::unexpected(nodewarden::ConfigError{"", 0, "--interval", d.error()});
    c.interval = *d;
  }
  if (c.node_name.empty()) c.node_name = defaultNodeName();
  return {};
}

std::expected<nodewarden::Config, nodewarden::ConfigError> loadConfig(const std::string& file,
                                                                      const Overrides& overrides) {
  nodewarden::Config config;
  if (!file.empty()) {
    auto loaded = nodewarden::loadConfigFile(file);
    if (!loaded) return std::unexpected(loaded.error());
    config = std::move(*loaded);
  }
  if (auto r = applyOverrides(overrides, config); !r) return std::unexpected(r.error());
  if (auto r = nodewarden::validateConfig(config); !r) {
    auto err = r.error();
    if (err.file.empty()) err.file = file;
    return std::unexpected(err);
  }
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM}) std::signal(sig, SIG_IGN);
  CLI::App app{"nodewarden: per-node metrics agent for Kubernetes"};
  app.require_subcommand(1);

  std::string config_file;
  Overrides o;
  bool print_config = false;
  auto* run = app.add_subcommand("run", "Collect and serve /metrics, /healthz, /readyz");
  run->add_option("--config", config_file, "YAML config file (default: embedded defaults)");
  run->add_option("--listen", o.listen, "HTTP listen address host:port (default 0.0.0.0:9465)");
  run->add_option("--tls-cert-file", o.tls_cert_file,
                  "PEM certificate (chain) for TLS on the listener, reloaded when it changes "
                  "(overrides tls.cert_file; needs --tls-key-file)");
  run->add_option("--tls-key-file", o.tls_key_file,
                  "PEM private key for TLS on the listener (overrides tls.key_file)");
  run->add_option("--tls-client-ca-file", o.tls_client_ca_file,
                  "PEM CA bundle; clients must present a certificate it signed "
                  "(overrides tls.client_ca_file)");
  run->add_option("--cgroup-root", o.cgroup_root,
                  "cgroup filesystem root (default /sys/fs/cgroup)");
  run->add_option("--proc-root", o.proc_root, "procfs root (default /proc)");
  run->add_option("--log-root", o.log_root, "kubelet pod log root (default /var/log/pods)");
  run->add_option("--state-dir", o.state_dir, "state directory (default /var/lib/nodewarden)");
  run->add_option("--node-name", o.node_name, "node name (default $NODE_NAME, else host name)");
  run->add_option("--interval", o.interval, "collection period, e.g. 10s (1s..1h)");
  run->add_option("--log-level", o.log_level, "trace, debug, info, warn or error");
  run->add_option("--loki-url", o.loki_url,
                  "Loki push URL, e.g. http://loki:3100/loki/api/v1/push (overrides loki.url)");
  run->add_option("--loki-tenant", o.loki_tenant,
                  "Loki tenant, sent as X-Scope-OrgID (overrides loki.tenant)");
  run->add_option("--remote-write-url", o.remote_write_url,
                  "Prometheus remote-write URL, e.g. http://prometheus:9090/api/v1/write "
                  "(overrides remote_write.url)");
  run->add_option("--journal-dir", o.journal_dir, "journal directory (default /var/log/journal)");
  run->add_option("--kubelet-url", o.kubelet_url,
                  "kubelet base URL (default https://$NODE_IP:10250)");
  run->add_option("--apiserver-url", o.apiserver_url, "API server URL (default: in-cluster)");
  run->add_option("--token-file", o.token_file, "bearer token file (default: service account)");
  run->add_option("--ca-file", o.ca_file, "CA bundle for the kubelet and API server");
  run->add_option("--runtime-state-dir", o.runtime_state_dirs,
                  "containerd/CRI-O state root (repeatable; default /run/containerd and "
                  "/run/containers/storage)");
  run->add_option("--pod-label", o.pod_labels,
                  "pod label key to export on log streams and nodewarden_pod_labels (repeatable; "
                  "overrides kubernetes.pod_labels), e.g. app.kubernetes.io/name");
  run->add_flag("--print-config", print_config, "print the effective config as YAML and exit");

  std::string check_file;
  auto* check = app.add_subcommand("check-config", "Validate a config file and exit");
  check->add_option("file", check_file, "YAML config file")->required();

  bool deploy = false;
  auto* defaults =
      app.add_subcommand("config", "Print the built-in defaults as a documented config");
  defaults->add_flag("--deploy", deploy,
                     "print the DaemonSet's config (deploy/config/nodewarden.yaml) instead");

  auto* version = app.add_subcommand("version", "Print the version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitConfig;
  }

  if (version->parsed()) {
    std::cout << "nodewarden " << NODEWARDEN_VERSION << "\n";
    return 0;
  }
  if (defaults->parsed()) {
    std::cout << (deploy ? nodewarden::deployConfigYaml() : nodewarden::defaultConfigYaml());
    return 0;
  }
  if (check->parsed()) {
    auto c = loadConfig(check_file, Overrides{});
    if (!c) {
      std::cerr << "nodewarden: config error: " << c.error().message() << "\n";
      return kExitConfig;
    }
    std::cout << check_file << ": ok\n";
    return 0;
  }

  auto config = loadConfig(config_file, o);
  nodewarden::setupJsonLogging(config ? config->log_level : "info");
  if (!config) {
    spdlog::error("config error: {}", config.error().message());
    return kExitConfig;
  }
  if (print_config) {
    std::cout << nodewarden::configYaml(*config);
    return 0;
  }
  // Two malloc arenas and fixed mmap/trim thresholds (pipeline/allocator.h says why).
  if (!nodewarden::tuneAllocator()) spdlog::warn("mallopt refused a setting; glibc defaults apply");
  const auto files = nodewarden::raiseFileLimit();
  spdlog::info("open file limit {}", files);
  nodewarden::Agent agent(std::move(*config));
  if (!config_file.empty()) {
    agent.setReloader([config_file, o] { return loadConfig(config_file, o); }, config_file);
  }
  return agent.run();
}
