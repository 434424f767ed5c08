#include "agent/remote_write_pipeline.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "agent/config.h"
#include "agent/state_dir.h"
#include "exporters/remote_write/remote_write_exporter.h"
#include "exporters/remote_write/write_request_encoder.h"
#include "pipeline/curl_support.h"
#include "pipeline/metric_sender.h"
#include "pipeline/spool.h"

namespace nodewarden {
namespace {

// Cycles waiting for the encoder. One is the normal case; more means encoding is slower than
// collection, and memory (each holds a published snapshot) must stay bounded.
constexpr std::size_t kMaxQueuedCycles = 4;
constexpr std::string_view kComponent = "remote_write";

}  // namespace

class RemoteWritePipeline::Impl {
 public:
  explicit Impl(std::size_t max_samples) : encoder(max_samples) {}

  std::unique_ptr<MetricSpool> spool;
  std::unique_ptr<RemoteWriteExporter> exporter;
  std::unique_ptr<MetricSender> sender;
  WriteRequestEncoder encoder;  // encoder thread only
  ErrorReporter* errors = nullptr;
  prometheus::Registry* registry = nullptr;
  SpoolOptions spool_options;  // for open()
  std::string url;

  std::mutex mu;  // guards queue and stopping
  std::condition_variable cv;
  std::deque<MetricCycle> queue;
  bool stopping = false;
  std::thread thread;

  prometheus::Counter* dropped_spool_full = nullptr;
  prometheus::Counter* dropped_queue_full = nullptr;
  prometheus::Counter* dropped_encode = nullptr;
  prometheus::Counter* skipped_lines = nullptr;
  prometheus::Gauge* spool_bytes = nullptr;
  prometheus::Gauge* spool_requests = nullptr;
  prometheus::Gauge* oldest_unsent = nullptr;
  std::uint64_t full_seen = 0;  // units the spool dropped when full, already counted
  std::unique_ptr<SpoolDamageCounters> spool_damage;

  void run() {
    for (;;) {
      MetricCycle cycle;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything queued is spooled
        cycle = std::move(queue.front());
        queue.pop_front();
      }
      encode(cycle);
    }
  }

  void encode(const MetricCycle& cycle) {
    encoder.begin(cycle.timestamp_ms);
    cycle.render([this](std::string_view chunk) { encoder.add(chunk); });
    auto batches = encoder.finish();
    if (encoder.skippedLines() > 0) {
      skipped_lines->Increment(static_cast<double>(encoder.skippedLines()));
      errors->report(kComponent, "unparsed_line",
                     std::to_string(encoder.skippedLines()) +
                         " exposition lines left out, first: " + encoder.firstSkipped());
    }
    for (auto& batch : batches) {
      const auto samples = batch.samples;
      if (auto r = spool->append(std::move(batch)); !r) {
        dropped_encode->Increment(static_cast<double>(samples));
        errors->report(kComponent, "spool_append_failed", r.error());
      }
    }
    updateGauges();
    if (sender) sender->notify();
  }

  void updateGauges() {
    // What damage did not take, a full spool did (both read at one moment).
    const SpoolDamage damage = spool->damage();
    const std::uint64_t full = damage.all_lost_units - damage.units;
    dropped_spool_full->Increment(static_cast<double>(full - full_seen));
    full_seen = full;
    spool_damage->update(damage);
    spool_bytes->Set(static_cast<double>(spool->bytes()));
    spool_requests->Set(static_cast<double>(spool->batches()));
    oldest_unsent->Set(std::chrono::duration<double>(spool->oldestAge()).count());
  }
};

RemoteWritePipeline::RemoteWritePipeline() = default;

RemoteWritePipeline::~RemoteWritePipeline() { stop(); }

