#include "agent/agent.h"

#include <fcntl.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "agent/config_reload.h"
#include "agent/detector_stage.h"
#include "agent/http_server.h"
#include "agent/job_outcomes.h"
#include "agent/json_log.h"
#include "agent/log_pipeline.h"
#include "agent/metadata_source_metrics.h"
#include "agent/metrics_publication.h"
#include "agent/pod_metadata_metrics.h"
#include "agent/readiness.h"
#include "agent/remote_write_pipeline.h"
#include "agent/state_dir.h"
#include "agent/workload_series.h"
#include "collectors/cgroup/cgroup_collector.h"
#include "collectors/node/node_collector.h"
#include "collectors/pods/apiserver_pods.h"
#include "collectors/pods/cronjob_lookup.h"
#include "collectors/pods/kubelet_pods.h"
#include "collectors/pods/metadata_chain.h"
#include "collectors/pods/runtime_state_metadata.h"
#include "exporters/kube/placement_feed.h"
#include "exporters/prometheus/text_renderer.h"
#include "exporters/signals/signals_json.h"
#include "pipeline/detector/detector.h"
#include "pipeline/retry_backoff.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

std::uint64_t raiseFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur;
}

namespace {

// A component whose state dir could not be used tries again after 1 s, then twice as long each
// time, up to 30 s (jittered: the nodes of a cluster whose state disks failed together do not
// retry in step). Trying costs a mkdir and a probe file.
constexpr std::chrono::milliseconds kStateRetryFirst{1000};
constexpr std::chrono::milliseconds kStateRetryMax{30000};

// The signals the agent handles. Every other one keeps its default action (SIGQUIT's core dump,
// SIGKILL); SIGPIPE is ignored in main.
constexpr int kHandledSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};

const char* signalName(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    case SIGALRM:
      return "SIGALRM";
    default:
      return "signal";
  }
}

std::string joinKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

}  // namespace

