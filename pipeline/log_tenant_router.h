// LogTenantRouter: the last sink of the log path (after the stages), in place of a single batcher.
// It picks each entry's Loki tenant (X-Scope-OrgID) from the pod's label, the namespace map or the
// default, and hands the entry to that tenant's own path: its batcher (one open batch per
// tenant), its spool (<state>/spool/logs for the default tenant, spool/logs/tenants/<name> for
// the others) and its shipper (one thread per tenant, with its own retries and backoff). A tenant
// answering 429 or 5xx therefore fills only its own spool and backs off alone.
//
// What a reader gets wrong about positions: a source (a file, the journal) must commit its
// positions from one batcher at a time, in order, or a crash could skip lines still in another
// tenant's unsynced batch. So when a stream's tenant changes (a pod label appeared or changed, the
// metadata answered late), its source's entries are refused (the file waits, holding its line)
// until the old tenant's batcher holds no uncommitted position of that source (about one batch
// wait plus one commit interval), and only then go to the new tenant.
//
// What a reader gets wrong about backpressure: hasRoom() is true while ANY tenant has room, and
// accept() refuses an entry whose own tenant is full. Readers must therefore treat a refusal as
// the blocking of that source only (the container log tailer does), or one tenant's full spool
// would stop every tenant's lines again.
//
// Bounds: at most max_tenants paths (the default tenant counts); an entry whose tenant would be
// one more goes to the default tenant and is counted. A tenant other than the default whose
// batcher and spool are empty and that had no entry for idle_timeout is closed (its thread
// stopped, its empty spool directory removed). One thread (the log tick's) calls everything here.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/log_batcher.h"
#include "pipeline/log_record.h"
#include "pipeline/log_selector.h"
#include "pipeline/self_metrics.h"

namespace nodewarden {

// The config's loki.tenants (agent/config_tenants.cpp); loki.tenant is the default tenant.
struct LogTenantOptions {
  // namespace -> tenant.
  std::map<std::string, std::string> namespaces;
  // When not empty: a pod label whose value is the pod's tenant (before the namespace map).
  std::string pod_label;
  // Tenant paths open at once, the default's included.
  int max_tenants = 16;
  // A tenant without entries this long, with nothing left to send, is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
  // Whether anything sends entries to a tenant other than the default.
  [[nodiscard]] bool configured() const { return !namespaces.empty() || !pod_label.empty(); }
  bool operator==(const LogTenantOptions&) const = default;
};

// Loki's rule for a tenant id (dskit's tenant.ValidTenantID): 1 to 150 characters out of
// [A-Za-z0-9] and !-_.*'(), not "." or "..". No '|' (the multi-tenant query separator), nothing
// unprintable. An id Loki would refuse is refused here, since Loki's 4xx drops the batch. The
// empty string is valid only as the default tenant (no header) and is checked by the caller.
std::expected<void, std::string> validateLokiTenant(std::string_view tenant);

// A tenant's spool directory name under spool/logs/tenants/ ("t-" and the id, with '%', '*',
// '\'', '(', ')' and '!' escaped as %XX), and back. tenantFromDirName refuses any name it would
// not write (a stray directory, a damaged name) with the reason.
std::string tenantDirName(std::string_view tenant);
std::expected<std::string, std::string> tenantFromDirName(std::string_view name);

// One tenant's path after the router: what the log pipeline builds for a tenant.
class LogTenantPath {
 public:
  virtual ~LogTenantPath() = default;  // stops its shipper; the spool keeps what was not sent
  virtual LogBatcher& batcher() = 0;
  // The batcher spooled a batch: wake the shipper.
  virtual void notifyShipper() = 0;
  // Its spool holds no batch that was not acknowledged (nothing in memory, nothing on disk).
  [[nodiscard]] virtual bool drained() const = 0;
  // Called once, as the router closes an idle, drained tenant, before the destructor: remove what
  // is left on disk.
  virtual void discard() {}
  // Stops the shipper within grace (its batch in flight stays in the spool). The pipeline stops
  // every tenant's at once at shutdown; the destructor stops it otherwise.
  virtual void stop(std::chrono::milliseconds /*grace*/) {}
};

struct LogTenantRouterOptions {
  LogTenantOptions tenants;
  std::string default_tenant;  // loki.tenant ("" sends no header)
  // The clock of idle_timeout; empty: steady_clock.
  std::function<std::chrono::steady_clock::time_point()> now;
};

class LogTenantRouter final : public LogSink {
 public:
  using Clock = std::chrono::steady_clock;
  // Builds a tenant's path; its batcher must hand its positions to on_durable (the router gathers
  // every tenant's and passes them on once per flush). Errors: the spool cannot be opened.
  using Factory = std::function<std::expected<std::unique_ptr<LogTenantPath>, std::string>(
      const std::string& tenant, LogBatcher::OnDurable on_durable)>;

