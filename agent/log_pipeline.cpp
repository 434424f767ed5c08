#include "agent/log_pipeline.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/config.h"
#include "agent/state_dir.h"
#include "collectors/journal/journal_reader.h"
#include "collectors/logs/log_tailer.h"
#include "exporters/file/file_log_exporter.h"
#include "exporters/loki/loki_exporter.h"
#include "exporters/loki/loki_push_body.h"
#include "pipeline/log_batcher.h"
#include "pipeline/log_filter.h"
#include "pipeline/log_multiline.h"
#include "pipeline/log_rate_limit.h"
#include "pipeline/log_redaction.h"
#include "pipeline/log_shipper.h"
#include "pipeline/log_stage.h"
#include "pipeline/log_tenant_router.h"
#include "pipeline/spool.h"

namespace nodewarden {
namespace {

// Bytes of container logs read per tick at most, so one busy node never starves the metrics
// cycle on the same loop; a backlog is worked through tick after tick.
constexpr std::size_t kTickReadBudget = 8 << 20;
constexpr std::size_t kTickJournalEntries = 5000;

std::expected<std::string, std::string> readSecretFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// The log path's steps between the readers and the batcher, in order: each part of the config's
// collectors.logs rules adds its stage here (multiline joins before anything looks at a line;
// filters and rate limits drop before redaction spends time on a line; redaction last, on what is
// sent). Empty parts add nothing.
std::vector<std::unique_ptr<LogStage>> makeLogStages(const Config& config,
                                                     ContainerMetadata* metadata,
                                                     prometheus::Registry& registry,
                                                     ErrorReporter& errors) {
  std::vector<std::unique_ptr<LogStage>> stages;
  if (config.logs.multiline.enabled) {
    MultilineOptions mo = config.logs.multiline;
    mo.max_bytes = config.logs.tailer.max_line_bytes;
    // The config reader compiled every pattern already: a failure here is reported, not fatal.
    if (auto stage = MultilineStage::create(std::move(mo), metadata, registry)) {
      stages.push_back(std::move(*stage));
    } else {
      errors.report("logs", "multiline_rule", stage.error());
    }
  }
  if (!config.logs.filters.empty()) {
    // The config reader compiled every pattern: create() cannot fail on a config that loaded.
    if (auto filter = FilterStage::create(config.logs.filters, metadata, registry)) {
      stages.push_back(std::move(*filter));
    } else {
      spdlog::error("collectors.logs.filters: {}", filter.error());
    }
  }
  // Rate limit: after multiline and filters, before redaction.
  if (config.logs.rate_limit.enabled) {
    stages.push_back(
        std::make_unique<RateLimitStage>(config.logs.rate_limit, metadata, registry, errors));
  }
  if (const auto& redaction = config.logs.redaction;
      redaction.enabled && (!redaction.builtin.empty() || !redaction.rules.empty())) {
    if (auto stage = RedactionStage::create(redaction, metadata, registry)) {
      stages.push_back(std::move(*stage));
    } else {
      spdlog::error("collectors.logs.redaction: {}", stage.error());
    }
  }
  return stages;
}

}  // namespace

// One Loki tenant's path after the router: its spool, exporter (the default tenant's is the one
// create() made; every other tenant's is a LokiExporter of its own, with its own connection and
// X-Scope-OrgID), batcher and shipper thread.
class TenantPath final : public LogTenantPath {
 public:
  std::string tenant;
  std::filesystem::path dir;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<LogExporter> own_exporter;  // null for the default tenant
  std::unique_ptr<LogBatcher> batcher_;
  std::unique_ptr<LogShipper> shipper;
  std::unique_ptr<SpoolDamageCounters> damage;
  std::uint64_t written_seen = 0;
  std::uint64_t* lost_closed = nullptr;  // the pipeline's sum of closed tenants' lost lines