class Agent::Impl {
 public:
  explicit Impl(Config config)
      : config_(std::move(config)),
        errors_(self_.registry(), std::chrono::seconds(60)),
        renderer_(config_.paths.proc_root),
        timer_(io_),
        signals_(io_) {
    // Caught from here on: a stray SIGHUP or SIGUSR1 during start-up must not end the agent
    // either (main ignores them until now).
    for (int sig : kHandledSignals) signals_.add(sig);
    auto& reg = self_.registry();
    auto& received = prometheus::BuildCounter()
                         .Name("nodewarden_signals_received_total")
                         .Help(
                             "Signals received, by name. SIGTERM and SIGINT stop the agent, SIGHUP "
                             "reloads the config file; the others are ignored.")
                         .Register(reg);
    for (int sig : kHandledSignals)
      signal_counts_[sig] = &received.Add({{"signal", signalName(sig)}});
    auto& reloads = prometheus::BuildCounter()
                        .Name("nodewarden_config_reloads_total")
                        .Help(
                            "Config reloads (SIGHUP), by result: success (the file was valid; what "
                            "can change at run time was applied) or failure (the running config "
                            "stays).")
                        .Register(reg);
    reloads_ok_ = &reloads.Add({{"result", "success"}});
    reloads_failed_ = &reloads.Add({{"result", "failure"}});
    prometheus::BuildGauge()
        .Name("nodewarden_build_info")
        .Help("Always 1; labels carry the agent's version and node.")
        .Register(reg)
        .Add({{"version", NODEWARDEN_VERSION}, {"node", config_.node_name}})
        .Set(1);
    auto& duration = prometheus::BuildGauge()
                         .Name("nodewarden_collection_duration_seconds")
                         .Help("Wall time of the last collection cycle, by collector.")
                         .Register(reg);
    auto& cycles = prometheus::BuildCounter()
                       .Name("nodewarden_collection_cycles_total")
                       .Help("Collection cycles run.")
                       .Register(reg);
    cycles_ = &cycles.Add({});
    overruns_ = &prometheus::BuildCounter()
                     .Name("nodewarden_collection_overruns_total")
                     .Help("Cycles that took longer than the interval (the next one was skipped).")
                     .Register(reg)
                     .Add({});
    auto& cgroups = prometheus::BuildGauge()
                        .Name("nodewarden_cgroups")
                        .Help("Pod and container cgroups tracked, by kind.")
                        .Register(reg);
    pods_gauge_ = &cgroups.Add({{"kind", "pod"}});
    containers_gauge_ = &cgroups.Add({{"kind", "container"}});
    auto& unnamed = prometheus::BuildGauge()
                        .Name("nodewarden_metadata_unnamed_cgroups")
                        .Help(
                            "Pod and container cgroups no metadata source names yet: held out of "
                            "/metrics and remote write (held), or past the hold and exported "
                            "with the names known (exported).")
                        .Register(reg);
    unnamed_held_ = &unnamed.Add({{"state", "held"}});
    unnamed_exported_ = &unnamed.Add({{"state", "exported"}});
    unknown_images_ = &prometheus::BuildGauge()
                           .Name("nodewarden_metadata_unknown_image_containers")
                           .Help(
                               "Containers exported past the naming hold whose image no metadata "
                               "source knows: their series carry image=<collectors.pods."
                               "unknown_image> (last cycle).")
                           .Register(reg)
                           .Add({});
    open_files_ = &prometheus::BuildGauge()
                       .Name("nodewarden_cgroup_open_files")
                       .Help("Cgroup interface files held open for reading.")
                       .Register(reg)
                       .Add({});
    series_ = &prometheus::BuildGauge()
                   .Name("nodewarden_series")
                   .Help("Container and node series in the last /metrics response.")
                   .Register(reg)
                   .Add({});
    http_connections_ = &prometheus::BuildGauge()
                             .Name("nodewarden_http_connections")
                             .Help("Connections open to the agent's HTTP listener (at the cycle).")
                             .Register(reg)
                             .Add({});
    render_duration_ = &prometheus::BuildGauge()
                            .Name("nodewarden_metrics_render_duration_seconds")
                            .Help(
                                "Time to render the container and node series of the last "
                                "/metrics response.")
                            .Register(reg)
                            .Add({});
    metadata_ = buildMetadata();
    if (metadata_) {
      source_metrics_ = std::make_unique<MetadataSourceMetrics>(reg);
      pod_metrics_ =
          std::make_unique<PodMetadataMetrics>(workload_.registry(), config_.kubernetes.pod_labels);
      pod_stage_ = std::make_unique<PodSeriesStage>(*pod_metrics_, metadata_.get(), workload_);
    }
    if (config_.cgroup.enabled) {
      CgroupCollectorOptions o = config_.cgroup;  // max_depth, root_search_interval, run_delay
      o.metadata = metadata_.get();
      // A new pod's cgroups wait for its names rather than being exported anonymous and renamed
      // (each series split in two): at least one kubelet refresh interval and until two kubelet
      // fetches asked for after the cgroup was found are in, at most namingHold().
      if (metadata_) {
        o.hold_unnamed = namingHold(config_.interval, config_.pods.kubelet_source.refresh_interval);
      }
      if (kubelet_source_ != nullptr) {
        o.listings_since = [k = kubelet_source_](std::chrono::steady_clock::time_point t) {
          return k->listingsSince(t);
        };
        o.hold_at_least = config_.pods.kubelet_source.refresh_interval;
      }
      o.cgroup_root = config_.paths.cgroup_root;
      o.proc_root = config_.paths.proc_root;
      o.log_root = config_.paths.log_root;
      auto c = std::make_unique<CgroupCollector>(std::move(o), errors_);
      cgroup_ = c.get();
      addCollector(std::move(c), duration);
    }
    if (config_.node.enabled) {
      addCollector(std::make_unique<NodeCollector>(config_.paths.proc_root, errors_), duration);
    }
    if (config_.detector.enabled) {
      detector_ = std::make_unique<detector::Detector>(detectorOptions(config_));
      DetectorStageGauges gauges;
      gauges.duration = &duration.Add({{"collector", "detector"}});
      auto& tracked = prometheus::BuildGauge()
                          .Name("nodewarden_detector_tracked")
                          .Help("Pods and containers the detector keeps windows and baselines for.")
                          .Register(reg);
      gauges.pods = &tracked.Add({{"kind", "pod"}});
      gauges.containers = &tracked.Add({{"kind", "container"}});
      gauges.untracked = &prometheus::BuildGauge()
                              .Name("nodewarden_detector_untracked_cgroups")
                              .Help(
                                  "Cgroups seen but not tracked because "
                                  "detector.max_containers was reached (since start).")
                              .Register(reg)
                              .Add({});
      detector_stage_ = std::make_unique<DetectorStage>(*detector_, gauges);
    }
    publication_ =
        std::make_unique<MetricsPublication>(renderer_, reg, workload_, detector_stage_.get(),
                                             cycles_, config_.pods.unknown_image, unknown_images_);
  }

  void setReloader(Agent::Reloader reloader, std::string source) {
    reloader_ = std::move(reloader);
    reload_source_ = std::move(source);
  }

  ~Impl() { ignoreSignalsFromNowOn(); }  // also when run() never ran or returned early

