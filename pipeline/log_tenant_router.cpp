#include "pipeline/log_tenant_router.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>

namespace nodewarden {
namespace {

constexpr std::size_t kMaxTenantBytes = 150;  // dskit's tenant.MaxTenantIDLength
constexpr std::string_view kDirPrefix = "t-";
// How often idle tenants are looked for, and sources whose tenant holds nothing of theirs.
constexpr std::chrono::seconds kSweepInterval{1};
constexpr std::chrono::seconds kSourceSweepInterval{10};
// A tenant whose spool could not be opened is tried again after this long.
constexpr std::chrono::seconds kReopenPause{10};

bool tenantChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
         c == '-' || c == '_' || c == '.' || c == '*' || c == '\'' || c == '(' || c == ')';
}

// Characters of a tenant id written as %XX in its directory name (shell and glob characters).
bool escapedInDir(char c) { return c == '!' || c == '*' || c == '\'' || c == '(' || c == ')'; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is never written
}

}  // namespace

std::expected<void, std::string> validateLokiTenant(std::string_view tenant) {
  if (tenant.empty()) return std::unexpected("a tenant must not be empty");
  if (tenant.size() > kMaxTenantBytes) {
    return std::unexpected("a tenant is at most 150 characters, this one has " +
                           std::to_string(tenant.size()));
  }
  if (tenant == "." || tenant == "..") return std::unexpected("a tenant must not be . or ..");
  for (const char c : tenant) {
    if (!tenantChar(c)) {
      const auto code = static_cast<unsigned char>(c);
      std::string shown =
          code >= 0x21 && code < 0x7f ? std::string("'") + c + "'" : "byte " + std::to_string(code);
      return std::unexpected(
          "a tenant is made of letters, digits and !-_.*'() (Loki refuses "
          "others), found " +
          shown);
    }
  }
  return {};
}