  // metadata (optional, not owned) gives pods' labels for pod_label.
  LogTenantRouter(LogTenantRouterOptions options, const ContainerMetadata* metadata,
                  Factory factory, LogBatcher::OnDurable on_durable, prometheus::Registry& registry,
                  ErrorReporter& errors);
  ~LogTenantRouter() override;
  LogTenantRouter(const LogTenantRouter&) = delete;
  LogTenantRouter& operator=(const LogTenantRouter&) = delete;

  // Opens the default tenant's path and those of `recovered` tenants (spools left by an earlier
  // run, drained even when nothing routes to them now). Fails when the default's cannot open.
  std::expected<void, std::string> open(const std::vector<std::string>& recovered);

  bool accept(const Labels& labels, const LogEntry& entry,
              const LogCheckpoint& checkpoint) override;
  bool acceptStream(const Labels& labels, const LogEntry& entry, const LogCheckpoint& checkpoint,
                    std::uint64_t stream_id) override;
  // Some tenant has room (see the file comment).
  [[nodiscard]] bool hasRoom() const override;
  // The tenant of an entry with these stream labels (the agent's own events: by their namespace
  // label) has room.
  [[nodiscard]] bool hasRoomFor(const Labels& labels);

  // Every tenant's LogBatcher::flush(force), shippers woken where a batch went to the spool, the
  // positions of all of them passed on in one call, idle tenants closed. Returns whether a batch
  // went to a spool.
  bool flush(bool force = false);
  // Some tenant's batcher waits for its shipper (LogBatcher::waitingForConsumer).
  [[nodiscard]] bool waitingForConsumer() const;

  // Each open tenant's path (the default's included), for gauges and shutdown.
  void forEach(const std::function<void(const std::string& tenant, LogTenantPath& path)>& fn);
  [[nodiscard]] std::size_t openTenants() const { return tenants_.size(); }
  [[nodiscard]] const std::string& defaultTenant() const { return options_.default_tenant; }
  // Closes every path (shippers stopped in turn; see LogTenantPath's destructor).
  void close();

 private:
  struct Tenant {
    std::string name;
    std::unique_ptr<LogTenantPath> path;
    Clock::time_point last_entry;
    bool touched = false;  // took an entry since the last sweep
  };
  // A stream's decision, by stream number (forgotten when the metadata moves or a tenant closes).
  struct Route {
    std::string tenant;
    Tenant* open = nullptr;  // null: not opened (yet): look it up again
    bool over_cap = false;   // wanted another tenant, past max_tenants
    bool moving = false;     // its source's lines were in another tenant's batcher (counted)
  };
  Clock::time_point now() const { return options_.now ? options_.now() : Clock::now(); }
  // The tenant, opened when needed; the default past the cap (over_cap set); null when its path
  // cannot be opened now (the entry waits).
  Tenant* tenantNamed(const std::string& name, bool& over_cap);
  // The tenant an entry's stream wants (pod label, namespace map, default).
  std::string tenantOf(const Labels& labels, const LogEntry& entry);
  Route& routeOf(const Labels& labels, const LogEntry& entry, std::uint64_t stream_id);
  void sweep(Clock::time_point at);
  void forgetRoutes();
  LogBatcher::OnDurable gatherer();

  LogTenantRouterOptions options_;
  Factory factory_;
  LogBatcher::OnDurable on_durable_;
  ErrorReporter& errors_;
  LogStreamResolver resolver_;
  std::map<std::string, std::unique_ptr<Tenant>> tenants_;
  Tenant* default_ = nullptr;
  StreamMemo<Route> routes_;
  std::uint64_t last_stream_id_ = 0;
  std::uint64_t last_generation_ = 0;
  Route* last_route_ = nullptr;
  // Which tenant a source's entries went to last: a source moves only once its old tenant holds
  // none of its positions. Those whose tenant holds nothing of theirs are forgotten in sweep().
  std::unordered_map<std::string, Tenant*> sources_;
  std::string last_source_;
  Tenant* last_source_tenant_ = nullptr;
  std::vector<LogCheckpoint> durable_;  // gathered from every tenant in one flush()
  Clock::time_point last_sweep_{};
  Clock::time_point last_source_sweep_{};
  // A tenant whose path failed to open is tried again after a pause, not for every entry.
  std::map<std::string, Clock::time_point> failed_opens_;
  prometheus::Gauge* tenants_open_ = nullptr;
  prometheus::Counter* over_cap_lines_ = nullptr;
  prometheus::Counter* moves_ = nullptr;
};

}  // namespace nodewarden