  int run() {
    HttpServerOptions http;
    http.tls = config_.tls;
    http.errors = &errors_;
    auto server = HttpServer::start(config_.listen, http);
    if (!server) {
      spdlog::error("cannot start HTTP server: {}", server.error());
      return 1;
    }
    http_ = std::move(*server);
    // Only config errors stop the start here; what needs the state dir starts below, or retries.
    if (config_.logs.enabled || config_.journal.enabled) {
      auto logs = LogPipeline::create(config_, self_, errors_, metadata_.get());
      if (!logs) {
        spdlog::error("cannot start the log pipeline: {}", logs.error());
        http_->stop();
        return 1;
      }
      logs_ = std::move(*logs);
    }
    if (!config_.remote_write.url.empty()) {
      auto rw = RemoteWritePipeline::create(config_, self_, errors_);
      if (!rw) {
        spdlog::error("cannot start remote write: {}", rw.error());
        http_->stop();
        return 1;
      }
      remote_write_ = std::move(*rw);
      remote_write_stage_ = std::make_unique<RemoteWriteStage>(*publication_, *remote_write_);
    }
    if (config_.jobs.enabled) {
      http_->handle("/jobs", [this](const HttpRequest& r) { return jobsJson(r); });
    }
    if (detector_ && config_.placement.enabled) {
      auto feed = buildPlacement();
      if (!feed) {
        spdlog::error("cannot start the placement feed: {}", feed.error());
        http_->stop();
        return 1;
      }
      placement_ = std::move(*feed);
      detector_stage_->setPlacement(placement_.get());
    }
    if (detector_) {
      http_->handle("/signals", [this](const HttpRequest& r) { return signals(r); });
    }
    wireConsumers();
    http_->handleStream("/metrics", [this](const HttpRequest&, ResponseWriter& w) {
      metrics(w, Exposition::kFull);
    });
    // The kubelet's cAdvisor path, for a scrape that stands in for it (job="kubelet").
    http_->handleStream("/metrics/cadvisor", [this](const HttpRequest&, ResponseWriter& w) {
      metrics(w, Exposition::kCadvisor);
    });
    // On the io thread: probes never queue behind /signals or /jobs on the pool.
    http_->handleInline("/healthz", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "ok\n", false};
    });
    http_->handleInline("/readyz", [this](const HttpRequest&) {
      auto answer = readiness_.answer();
      return HttpResponse{answer.ready ? 200 : 503, "text/plain", std::move(answer.body), false};
    });
    spdlog::info("nodewarden {} listening on {} (port {}{}), collecting every {} ms from {}",
                 NODEWARDEN_VERSION, config_.listen, http_->port(),
                 config_.tls.cert_file.empty() ? "" : ", TLS", config_.interval.count(),
                 config_.paths.cgroup_root.string());

    waitForSignal();
    // The state dir's users, in this order (Job outcomes submit their events to the log path):
    // each starts now, or is reported down on /readyz and tries again (see tryStart).
    if (logs_) {
      addStateUser(
          "logs", [this] { return logs_->open(); }, [this] { startLogs(); });
    }
    if (remote_write_) {
      addStateUser(
          "remote_write", [this] { return remote_write_->open(); },
          [this] { remote_write_->start(); });
    }
    if (config_.jobs.enabled) {
      addStateUser(
          "jobs",
          [this]() -> std::expected<void, std::string> {
            const auto file = config_.paths.state_dir / "jobs" / "outcomes.jsonl";
            if (auto r = checkStateFile(file); !r) return std::unexpected(r.error());
            return {};
          },
          [this] { startJobs(); });
    }
    next_ = std::chrono::steady_clock::now();
    asio::post(io_, [this] { cycle(); });
    io_.run();
    // Destroying (or clearing) the signal_set puts SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM back to
    // SIG_DFL, which ends the process; the shutdown below still joins threads for a while. Clear
    // it now and ignore them until exit, so a late SIGHUP cannot kill a clean shutdown.
    ignoreSignalsFromNowOn();
    for (auto& w : log_watches_) {
      asio::error_code ec;
      w->close(ec);
    }
    log_watches_.clear();
    // Logs first: spool the open batch and commit, then stop sending (the spool keeps the rest).
    if (logs_) logs_->stop(std::chrono::milliseconds(1200));
    // Queued cycles are encoded into the spool first; what is unsent is sent after a restart.
    if (remote_write_) remote_write_->stop();
    http_->stop();
    spdlog::info("stopped");
    return 0;
  }

 private:
  // A component that keeps state in the state dir: started once open succeeds; until then down on
  // /readyz with open's reason, counted in nodewarden_errors_total{component,
  // reason="state_dir_unusable"}, and tried again with backoff (and at once on SIGHUP).
  struct StateUser {
    std::string component;
    std::function<std::expected<void, std::string>()> open;
    std::function<void()> started;
    std::unique_ptr<asio::steady_timer> timer;
    std::chrono::milliseconds backoff = kStateRetryFirst;
    bool up = false;
  };

  void addStateUser(std::string component, std::function<std::expected<void, std::string>()> open,
                    std::function<void()> started) {
    auto u = std::make_unique<StateUser>();
    u->component = std::move(component);
    u->open = std::move(open);
    u->started = std::move(started);
    u->timer = std::make_unique<asio::steady_timer>(io_);
    state_users_.push_back(std::move(u));
    tryStart(*state_users_.back());
  }

  void tryStart(StateUser& u) {
    if (u.up) return;
    auto opened = u.open();
    if (opened) {
      u.up = true;
      if (readiness_.isDown(u.component)) {
        spdlog::info("{}: the state dir is usable now; started", u.component);
      }
      readiness_.setUp(u.component);
      u.started();
      return;
    }
    readiness_.setDown(u.component, opened.error());
    // Logged at most once a minute (ErrorReporter), counted every try.
    errors_.report(u.component, "state_dir_unusable",
                   opened.error() + " (metrics go on; this part retries and /readyz says why)");
    const auto wait = jitteredWait(u.backoff, std::chrono::milliseconds(0), rng_);
    u.backoff = std::min(u.backoff * 2, kStateRetryMax);
    u.timer->expires_after(wait);
    u.timer->async_wait([this, &u](const asio::error_code& ec) {
      if (!ec) tryStart(u);
    });
  }

  // On SIGHUP: whoever waits for the state dir tries again now (an operator who fixed the disk
  // need not wait for the backoff).
  void retryStateUsersNow() {
    for (auto& u : state_users_) {
      if (u->up) continue;
      u->backoff = kStateRetryFirst;
      u->timer->cancel();
      tryStart(*u);
    }
  }

  void startLogs() {
    // A batch waiting for the shipper goes on as soon as the shipper has sent the one before.
    logs_->onShipped([this] {
      asio::post(io_, [this] {
        if (logs_->waitingForShipper()) logTick();
      });
    });
    logs_->start();
    asio::post(io_, [this] { logTick(); });
    for (int fd : logs_->watchFds()) watchLogFd(fd);
  }

  void startJobs() {
    JobOutcomeSources js;
    js.kubelet = kubelet_source_;
    js.apiserver = apiserver_source_;
    js.metadata = metadata_.get();
    js.cgroup = cgroup_;
    js.logs = logs_.get();  // events wait in the tracker while the log path is not open
    jobs_ = std::make_unique<JobOutcomes>(config_, js, workload_, errors_);
    wireConsumers();
    jobs_started_.store(true, std::memory_order_release);
    asio::post(io_, [this] { jobTick(); });
  }

  HttpResponse jobsJson(const HttpRequest& r) {
    if (!jobs_started_.load(std::memory_order_acquire)) {
      return HttpResponse{503, "text/plain", readiness_.answer().body, false};
    }
    return jobs_->jobsJson(r);
  }

  void ignoreSignalsFromNowOn() {
    asio::error_code ec;
    signals_.cancel(ec);
    signals_.clear(ec);
    for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGALRM}) std::signal(sig, SIG_IGN);
  }

  void waitForSignal() {
    signals_.async_wait([this](const asio::error_code& ec, int sig) {
      if (ec) return;
      // Counted after what it did is logged: a reader of the counter finds the log line written.
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("{} received, shutting down", signalName(sig));
        signal_counts_[sig]->Increment();
        io_.stop();  // run() then spools, commits and stops each part in order
        return;
      }
      if (sig == SIGHUP) {
        reload();
      } else if (signals_logged_.insert(sig).second) {
        spdlog::info(
            "{} received and ignored (SIGHUP reloads the config, SIGTERM stops); further ones are "
            "only counted in nodewarden_signals_received_total",
            signalName(sig));
      }
      signal_counts_[sig]->Increment();
      waitForSignal();
    });
  }

  // SIGHUP: reads the config file again (with the same flags over it), applies what can change at
  // run time (agent/config_reload.h) and names what needs a restart. A file that does not load or
  // validate changes nothing.
  void reload() {
    if (!reloader_) {
      spdlog::warn("SIGHUP: no --config file to reload; the running config stays");
      retryStateUsersNow();
      return;
    }
    auto next = reloader_();
    std::expected<ReloadPlan, ConfigError> plan =
        next ? planReload(config_, *next) : std::unexpected(next.error());
    if (!plan) {
      spdlog::error("config reload failed, the running config stays: {}", plan.error().message());
      reloads_failed_->Increment();
      retryStateUsersNow();
      return;
    }
    const auto& applied = plan->applied;
    const auto changed = [&](std::string_view prefix) {
      return std::ranges::any_of(applied,
                                 [&](const std::string& k) { return k.starts_with(prefix); });
    };
    if (changed("log_level")) {
      spdlog::set_level(parseLogLevel(plan->result.log_level).value_or(spdlog::level::info));
    }
    if (detector_ && changed("detector.")) detector_->retune(detectorOptions(plan->result));
    if (placement_ && changed("placement.")) {
      placement_->setThresholds(kube::PlacementThresholds{
          .on_score = plan->result.placement.on_score,
          .off_score = plan->result.placement.off_score,
          .on_hold = plan->result.placement.on_hold,
          .off_hold = plan->result.placement.off_hold,
          .min_taint_duration = plan->result.placement.min_taint_duration});
    }
    // Key by key: other threads read other fields of config_ (JobOutcomes the node name).
    applyLiveConfigKeys(config_, plan->result, applied);
    if (applied.empty()) {
      spdlog::info("config reloaded from {}: nothing to apply", reload_source_);
    } else {
      spdlog::info("config reloaded from {}: applied {}", reload_source_, joinKeys(applied));
    }
    if (!plan->needs_restart.empty()) {
      spdlog::warn(
          "config reload: changed but needs a restart to take effect: {} (the running values stay "
          "until then)",
          joinKeys(plan->needs_restart));
    }
    reloads_ok_->Increment();  // after the log lines (see waitForSignal)
    retryStateUsersNow();
  }

  struct Timed {
    std::unique_ptr<MetricCollector> collector;
    prometheus::Gauge* duration;
  };

  // The API server's URL, token and CA: as configured, else the in-cluster defaults (the service
  // account's files, KUBERNETES_SERVICE_HOST/_PORT). For the pod watch and the placement feed.
  std::expected<pods::ApiServerPodsOptions, std::string> apiServer() const {
    pods::ApiServerPodsOptions ao;
    ao.url = config_.kubernetes.apiserver_url;
    ao.token_file = config_.kubernetes.token_file.string();
    ao.ca_file = config_.kubernetes.ca_file.string();
    ao.node_name = config_.node_name;
    auto env = [](const char* name) -> std::optional<std::string> {
      const char* v = std::getenv(name);
      return v == nullptr ? std::nullopt : std::optional<std::string>(v);
    };
    return pods::withInClusterDefaults(ao, env, kServiceAccountDir);
  }

  static constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

  // The pod metadata sources in their order: the runtime's state, the kubelet, the API server.
  // A source whose endpoint is unknown (not in a cluster, no URL given) stays off, said once.
  // With the API server known, the kubelet and API-server sources share one CronJob lookup.
  std::unique_ptr<ContainerMetadata> buildMetadata() {
    metadata_started_ = std::chrono::steady_clock::now();
    const auto in_cluster_file = [&](const std::filesystem::path& configured, const char* name) {
      if (!configured.empty()) return configured.string();
      const auto p = std::filesystem::path(kServiceAccountDir) / name;
      std::error_code ec;
      return std::filesystem::exists(p, ec) ? p.string() : std::string();
    };

    // The API server first: its endpoint is also where the kubelet source's Jobs are looked up.
    std::unique_ptr<pods::ApiServerPodWatcher> watcher;
    std::shared_ptr<pods::CronJobLookup> cronjobs;
    if (config_.pods.apiserver) {
      auto resolved = apiServer();
      if (!resolved || resolved->url.empty()) {
        spdlog::info("pod metadata: API server source off ({})",
                     resolved ? "no URL" : resolved.error());
      } else {
        pods::CronJobLookupOptions co;
        co.url = resolved->url;
        co.token_file = resolved->token_file;
        co.ca_file = resolved->ca_file;
        if (auto lookup = pods::ApiServerCronJobLookup::create(co, errors_)) {
          cronjobs = std::move(*lookup);
        } else {
          spdlog::warn("pod metadata: Jobs matched to CronJobs by name only: {}", lookup.error());
        }
        resolved->cronjobs = cronjobs;
        if (auto w = pods::ApiServerPodWatcher::create(*resolved, errors_)) {
          watcher = std::move(*w);
          spdlog::info("pod metadata: API server source {}", resolved->url);
        } else {
          spdlog::warn("pod metadata: API server source off: {}", w.error());
          cronjobs.reset();  // no API server source, no lookups either: the naming rule answers
        }
      }
    }

    auto chain = std::make_unique<pods::MetadataChain>();
    if (config_.pods.runtime_state) {
      std::vector<std::filesystem::path> roots(config_.paths.runtime_state_dirs.begin(),
                                               config_.paths.runtime_state_dirs.end());
      auto runtime = std::make_unique<pods::RuntimeStateMetadata>(std::move(roots), errors_);
      runtime_source_ = runtime.get();
      chain->add(std::move(runtime));
    }
    if (config_.pods.kubelet) {
      std::string url = config_.kubernetes.kubelet_url;
      if (const char* ip = std::getenv("NODE_IP"); url.empty() && ip != nullptr && *ip != '\0') {
        const std::string host(ip);
        url =
            "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":10250";
      }
      if (url.empty()) {
        spdlog::info("pod metadata: kubelet source off (no kubernetes.kubelet_url, no NODE_IP)");
      } else {
        pods::KubeletPodsOptions ko;
        ko.url = url;
        ko.token_file = in_cluster_file(config_.kubernetes.token_file, "token");
        ko.ca_file = config_.kubernetes.ca_file.string();
        ko.insecure_skip_verify = config_.kubernetes.kubelet_insecure_skip_verify;
        if (auto client = pods::KubeletPodsClient::create(ko)) {
          pods::KubeletPodsMetadataOptions mo = config_.pods.kubelet_source;
          mo.cronjobs = cronjobs;
          auto kubelet =
              std::make_unique<pods::KubeletPodsMetadata>(std::move(*client), errors_, mo);
          kubelet_source_ = kubelet.get();
          chain->add(std::move(kubelet));
          spdlog::info("pod metadata: kubelet source {}", url);
        } else {
          spdlog::warn("pod metadata: kubelet source off: {}", client.error());
        }
      }
    }
    if (watcher) {
      watcher->start();
      apiserver_source_ = watcher.get();
      chain->add(std::move(watcher));
    }
    if (chain->empty()) return nullptr;
    return chain;
  }

  // The metadata sources' health gauges (the pods' info and label series are PodSeriesStage's).
  void updateMetadataMetrics() {
    if (!metadata_) return;
    const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
    if (runtime_source_ != nullptr) {
      source_metrics_->set("runtime",
                           {runtime_source_->synced(), std::nullopt, runtime_source_->podCount()});
    }
    if (kubelet_source_ != nullptr) {
      const auto staleness = kubelet_source_->staleness();
      source_metrics_->set(
          "kubelet",
          {staleness.has_value(),
           seconds(staleness ? *staleness : std::chrono::steady_clock::now() - metadata_started_),
           kubelet_source_->pods().size()});
    }
    if (apiserver_source_ != nullptr) {
      source_metrics_->set("apiserver",
                           {apiserver_source_->synced(), seconds(apiserver_source_->staleness()),
                            apiserver_source_->size()});
    }
  }

  // The consumers of a finished snapshot, in the cycle's order. What matters: the detector and the
  // pod series before the publication, so /metrics and remote write show this cycle's detector
  // state and pods next to this cycle's snapshot; remote write after it, since it sends what was
  // just published. Job outcomes only read the tracked pods' readings: any place would do.
  // Called when the set changes (at start, when Job outcomes start); collection thread only.
  void wireConsumers() {
    consumers_.clear();
    for (SnapshotConsumer* c : std::initializer_list<SnapshotConsumer*>{
             jobs_.get(), detector_stage_.get(), pod_stage_.get(), publication_.get(),
             remote_write_stage_.get()}) {
      if (c != nullptr) consumers_.push_back(c);
    }
  }

  void addCollector(std::unique_ptr<MetricCollector> c,
                    prometheus::Family<prometheus::Gauge>& fam) {
    auto* g = &fam.Add({{"collector", std::string(c->name())}});
    collectors_.push_back({std::move(c), g});
  }

  void cycle() {
    using Clock = std::chrono::steady_clock;
    if (metadata_) metadata_->refresh();
    snapshot_.reset();
    for (auto& t : collectors_) {
      const auto start = Clock::now();
      t.collector->collect(snapshot_);
      t.duration->Set(std::chrono::duration<double>(Clock::now() - start).count());
    }
    snapshot_.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    if (cgroup_ != nullptr) {
      const auto st = cgroup_->stats();
      pods_gauge_->Set(static_cast<double>(st.pods));
      containers_gauge_->Set(static_cast<double>(st.containers));
      open_files_->Set(static_cast<double>(st.open_files));
      unnamed_held_->Set(static_cast<double>(st.unnamed_held));
      unnamed_exported_->Set(static_cast<double>(st.unnamed_exported));
    }
    updateMetadataMetrics();
    http_connections_->Set(static_cast<double>(http_->connections()));
    for (SnapshotConsumer* c : consumers_) c->consume(snapshot_);
    if (!collected_) {
      collected_ = true;
      readiness_.firstCollectionDone();
      spdlog::info("first collection done: ready");
    }

    // Fixed-rate schedule; a cycle that overran skips the missed slots instead of bunching up.
    next_ += config_.interval;
    const auto now = Clock::now();
    if (next_ <= now) {
      overruns_->Increment();
      while (next_ <= now) next_ += config_.interval;
    }
    timer_.expires_at(next_);
    timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) cycle();
    });
  }

  // Wakes the log path when a watched descriptor (inotify, the journal) is readable, so a new or
  // rotated file is opened within milliseconds rather than at the next timer tick. At most one
  // wake-up per 20 ms: IN_MODIFY fires on every write of every container.
  void watchLogFd(int fd) {
    // The descriptor stays the pipeline's: asio gets a duplicate of its own (same open file, so
    // the same readiness) and closes only that.
    const int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return;
    auto sd = std::make_shared<asio::posix::stream_descriptor>(io_, dup_fd);
    log_watches_.push_back(sd);
    armLogWatch(sd);
  }

  void armLogWatch(const std::shared_ptr<asio::posix::stream_descriptor>& sd) {
    sd->async_wait(
        asio::posix::stream_descriptor::wait_read, [this, sd](const asio::error_code& ec) {
          if (ec) return;
          logs_->tick();
          auto pause = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(20));
          pause->async_wait([this, sd, pause](const asio::error_code& e) {
            if (!e) armLogWatch(sd);
          });
        });
  }

  // Job pods' statuses and final readings, between collection cycles.
  void jobTick() {
    // The kubelet's list is taken in here too (a fetch is never waited for), so an end is seen
    // within a poll of the fetch that brought it, not at the next collection cycle.
    if (kubelet_source_ != nullptr) kubelet_source_->refresh();
    jobs_->poll();
    jobs_timer_.expires_after(config_.jobs.poll_interval);
    jobs_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) jobTick();
    });
  }

  // The log path's turn on the loop: every 200 ms, at once again while a backlog is read, and
  // when the shipper has sent a batch while one waits for it.
  void logTick() {
    const bool more = logs_->tick();
    if (more) {
      asio::post(io_, [this] { logTick(); });
      return;
    }
    // A batch waiting for the shipper is woken by it (onShipped, which calls this again: the
    // timer's next expiry replaces this one); the timer is the fallback.
    log_timer_.expires_after(std::chrono::milliseconds(logs_->waitingForShipper() ? 50 : 200));
    log_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec) logTick();
    });
  }

  static detector::DetectorOptions detectorOptions(const Config& c) {
    detector::DetectorOptions o = c.detector;
    o.node = c.node_name;
    o.interval = c.interval;
    return o;
  }

  // The API server as the pod sources find it (in-cluster defaults unless configured); dry run
  // needs none.
  std::expected<std::unique_ptr<kube::PlacementFeed>, std::string> buildPlacement() {
    // The placement section is the feed's options; the node and the API server are the agent's.
    kube::PlacementOptions o = config_.placement;
    o.node_name = config_.node_name;
    if (!o.dry_run) {
      auto resolved = apiServer();
      if (!resolved) return std::unexpected("placement: " + resolved.error());
      if (resolved->url.empty()) {
        return std::unexpected(
            "placement: no API server (set kubernetes.apiserver_url, run in a cluster, or use "
            "placement.dry_run)");
      }
      o.apiserver_url = resolved->url;
      o.token_file = resolved->token_file;
      o.ca_file = resolved->ca_file;
    }
    auto feed = kube::PlacementFeed::create(std::move(o), errors_, self_.registry());
    if (feed) {
      spdlog::info("placement feed on for node {}{}", config_.node_name,
                   config_.placement.dry_run ? " (dry run: patches are logged, not sent)" : "");
    }
    return feed;
  }

  PlacementView placementView() const {
    if (!placement_) return PlacementView{};
    const auto st = placement_->status();
    return PlacementView{true, st.dry_run, st.tainted, st.condition_status, st.last_error};
  }

  HttpResponse signals(const HttpRequest& r) {
    const auto state = detector_stage_->latest();
    if (!state) return HttpResponse{503, "text/plain", "first collection not finished\n", false};
    SignalsQuery q;
    q.namespace_name = r.param("namespace");
    q.pod = r.param("pod");
    q.verdicts_only = r.param("verdicts") == "only";
    return HttpResponse{200, "application/json", signalsJson(*state, placementView(), q), false};
  }

  // Streams the exposition of the latest published cycle in 64 KiB chunks: the text of a large
  // node is never held whole.
  void metrics(ResponseWriter& w, Exposition exposition) {
    const PublishedCycle cycle = publication_->latest();
    w.begin(200, "text/plain; version=0.0.4; charset=utf-8", true);
    const auto start = std::chrono::steady_clock::now();
    // A client gone (closed, or cut off at a deadline) stops the render at the next chunk: it
    // must not cost a whole render nobody reads.
    struct ClientGone {};
    std::size_t n = 0;
    try {
      n = publication_->render(
          cycle,
          [&](std::string_view chunk) {
            if (w.gone()) throw ClientGone{};
            w.write(chunk);
          },
          exposition);
    } catch (const ClientGone&) {
      return;
    }
    if (cycle.snapshot && exposition == Exposition::kFull) {
      render_duration_->Set(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      series_->Set(static_cast<double>(n));
    }
  }

  Config config_;
  SelfMetrics self_;
  ErrorReporter errors_;
  TextRenderer renderer_;
  std::unique_ptr<ContainerMetadata> metadata_;  // before the collectors that use it
  // The sources in metadata_ (owned there), null when off; for their health gauges.
  pods::RuntimeStateMetadata* runtime_source_ = nullptr;
  pods::KubeletPodsMetadata* kubelet_source_ = nullptr;
  pods::ApiServerPodWatcher* apiserver_source_ = nullptr;
  std::chrono::steady_clock::time_point metadata_started_;
  std::unique_ptr<MetadataSourceMetrics> source_metrics_;  // with metadata_ only
  // The pod and Job series (the writers below and jobs_ keep theirs here); before them.
  WorkloadSeries workload_;
  std::unique_ptr<PodMetadataMetrics> pod_metrics_;  // with metadata_ only
  std::unique_ptr<PodSeriesStage> pod_stage_;        // with metadata_ only
  std::vector<Timed> collectors_;
  CgroupCollector* cgroup_ = nullptr;
  Snapshot snapshot_;  // filled by the collectors each cycle; collection thread only

  asio::io_context io_;
  asio::steady_timer timer_;
  asio::steady_timer log_timer_{io_};
  asio::steady_timer jobs_timer_{io_};
  asio::signal_set signals_;
  std::unique_ptr<LogPipeline> logs_;
  std::unique_ptr<JobOutcomes> jobs_;  // after logs_: it holds a pointer to it
  std::unique_ptr<detector::Detector> detector_;
  std::unique_ptr<kube::PlacementFeed> placement_;  // with detector_ and placement.enabled
  std::unique_ptr<DetectorStage> detector_stage_;   // with detector_
  std::unique_ptr<MetricsPublication> publication_;
  // Null when remote_write.url is empty. Declared after the publication and what it reads: its
  // encoder thread renders with them, so it is destroyed (and stopped) first.
  std::unique_ptr<RemoteWritePipeline> remote_write_;
  std::unique_ptr<RemoteWriteStage> remote_write_stage_;  // with remote_write_
  std::vector<SnapshotConsumer*> consumers_;  // see wireConsumers(); collection thread only
  std::vector<std::shared_ptr<asio::posix::stream_descriptor>> log_watches_;
  std::chrono::steady_clock::time_point next_;
  std::unique_ptr<HttpServer> http_;
  Readiness readiness_;
  bool collected_ = false;  // collection thread only
  // Declared after io_: their timers go first.
  std::vector<std::unique_ptr<StateUser>> state_users_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::atomic<bool> jobs_started_{false};  // jobs_ is set (for /jobs on the server's threads)
  std::map<int, prometheus::Counter*> signal_counts_;
  std::set<int> signals_logged_;
  prometheus::Counter* reloads_ok_ = nullptr;
  prometheus::Counter* reloads_failed_ = nullptr;
  Agent::Reloader reloader_;  // empty: no --config file
  std::string reload_source_;

  prometheus::Counter* cycles_ = nullptr;
  prometheus::Counter* overruns_ = nullptr;
  prometheus::Gauge* pods_gauge_ = nullptr;
  prometheus::Gauge* containers_gauge_ = nullptr;
  prometheus::Gauge* open_files_ = nullptr;
  prometheus::Gauge* unnamed_held_ = nullptr;
  prometheus::Gauge* unnamed_exported_ = nullptr;
  prometheus::Gauge* unknown_images_ = nullptr;
  prometheus::Gauge* series_ = nullptr;
  prometheus::Gauge* render_duration_ = nullptr;
  prometheus::Gauge* http_connections_ = nullptr;
};

Agent::Agent(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Agent::~Agent() = default;
int Agent::run() { return impl_->run(); }
void Agent::setReloader(Reloader reloader, std::string source) {
  impl_->setReloader(std::move(reloader), std::move(source));
}

}  // namespace nodewarden