std::string tenantDirName(std::string_view tenant) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(kDirPrefix);
  for (const char c : tenant) {
    if (escapedInDir(c) || c == '%') {
      const auto code = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[code >> 4];
      out += kHex[code & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::expected<std::string, std::string> tenantFromDirName(std::string_view name) {
  if (!name.starts_with(kDirPrefix)) return std::unexpected("does not start with t-");
  name.remove_prefix(kDirPrefix.size());
  std::string tenant;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c != '%') {
      if (escapedInDir(c)) return std::unexpected("an unescaped character");
      tenant += c;
      continue;
    }
    if (i + 2 >= name.size()) return std::unexpected("a cut %XX escape");
    const int hi = hexValue(name[i + 1]);
    const int lo = hexValue(name[i + 2]);
    if (hi < 0 || lo < 0) return std::unexpected("a bad %XX escape");
    const char decoded = static_cast<char>(hi * 16 + lo);
    if (!escapedInDir(decoded)) return std::unexpected("an escape of a plain character");
    tenant += decoded;
    i += 2;
  }
  if (auto valid = validateLokiTenant(tenant); !valid) return std::unexpected(valid.error());
  return tenant;
}

LogTenantRouter::LogTenantRouter(LogTenantRouterOptions options, const ContainerMetadata* metadata,
                                 Factory factory, LogBatcher::OnDurable on_durable,
                                 prometheus::Registry& registry, ErrorReporter& errors)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      on_durable_(std::move(on_durable)),
      errors_(errors),
      resolver_(metadata) {
  tenants_open_ = &prometheus::BuildGauge()
                       .Name("nodewarden_log_tenants")
                       .Help("Loki tenants with a batcher, a spool and a shipper open now.")
                       .Register(registry)
                       .Add({});
  over_cap_lines_ = &prometheus::BuildCounter()
                         .Name("nodewarden_log_tenant_overflow_lines_total")
                         .Help(
                             "Log lines sent to the default tenant because their own tenant "
                             "would have been one more than loki.tenants.max.")
                         .Register(registry)
                         .Add({});
  moves_ = &prometheus::BuildCounter()
                .Name("nodewarden_log_tenant_moves_total")
                .Help(
                    "Log streams whose tenant changed while their file's earlier lines were still "
                    "in the old tenant's batcher (a pod label changed or arrived late): their "
                    "lines waited until those were committed.")
                .Register(registry)
                .Add({});
}

LogTenantRouter::~LogTenantRouter() { close(); }

LogBatcher::OnDurable LogTenantRouter::gatherer() {
  return [this](const std::vector<LogCheckpoint>& checkpoints) {
    durable_.insert(durable_.end(), checkpoints.begin(), checkpoints.end());
  };
}

std::expected<void, std::string> LogTenantRouter::open(const std::vector<std::string>& recovered) {
  if (default_ != nullptr) return {};
  auto path = factory_(options_.default_tenant, gatherer());
  if (!path) return std::unexpected(path.error());
  const auto at = now();
  auto tenant = std::make_unique<Tenant>(Tenant{options_.default_tenant, std::move(*path), at});
  default_ = tenant.get();
  tenants_.emplace(options_.default_tenant, std::move(tenant));
  for (const auto& name : recovered) {
    if (tenants_.contains(name)) continue;
    // Left by an earlier run: opened whatever the cap, so what it holds is sent, then closed
    // when idle like any other.
    auto p = factory_(name, gatherer());
    if (!p) {
      errors_.report("logs", "tenant_open", name + ": " + p.error());
      continue;
    }
    tenants_.emplace(name, std::make_unique<Tenant>(Tenant{name, std::move(*p), at}));
  }
  tenants_open_->Set(static_cast<double>(tenants_.size()));
  return {};
}

std::string LogTenantRouter::tenantOf(const Labels& labels, const LogEntry& entry) {
  const LogStreamInfo info = resolver_.resolve(labels, entry);
  const LogTenantOptions& o = options_.tenants;
  if (!o.pod_label.empty() && info.pod_labels != nullptr) {
    if (const auto it = info.pod_labels->find(o.pod_label); it != info.pod_labels->end()) {
      const auto valid = validateLokiTenant(it->second);
      if (valid) return it->second;
      // Loki would refuse it (and drop the batch): the namespace's tenant or the default instead.
      errors_.report("logs", "tenant_invalid",
                     "pod label " + o.pod_label + " of " + std::string(info.namespace_name) + "/" +
                         std::string(info.pod) + ": " + valid.error());
    }
  }
  if (!info.namespace_name.empty()) {
    if (const auto it = o.namespaces.find(std::string(info.namespace_name));
        it != o.namespaces.end()) {
      return it->second;
    }
  }
  return options_.default_tenant;
}

LogTenantRouter::Tenant* LogTenantRouter::tenantNamed(const std::string& name, bool& over_cap) {
  over_cap = false;
  if (const auto it = tenants_.find(name); it != tenants_.end()) return it->second.get();
  if (tenants_.size() >= static_cast<std::size_t>(std::max(1, options_.tenants.max_tenants))) {
    over_cap = true;
    return default_;
  }
  const auto at = now();
  if (const auto failed = failed_opens_.find(name); failed != failed_opens_.end()) {
    if (at - failed->second < kReopenPause) return nullptr;
    failed_opens_.erase(failed);
  }
  auto path = factory_(name, gatherer());
  if (!path) {
    errors_.report("logs", "tenant_open", name + ": " + path.error());
    if (failed_opens_.size() < 1024) failed_opens_[name] = at;
    return nullptr;
  }
  auto tenant = std::make_unique<Tenant>(Tenant{name, std::move(*path), at});
  Tenant* out = tenant.get();
  tenants_.emplace(name, std::move(tenant));
  tenants_open_->Set(static_cast<double>(tenants_.size()));
  return out;
}

LogTenantRouter::Route& LogTenantRouter::routeOf(const Labels& labels, const LogEntry& entry,
                                                 std::uint64_t stream_id) {
  const std::uint64_t generation = resolver_.generation();
  if (stream_id != 0 && stream_id == last_stream_id_ && generation == last_generation_ &&
      last_route_ != nullptr) {
    return *last_route_;
  }
  Route* route = routes_.find(stream_id, generation);
  if (route == nullptr) route = &routes_.put(stream_id, Route{tenantOf(labels, entry)});
  last_stream_id_ = stream_id;
  last_generation_ = generation;
  last_route_ = route;
  return *route;
}

bool LogTenantRouter::accept(const Labels& labels, const LogEntry& entry,
                             const LogCheckpoint& checkpoint) {
  return acceptStream(labels, entry, checkpoint, 0);
}

bool LogTenantRouter::acceptStream(const Labels& labels, const LogEntry& entry,
                                   const LogCheckpoint& checkpoint, std::uint64_t stream_id) {
  // Without tenants every entry is the default tenant's (paths recovered from an earlier run
  // only drain): the batcher as it was, one call further.
  if (!options_.tenants.configured()) {
    if (!default_->path->batcher().acceptStream(labels, entry, checkpoint, stream_id)) return false;
    default_->touched = true;
    return true;
  }
  Route& route = routeOf(labels, entry, stream_id);
  if (route.open == nullptr) {
    route.open = tenantNamed(route.tenant, route.over_cap);
    if (route.open == nullptr) return false;  // its spool cannot open now: the source waits
  }
  Tenant* tenant = route.open;
  if (tenant != last_source_tenant_ || checkpoint.source != last_source_) {
    const auto [it, added] = sources_.try_emplace(checkpoint.source, tenant);
    if (!added && it->second != tenant) {
      if (!route.moving) {
        route.moving = true;
        moves_->Increment();
      }
      // The source's earlier entries are in another tenant's batcher, positions not committed:
      // they are committed first (a batch wait and a commit interval), this entry waits.
      if (it->second->path->batcher().holdsSource(checkpoint.source)) return false;
      it->second = tenant;
    }
    last_source_ = checkpoint.source;
    last_source_tenant_ = tenant;
  }
  if (!tenant->path->batcher().acceptStream(labels, entry, checkpoint, stream_id)) return false;
  tenant->touched = true;
  if (route.over_cap) over_cap_lines_->Increment();
  return true;
}

bool LogTenantRouter::hasRoom() const {
  if (!options_.tenants.configured()) return default_->path->batcher().hasRoom();
  return std::ranges::any_of(tenants_,
                             [](const auto& t) { return t.second->path->batcher().hasRoom(); });
}

bool LogTenantRouter::hasRoomFor(const Labels& labels) {
  if (!options_.tenants.configured()) return default_->path->batcher().hasRoom();
  Route& route = routeOf(labels, LogEntry{}, 0);
  if (route.open == nullptr) route.open = tenantNamed(route.tenant, route.over_cap);
  return route.open != nullptr && route.open->path->batcher().hasRoom();
}

bool LogTenantRouter::flush(bool force) {
  bool spooled = false;
  for (auto& [name, tenant] : tenants_) {
    if (tenant->path->batcher().flush(force)) {
      tenant->path->notifyShipper();
      spooled = true;
    }
  }
  if (!durable_.empty()) {
    std::vector<LogCheckpoint> durable;
    durable.swap(durable_);
    if (on_durable_) on_durable_(durable);
  }
  if (!force) sweep(now());
  return spooled;
}

void LogTenantRouter::forgetRoutes() {
  routes_ = StreamMemo<Route>();
  last_route_ = nullptr;
  last_stream_id_ = 0;
  last_source_tenant_ = nullptr;
  last_source_.clear();
}

void LogTenantRouter::sweep(Clock::time_point at) {
  if (at - last_sweep_ < kSweepInterval) return;
  last_sweep_ = at;
  const bool sources_due = at - last_source_sweep_ >= kSourceSweepInterval;
  if (sources_due) {
    last_source_sweep_ = at;
    // A source whose tenant holds none of its positions may go anywhere: forgotten, so sources
    // that are gone (files, the agent's events) do not pile up.
    std::erase_if(sources_,
                  [](const auto& s) { return !s.second->path->batcher().holdsSource(s.first); });
    last_source_tenant_ = nullptr;
  }
  std::vector<std::string> idle;
  for (auto& [name, tenant] : tenants_) {
    if (tenant->touched) {
      tenant->touched = false;
      tenant->last_entry = at;
      continue;
    }
    if (tenant.get() == default_ || at - tenant->last_entry < options_.tenants.idle_timeout) {
      continue;
    }
    if (tenant->path->batcher().empty() && tenant->path->drained()) idle.push_back(name);
  }
  if (idle.empty()) return;
  for (const auto& name : idle) {
    const auto it = tenants_.find(name);
    Tenant* tenant = it->second.get();
    std::erase_if(sources_, [&](const auto& s) { return s.second == tenant; });
    tenant->path->discard();
    tenants_.erase(it);
  }
  forgetRoutes();
  tenants_open_->Set(static_cast<double>(tenants_.size()));
}

bool LogTenantRouter::waitingForConsumer() const {
  return std::ranges::any_of(
      tenants_, [](const auto& t) { return t.second->path->batcher().waitingForConsumer(); });
}

void LogTenantRouter::forEach(
    const std::function<void(const std::string& tenant, LogTenantPath& path)>& fn) {
  for (auto& [name, tenant] : tenants_) fn(name, *tenant->path);
}

void LogTenantRouter::close() {
  forgetRoutes();
  sources_.clear();
  default_ = nullptr;
  tenants_.clear();
}

}  // namespace nodewarden