  ~TenantPath() override {
    if (shipper) shipper->stop(std::chrono::milliseconds(1500));
    shipper.reset();
    batcher_.reset();
  }
  LogBatcher& batcher() override { return *batcher_; }
  void notifyShipper() override { shipper->notify(); }
  [[nodiscard]] bool drained() const override {
    return spool->batches() == 0 && spool->heldBatches() == 0;
  }
  void stop(std::chrono::milliseconds grace) override {
    if (shipper) shipper->stop(grace);
  }
  void discard() override {
    if (shipper) shipper->stop(std::chrono::milliseconds(1500));
    shipper.reset();
    batcher_.reset();
    if (lost_closed != nullptr) *lost_closed += spool->lostUnits();
    spool.reset();
    // Drained: nothing in it is unsent. Its directory goes, so a restart does not open it again.
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

class LogPipeline::Impl {
 public:
  Config config;  // for open()
  prometheus::Registry* registry = nullptr;
  ErrorReporter* errors = nullptr;
  std::unique_ptr<LogExporter> exporter;  // the default tenant's
  LokiExporterOptions loki_options;       // for the other tenants' exporters (tenant set there)
  bool started = false;
  std::uint64_t lost_closed = 0;
  // Reads the bodies of spooled batches back into entries (splitting a batch, a destination that
  // takes none). They are Loki push bodies, protobuf (snappy) or JSON (gzip): LokiBatchEncoder
  // reads both (a gzip body starts with its magic bytes, which no snappy body can), so a spool
  // written under one encoding is read after a restart with the other, whatever the destination.
  std::shared_ptr<const LogBatchEncoder> spooled_bodies = std::make_shared<LokiBatchEncoder>();
  // The last sink, in place of one batcher: each tenant's batcher, spool and shipper.
  std::unique_ptr<LogTenantRouter> router;
  // The readers write into stages->head(); the agent's own events go to the router directly.
  std::unique_ptr<LogStageChain> stages;
  std::unique_ptr<logs::LogTailer> tailer;
  std::unique_ptr<journal::JournalReader> journal;

  // With loki.tenants, one series per open tenant (label tenant); without, one series.
  prometheus::Family<prometheus::Gauge>* spool_bytes = nullptr;
  prometheus::Family<prometheus::Gauge>* spool_batches = nullptr;
  prometheus::Family<prometheus::Gauge>* oldest_unsent = nullptr;
  std::vector<std::string> gauge_tenants;  // tenants with series, to remove closed ones
  prometheus::Gauge* open_files = nullptr;
  // The tailer's handle budget and its unfinished lines (LogTailerStats), published each tick.
  prometheus::Gauge* files_deferred = nullptr;
  prometheus::Gauge* files_parked = nullptr;
  prometheus::Gauge* file_wait = nullptr;
  prometheus::Counter* deferrals = nullptr;
  prometheus::Counter* fd_yields = nullptr;
  prometheus::Counter* partials_flushed = nullptr;
  logs::LogTailerStats tailer_seen;  // the counters' values already added
  prometheus::Gauge* spool_lost = nullptr;
  prometheus::Counter* spool_written = nullptr;
  prometheus::Family<prometheus::Counter>* dropped = nullptr;  // for each tenant's damage
  prometheus::Family<prometheus::Gauge>* lag = nullptr;
  std::vector<std::string> lag_files;  // files with a lag gauge, to remove stale ones

  // Container logs are not read until the pod metadata had its first answer (or for at most
  // kMetadataWait), so the first lines of a Job's pod already carry their `job` label.
  ContainerMetadata* metadata = nullptr;
  bool metadata_ready = false;
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

  bool filesMayBeRead() {
    if (metadata_ready) return true;
    if (metadata == nullptr) return metadata_ready = true;
    metadata->refresh();
    metadata_ready = metadata->synced() ||
                     std::chrono::steady_clock::now() - created >= std::chrono::seconds(10);
    return metadata_ready;
  }

  static constexpr std::string_view kEventPrefix = "event/";
  std::function<void(std::string_view)> event_listener;
  std::function<void()> shipped_listener;  // set before start(); called on the shipper's thread

  void onDurable(const std::vector<LogCheckpoint>& checkpoints) {
    if (event_listener) {
      for (const auto& cp : checkpoints) {
        if (cp.source.starts_with(kEventPrefix)) {
          event_listener(std::string_view(cp.source).substr(kEventPrefix.size()));
        }
      }
    }
    if (tailer) tailer->commit(checkpoints);
    if (journal) journal->commit(checkpoints);
  }

  // A tenant's path (LogTenantRouter's factory): the default tenant's spool is spool/logs, as it
  // was before tenants, so an upgrade sends what it holds; another's spool/logs/tenants/<name>.
  std::expected<std::unique_ptr<LogTenantPath>, std::string> openTenant(
      const std::string& tenant, LogBatcher::OnDurable on_durable) {
    const bool is_default = tenant == config.loki.tenant;
    const auto root = config.paths.state_dir / "spool" / "logs";
    auto path = std::make_unique<TenantPath>();
    path->tenant = tenant;
    path->dir = is_default ? root : root / "tenants" / tenantDirName(tenant);
    path->lost_closed = &lost_closed;
    SpoolOptions so = logSpoolOptions(path->dir, config.spool);
    LogBatcherOptions bo = config.logs.batcher;  // batch_bytes, batch_wait, max_streams
    bo.spool_max_bytes = config.spool.max_bytes;
    bo.spool_headroom_bytes = 2 * bo.batch_bytes;
    if (config.loki.tenants.configured() && !config.loki.url.empty()) {
      // spool.max_bytes is shared evenly by up to loki.tenants.max tenants (create() checked
      // that a share holds 4 batches): one tenant refused for hours fills its share only.
      so.max_bytes =
          config.spool.max_bytes / static_cast<std::uint64_t>(config.loki.tenants.max_tenants);
      bo.spool_max_bytes = so.max_bytes;
    }
    // The spool creates its directory, reads `ack` and its segments; the probe then finds a
    // read-only directory that already existed (the spool only writes at its first append).
    auto spool = Spool::open(so, *errors);
    if (!spool) return std::unexpected("cannot open the spool: " + spool.error());
    if (auto r = checkStateDir(so.dir); !r)
      return std::unexpected("cannot open the spool: " + r.error());
    path->spool = std::move(*spool);
    LogExporter* destination = exporter.get();
    if (!is_default) {
      LokiExporterOptions lo = loki_options;
      lo.tenant = tenant;
      auto e = LokiExporter::create(lo);
      if (!e) return std::unexpected("loki: " + e.error());
      path->own_exporter = std::move(*e);
      destination = path->own_exporter.get();
    }
    // The destination's own encoding (Loki's protobuf API): each batch is encoded once, spooled
    // as that body and sent as it is.
    bo.encoder = destination->batchEncoder();
    // One positions file per second, not per batch: the acknowledged batches' positions without
    // a sync, the rest after one spool sync once they waited kLogCommitGrace (the spool is opened
    // with sync_each_append off for this). A kill -9 then repeats at most a second of lines plus
    // the batch in flight (bench_kill9_duplicates).
    bo.commit_interval = kLogCommitInterval;
    bo.commit_grace = kLogCommitGrace;
    path->batcher_ =
        std::make_unique<LogBatcher>(bo, *path->spool, std::move(on_durable), *registry, *errors);
    LogShipperOptions sho;
    sho.body_decoder = spooled_bodies;
    sho.on_batch_done = [this] {
      if (shipped_listener) shipped_listener();
    };
    if (config.loki.tenants.configured() && !config.loki.url.empty()) {
      sho.metric_labels = {{"tenant", tenant}};
    }
    path->shipper =
        std::make_unique<LogShipper>(sho, *path->spool, *destination, *registry, *errors);
    path->damage = std::make_unique<SpoolDamageCounters>(*dropped, *registry, "logs");
    if (started) path->shipper->start();
    return path;
  }

  void updateGauges() {
    const bool per_tenant = config.loki.tenants.configured();
    double total_bytes = 0, total_batches = 0, oldest = 0, lost = static_cast<double>(lost_closed);
    std::vector<std::string> open_tenants;
    router->forEach([&](const std::string& tenant, LogTenantPath& p) {
      auto& path = static_cast<TenantPath&>(p);
      const Spool& spool = *path.spool;
      const auto b = static_cast<double>(spool.bytes());
      const auto n = static_cast<double>(spool.batches());
      const double age = std::chrono::duration<double>(spool.oldestAge()).count();
      if (per_tenant) {
        spool_bytes->Add({{"tenant", tenant}}).Set(b);
        spool_batches->Add({{"tenant", tenant}}).Set(n);
        oldest_unsent->Add({{"tenant", tenant}}).Set(age);
        open_tenants.push_back(tenant);
      }
      total_bytes += b;
      total_batches += n;
      oldest = std::max(oldest, age);
      lost += static_cast<double>(spool.lostUnits());
      path.damage->update(spool.damage());
      const std::uint64_t written = spool.writtenBytes();
      spool_written->Increment(static_cast<double>(written - path.written_seen));
      path.written_seen = written;
    });
    if (per_tenant) {
      for (const auto& old : gauge_tenants) {
        if (std::ranges::find(open_tenants, old) != open_tenants.end()) continue;
        spool_bytes->Remove(&spool_bytes->Add({{"tenant", old}}));
        spool_batches->Remove(&spool_batches->Add({{"tenant", old}}));
        oldest_unsent->Remove(&oldest_unsent->Add({{"tenant", old}}));
      }
      gauge_tenants = std::move(open_tenants);
    } else {
      spool_bytes->Add({}).Set(total_bytes);
      spool_batches->Add({}).Set(total_batches);
      oldest_unsent->Add({}).Set(oldest);
    }
    spool_lost->Set(lost);
    if (tailer) {
      const logs::LogTailerStats ts = tailer->stats();
      open_files->Set(static_cast<double>(ts.open_files));
      files_deferred->Set(static_cast<double>(ts.files_waiting));
      files_parked->Set(static_cast<double>(ts.files_parked));
      file_wait->Set(std::chrono::duration<double>(ts.longest_wait).count());
      deferrals->Increment(static_cast<double>(ts.open_deferred - tailer_seen.open_deferred));
      fd_yields->Increment(static_cast<double>(ts.fd_yields - tailer_seen.fd_yields));
      partials_flushed->Increment(
          static_cast<double>(ts.partials_flushed - tailer_seen.partials_flushed));
      tailer_seen = ts;
      std::vector<std::string> now;
      for (const auto& [file, bytes] : tailer->lagPerFile()) {
        lag->Add({{"file", file}}).Set(static_cast<double>(bytes));
        now.push_back(file);
      }
      for (const auto& old : lag_files) {
        if (std::find(now.begin(), now.end(), old) == now.end()) {
          lag->Remove(&lag->Add({{"file", old}}));
        }
      }
      lag_files = std::move(now);
    }
  }
};

LogPipeline::LogPipeline() : impl_(std::make_unique<Impl>()) {}
LogPipeline::~LogPipeline() { stop(std::chrono::milliseconds(1500)); }

std::expected<std::unique_ptr<LogPipeline>, std::string> LogPipeline::create(
    const Config& config, SelfMetrics& self, ErrorReporter& errors, ContainerMetadata* metadata) {
  std::unique_ptr<LogPipeline> p(new LogPipeline());
  Impl& pipeline = *p->impl_;
  auto& reg = self.registry();
  pipeline.config = config;
  pipeline.registry = &reg;
  pipeline.errors = &errors;

  if (config.loki.url.empty()) {
    const auto file = config.paths.state_dir / "logs" / "nodewarden-logs.jsonl";
    spdlog::info("no Loki URL configured: logs go to {}", file.string());
    pipeline.exporter = std::make_unique<FileLogExporter>(file, config.loki.local_file_max_bytes,
                                                          pipeline.spooled_bodies);
  } else {
    LokiExporterOptions lo;
    lo.url = config.loki.url;
    lo.encoding = config.loki.encoding == "json" ? LokiEncoding::kJson : LokiEncoding::kProtobuf;
    lo.tenant = config.loki.tenant;
    lo.bearer_token_file = config.loki.bearer_token_file.string();
    lo.basic_user = config.loki.username;
    if (!config.loki.password_file.empty()) {
      auto pw = readSecretFile(config.loki.password_file);
      if (!pw) return std::unexpected("loki.password_file: " + pw.error());
      lo.basic_password = *pw;
    }
    lo.ca_file = config.loki.ca_file.string();
    lo.insecure_skip_verify = config.loki.insecure_skip_verify;
    lo.timeout = config.loki.timeout;
    auto e = LokiExporter::create(lo);
    if (!e) return std::unexpected("loki: " + e.error());
    pipeline.exporter = std::move(*e);
    pipeline.loki_options = lo;
  }
  pipeline.metadata = metadata;
  if (config.loki.tenants.configured()) {
    if (config.loki.url.empty()) {
      spdlog::warn("loki.tenants is set but loki.url is not: every line goes to the local file");
    } else if (!config.loki.tenant.empty()) {
      if (auto valid = validateLokiTenant(config.loki.tenant); !valid) {
        return std::unexpected("loki.tenant: " + valid.error());
      }
    }
    // Each tenant's spool may hold max_bytes / max (see open()); a share that cannot hold a few
    // batches would make tenants stall on their first 429.
    const std::uint64_t share =
        config.spool.max_bytes / static_cast<std::uint64_t>(config.loki.tenants.max_tenants);
    if (share < 4 * static_cast<std::uint64_t>(config.logs.batcher.batch_bytes)) {
      return std::unexpected(
          "spool.max_bytes: shared by loki.tenants.max=" +
          std::to_string(config.loki.tenants.max_tenants) + " tenants, each would have " +
          std::to_string(share) +
          " bytes, less than 4 batches (collectors.logs.batch_bytes); raise spool.max_bytes or "
          "lower loki.tenants.max");
    }
  }

  pipeline.spool_bytes = &prometheus::BuildGauge()
                              .Name("nodewarden_log_spool_bytes")
                              .Help("Bytes of log batches in the on-disk spool.")
                              .Register(reg);
  pipeline.spool_batches =
      &prometheus::BuildGauge()
           .Name("nodewarden_log_spool_batches")
           .Help("Log batches in the spool not yet accepted by the destination.")
           .Register(reg);
  pipeline.oldest_unsent = &prometheus::BuildGauge()
                                .Name("nodewarden_log_oldest_unsent_seconds")
                                .Help("Age of the oldest log batch not yet accepted (0 when none).")
                                .Register(reg);
  pipeline.spool_lost =
      &prometheus::BuildGauge()
           .Name("nodewarden_log_spool_lost_lines")
           .Help("Log lines the spool lost since start (dropped when full or corrupt).")
           .Register(reg)
           .Add({});
  pipeline.dropped = &prometheus::BuildCounter()
                          .Name("nodewarden_log_lines_dropped_total")
                          .Help("Log lines dropped, by reason.")
                          .Register(reg);
  pipeline.spool_written =
      &prometheus::BuildCounter()
           .Name("nodewarden_log_spool_written_bytes_total")
           .Help(
               "Bytes of log batches written to the spool's files. A batch the "
               "destination accepted before the next positions commit is never "
               "written, so with a healthy destination this stays far below the "
               "bytes sent.")
           .Register(reg)
           .Add({});
  pipeline.open_files = &prometheus::BuildGauge()
                             .Name("nodewarden_log_open_files")
                             .Help("Container log files held open by the tailer.")
                             .Register(reg)
                             .Add({});
  pipeline.files_deferred = &prometheus::BuildGauge()
                                 .Name("nodewarden_log_files_deferred")
                                 .Help(
                                     "Container log files waiting for a descriptor now "
                                     "(collectors.logs.max_open_files are in use).")
                                 .Register(reg)
                                 .Add({});
  pipeline.files_parked = &prometheus::BuildGauge()
                               .Name("nodewarden_log_files_parked")
                               .Help(
                                   "Container log files followed without a descriptor (idle, or "
                                   "waiting their turn); their positions are kept.")
                               .Register(reg)
                               .Add({});
  pipeline.file_wait = &prometheus::BuildGauge()
                            .Name("nodewarden_log_file_wait_seconds")
                            .Help(
                                "The longest current wait of a container log file for a descriptor "
                                "(0 when none waits).")
                            .Register(reg)
                            .Add({});
  pipeline.deferrals = &prometheus::BuildCounter()
                            .Name("nodewarden_log_file_deferrals_total")
                            .Help("Times a container log file had to wait for a descriptor.")
                            .Register(reg)
                            .Add({});
  pipeline.fd_yields =
      &prometheus::BuildCounter()
           .Name("nodewarden_log_file_descriptor_yields_total")
           .Help(
               "Descriptors an idle file, or one that had its slice, gave back to a "
               "waiting file.")
           .Register(reg)
           .Add({});
  pipeline.partials_flushed =
      &prometheus::BuildCounter()
           .Name("nodewarden_log_partial_lines_flushed_total")
           .Help(
               "Unfinished lines (CRI P records, Docker records without their "
               "newline) handed out as they were because their file ended "
               "for good: deleted, compressed, or rotated and still for the "
               "grace period.")
           .Register(reg)
           .Add({});
  pipeline.lag = &prometheus::BuildGauge()
                      .Name("nodewarden_log_file_lag_bytes")
                      .Help("Bytes of a followed log file not read yet.")
                      .Register(reg);
  return p;
}

std::expected<void, std::string> LogPipeline::open() {
  Impl& pipeline = *impl_;
  if (pipeline.router) return {};
  const Config& config = pipeline.config;
  const auto checkpoints = config.paths.state_dir / "checkpoints";
  // The files the tailer and the journal reader commit their positions to: a store that cannot be
  // written would ship lines whose positions are never saved (all sent again after a restart).
  if (config.logs.enabled) {
    if (auto r = checkStateFile(checkpoints / "logs.json"); !r) {
      return std::unexpected("cannot keep positions: " + r.error());
    }
  }
  if (config.journal.enabled) {
    if (auto r = checkStateFile(checkpoints / "journal.cursor"); !r) {
      return std::unexpected("cannot keep positions: " + r.error());
    }
  }
  if (config.loki.url.empty()) {
    if (auto r = checkStateFile(config.paths.state_dir / "logs" / "nodewarden-logs.jsonl"); !r) {
      return std::unexpected("cannot write the local log file: " + r.error());
    }
  }
  const auto spool_root = config.paths.state_dir / "spool" / "logs";
  Impl* self = &pipeline;
  auto router = std::make_unique<LogTenantRouter>(
      LogTenantRouterOptions{config.loki.url.empty() ? LogTenantOptions{} : config.loki.tenants,
                             config.loki.tenant,
                             {}},
      pipeline.metadata,
      [self](const std::string& tenant, LogBatcher::OnDurable on_durable) {
        return self->openTenant(tenant, std::move(on_durable));
      },
      [self](const std::vector<LogCheckpoint>& cps) { self->onDurable(cps); }, *pipeline.registry,
      *pipeline.errors);
  // Tenants' spools left by an earlier run are opened to be drained, whatever the config says now.
  std::vector<std::string> recovered;
  std::error_code ec;
  const auto tenants_dir = spool_root / "tenants";
  if (!config.loki.url.empty() && std::filesystem::is_directory(tenants_dir, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(tenants_dir, ec)) {
      const std::string name = entry.path().filename().string();
      auto tenant = tenantFromDirName(name);
      if (!tenant || !entry.is_directory(ec)) {
        pipeline.errors->report("spool", "tenant_dir",
                                entry.path().string() + ": not a tenant's spool (" +
                                    (tenant ? std::string("not a directory") : tenant.error()) +
                                    "), left alone");
        continue;
      }
      recovered.push_back(std::move(*tenant));
    }
  }
  if (auto opened = router->open(recovered); !opened) return std::unexpected(opened.error());
  pipeline.router = std::move(router);
  auto& reg = *pipeline.registry;
  ErrorReporter& errors = *pipeline.errors;
  pipeline.stages = std::make_unique<LogStageChain>(
      makeLogStages(config, pipeline.metadata, reg, errors), *pipeline.router);

  if (config.logs.enabled) {
    // max_line_bytes, max_open_files, rescan_interval, read_compressed
    logs::LogTailerOptions to = config.logs.tailer;
    to.log_root = config.paths.log_root;
    to.checkpoint_file = checkpoints / "logs.json";
    to.node_name = config.node_name;
    to.metadata = pipeline.metadata;
    to.pod_labels = config.kubernetes.pod_labels;
    pipeline.tailer = std::make_unique<logs::LogTailer>(to, errors);
  }
  if (config.journal.enabled) {
    journal::JournalOptions jo = config.journal;
    jo.cursor_file = checkpoints / "journal.cursor";
    jo.node_name = config.node_name;
    pipeline.journal = std::make_unique<journal::JournalReader>(jo, errors);
  }
  // Container logs wait for the pod metadata from here (filesMayBeRead), not from create().
  pipeline.created = std::chrono::steady_clock::now();
  return {};
}

bool LogPipeline::isOpen() const { return impl_->router != nullptr; }

void LogPipeline::start() {
  if (!impl_->router || impl_->started) return;
  impl_->started = true;
  impl_->router->forEach([](const std::string&, LogTenantPath& path) {
    static_cast<TenantPath&>(path).shipper->start();
  });
}

std::vector<int> LogPipeline::watchFds() const {
  std::vector<int> fds;
  if (impl_->tailer && impl_->tailer->watchFd() >= 0) fds.push_back(impl_->tailer->watchFd());
  if (impl_->journal && impl_->journal->watchFd() >= 0) fds.push_back(impl_->journal->watchFd());
  return fds;
}

bool LogPipeline::tick() {
  Impl& pipeline = *impl_;
  if (!pipeline.router) return false;
  // Readers stop when the open batch is full (hasRoom()), so one read fills at most one batch:
  // read and spool in turns until the budget is used, the sources are drained, or the spool is
  // near its bound. Otherwise a backlog would move one batch per tick.
  std::size_t read = 0;
  std::size_t entries = 0;
  bool more = false;
  for (;;) {
    std::size_t n = 0;
    LogSink& sink = pipeline.stages->head();
    if (pipeline.tailer && pipeline.filesMayBeRead())
      n += pipeline.tailer->poll(sink, kTickReadBudget - read);
    std::size_t m = 0;
    if (pipeline.journal) m = pipeline.journal->poll(sink, kTickJournalEntries - entries);
    read += n;
    entries += m;
    // What the stages hold past its time (a multiline group, a count of dropped lines).
    pipeline.stages->flushDue(LogStage::Clock::now(), false);
    // Spools each tenant's batch when it is full or old enough (and wakes its shipper). Never
    // forced: with the spool near its bound, a forced append could make it drop its oldest batch.
    const bool spooled = pipeline.router->flush();
    if (read >= kTickReadBudget || entries >= kTickJournalEntries) {
      more = true;
      break;
    }
    if (!spooled || (n == 0 && m == 0) || !pipeline.router->hasRoom()) break;
  }
  pipeline.updateGauges();
  return more && pipeline.router->hasRoom();
}

bool LogPipeline::waitingForShipper() const {
  return impl_->router && impl_->router->waitingForConsumer();
}

bool LogPipeline::submitEvent(const Labels& labels, LogEntry entry, const std::string& key) {
  Impl& pipeline = *impl_;
  // By the event's namespace label (a Job's outcome goes to the Job's namespace's tenant).
  if (!pipeline.router || !pipeline.router->hasRoomFor(labels)) return false;
  LogCheckpoint cp;
  cp.source = std::string(Impl::kEventPrefix) + key;
  return pipeline.router->accept(labels, std::move(entry), cp);
}

void LogPipeline::onShipped(std::function<void()> listener) {
  impl_->shipped_listener = std::move(listener);
}

void LogPipeline::onEventDurable(std::function<void(std::string_view)> listener) {
  impl_->event_listener = std::move(listener);
}

void LogPipeline::stop(std::chrono::milliseconds grace) {
  Impl& pipeline = *impl_;
  if (!pipeline.router) return;
  pipeline.stages->flushDue(LogStage::Clock::now(), true);
  pipeline.router->flush(true);
  // Every tenant's shipper at once: each may wait up to grace for a send in flight.
  std::vector<std::thread> stopping;
  pipeline.router->forEach([&](const std::string&, LogTenantPath& path) {
    stopping.emplace_back([&path, grace] { path.stop(grace); });
  });
  for (auto& t : stopping) t.join();
  pipeline.stages.reset();
  pipeline.router.reset();
}

}  // namespace nodewarden