std::expected<std::unique_ptr<RemoteWritePipeline>, std::string> RemoteWritePipeline::create(
    const Config& config, SelfMetrics& self, ErrorReporter& errors) {
  std::unique_ptr<RemoteWritePipeline> created(new RemoteWritePipeline());
  created->impl_ =
      std::make_unique<Impl>(static_cast<std::size_t>(config.remote_write.max_samples_per_send));
  Impl& pipeline = *created->impl_;
  pipeline.errors = &errors;
  auto& reg = self.registry();

  pipeline.registry = &reg;
  pipeline.spool_options.dir = config.paths.state_dir / "spool" / "remote_write";
  pipeline.spool_options.max_bytes = config.remote_write.spool_max_bytes;
  // MetricSpool::open lowers it to max_bytes / 4.
  pipeline.spool_options.segment_bytes = config.spool.segment_bytes;
  pipeline.spool_options.zstd_level = 1;
  // A few cycles of a large node, so sending rarely reads the disk.
  pipeline.spool_options.cache_bytes = 8ULL << 20;
  pipeline.url = config.remote_write.url;

  RemoteWriteOptions ro;
  ro.http.url = config.remote_write.url;
  ro.bearer_token_file = config.remote_write.bearer_token_file.string();
  ro.http.basic_user = config.remote_write.username;
  if (!config.remote_write.password_file.empty()) {
    const auto password = readBearerToken(config.remote_write.password_file.string());
    if (!password) {
      return std::unexpected("remote_write.password_file: cannot read " +
                             config.remote_write.password_file.string() + " (or it is empty)");
    }
    ro.http.basic_password = *password;
  }
  ro.http.ca_file = config.remote_write.ca_file.string();
  ro.http.insecure_skip_verify = config.remote_write.insecure_skip_verify;
  ro.http.timeout = config.remote_write.timeout;
  for (const auto& header : config.remote_write.headers) {
    const auto colon = header.find(':');
    std::string value = header.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    ro.headers.emplace_back(header.substr(0, colon), std::move(value));
  }
  ro.http.user_agent = std::string("nodewarden/") + NODEWARDEN_VERSION;
  auto exporter = RemoteWriteExporter::create(std::move(ro));
  if (!exporter) return std::unexpected(exporter.error());
  pipeline.exporter = std::move(*exporter);

  auto& dropped = prometheus::BuildCounter()
                      .Name("nodewarden_remote_write_samples_dropped_total")
                      .Help(
                          "Samples dropped, by reason (http_4xx, spool_full, spool_corrupt, "
                          "spool_append_failed).")
                      .Register(reg);
  pipeline.dropped_spool_full = &dropped.Add({{"reason", "spool_full"}});
  pipeline.dropped_encode = &dropped.Add({{"reason", "spool_append_failed"}});
  pipeline.spool_damage = std::make_unique<SpoolDamageCounters>(dropped, reg, "remote_write");
  pipeline.dropped_queue_full =
      &prometheus::BuildCounter()
           .Name("nodewarden_remote_write_cycles_dropped_total")
           .Help(
               "Collection cycles not encoded because the encoder was behind, or because the "
               "spool could not be opened yet (the state dir is unusable; see /readyz).")
           .Register(reg)
           .Add({});
  pipeline.skipped_lines = &prometheus::BuildCounter()
                                .Name("nodewarden_remote_write_exposition_lines_skipped_total")
                                .Help("Exposition lines that did not parse and were not sent.")
                                .Register(reg)
                                .Add({});
  pipeline.spool_bytes = &prometheus::BuildGauge()
                              .Name("nodewarden_remote_write_spool_bytes")
                              .Help("Bytes of remote-write requests in the spool (on disk).")
                              .Register(reg)
                              .Add({});
  pipeline.spool_requests = &prometheus::BuildGauge()
                                 .Name("nodewarden_remote_write_spool_requests")
                                 .Help("Remote-write requests in the spool, not yet accepted.")
                                 .Register(reg)
                                 .Add({});
  pipeline.oldest_unsent = &prometheus::BuildGauge()
                                .Name("nodewarden_remote_write_oldest_unsent_age_seconds")
                                .Help("Age of the oldest request not yet accepted (0 when none).")
                                .Register(reg)
                                .Add({});
  return created;
}

std::expected<void, std::string> RemoteWritePipeline::open() {
  Impl& pipeline = *impl_;
  if (pipeline.spool) return {};
  auto spool = MetricSpool::open(pipeline.spool_options, *pipeline.errors);
  if (!spool) return std::unexpected("cannot open the spool: " + spool.error());
  // The spool writes nothing until its first append: a read-only directory that already existed
  // is found here.
  if (auto r = checkStateDir(pipeline.spool_options.dir); !r) {
    return std::unexpected("cannot open the spool: " + r.error());
  }
  pipeline.spool = std::move(*spool);
  pipeline.sender =
      std::make_unique<MetricSender>(MetricSenderOptions{}, *pipeline.spool, *pipeline.exporter,
                                     *pipeline.registry, *pipeline.errors);
  pipeline.updateGauges();
  if (pipeline.spool->batches() > 0) {
    spdlog::info("remote write: {} requests from before the restart will be sent first",
                 pipeline.spool->batches());
  }
  spdlog::info("remote write to {}", pipeline.url);
  return {};
}

bool RemoteWritePipeline::isOpen() const { return impl_->spool != nullptr; }

void RemoteWritePipeline::start() {
  Impl& pipeline = *impl_;
  if (!pipeline.sender || pipeline.thread.joinable()) return;
  pipeline.sender->start();
  pipeline.thread = std::thread([&pipeline] { pipeline.run(); });
}

void RemoteWritePipeline::enqueue(MetricCycle cycle) {
  Impl& pipeline = *impl_;
  {
    std::lock_guard lock(pipeline.mu);
    if (pipeline.stopping) return;
    if (!pipeline.thread.joinable()) {
      // Not started: the spool could not be opened (the agent says why on /readyz). The cycle is
      // lost; counted like one the encoder could not take.
      pipeline.dropped_queue_full->Increment();
      return;
    }
    if (pipeline.queue.size() >= kMaxQueuedCycles) {
      pipeline.dropped_queue_full->Increment();
      pipeline.errors->report(kComponent, "queue_full",
                              "encoding is behind collection: the oldest queued cycle was dropped");
      pipeline.queue.pop_front();
    }
    pipeline.queue.push_back(std::move(cycle));
  }
  pipeline.cv.notify_one();
}

void RemoteWritePipeline::stop() {
  if (!impl_) return;
  Impl& pipeline = *impl_;
  {
    std::lock_guard lock(pipeline.mu);
    pipeline.stopping = true;
  }
  pipeline.cv.notify_one();
  if (pipeline.thread.joinable()) pipeline.thread.join();
  if (pipeline.sender) pipeline.sender->stop();
}

}  // namespace nodewarden
