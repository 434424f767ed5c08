// LogTenantRouter on real batchers and spools in a temp dir (no shipper: a test "sends" by
// acknowledging a spool's front): which tenant each entry goes to (pod label, namespace map,
// default), the cap, a full tenant refusing only its own entries, a source that changes tenant
// waiting for its old tenant's commit, positions gathered from every tenant, idle tenants closed.
// Also Loki's tenant id rule and the spool directory names.
//
// What a reader gets wrong: a batcher's spool room is asked once per batch, so "full" here is a
// batch at batch_bytes that was not flushed, the same hasRoom() = false a full spool gives.
#include "pipeline/log_tenant_router.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pipeline/self_metrics.h"
#include "pipeline/spool.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;

double metric(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    double sum = 0;
    for (const auto& m : family.metric) sum += m.counter.value + m.gauge.value;
    return sum;
  }
  return -1;
}

// Pod labels by uid, with a generation the test moves when it changes them.
class PodLabels final : public ContainerMetadata {
 public:
  void refresh() override {}
  [[nodiscard]] std::optional<ContainerIdentity> container(std::string_view) const override {
    return std::nullopt;
  }
  [[nodiscard]] std::optional<PodIdentity> pod(std::string_view uid) const override {
    const auto it = labels.find(std::string(uid));
    if (it == labels.end()) return std::nullopt;
    PodIdentity p;
    p.labels = it->second;
    return p;
  }
  [[nodiscard]] std::uint64_t generation() const override { return gen; }
  std::map<std::string, std::map<std::string, std::string>> labels;
  std::uint64_t gen = 1;
};

struct TestPath final : LogTenantPath {
  std::string tenant;
  fs::path dir;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<LogBatcher> batch;
  int notified = 0;
  bool* discarded = nullptr;
  LogBatcher& batcher() override { return *batch; }
  void notifyShipper() override { ++notified; }
  [[nodiscard]] bool drained() const override {
    return spool->batches() == 0 && spool->heldBatches() == 0;
  }
  void discard() override {
    if (discarded != nullptr) *discarded = true;
  }
  // What the shipper would do on 2xx: every batch acknowledged. Returns the lines.
  std::size_t sendAll() {
    std::size_t lines = 0;
    while (auto b = spool->front()) {
      lines += b->lines;
      spool->acknowledge(b->sequence);
    }
    return lines;
  }
};

class LogTenantRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nodewarden-tenants-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    router_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(LogTenantOptions tenants, std::string default_tenant = "platform") {
    LogTenantRouterOptions o;
    o.tenants = std::move(tenants);
    o.default_tenant = std::move(default_tenant);
    o.now = [this] { return now_; };
    router_ = std::make_unique<LogTenantRouter>(
        o, &metadata_,
        [this](const std::string& tenant, LogBatcher::OnDurable on_durable)
            -> std::expected<std::unique_ptr<LogTenantPath>, std::string> {
          if (tenant == "broken") return std::unexpected("cannot open");
          auto p = std::make_unique<TestPath>();
          p->tenant = tenant;
          p->dir = dir_ / tenantDirName(tenant);
          SpoolOptions so;
          so.dir = p->dir;
          so.fsync = false;
          auto spool = Spool::open(so, errors_);
          if (!spool) return std::unexpected(spool.error());
          p->spool = std::move(*spool);
          LogBatcherOptions bo;
          bo.batch_bytes = batch_bytes_;
          bo.batch_wait = std::chrono::milliseconds(0);  // due at every flush
          bo.now = [this] { return now_; };
          p->batch = std::make_unique<LogBatcher>(bo, *p->spool, std::move(on_durable), registry_,
                                                  errors_);
          p->discarded = &discarded_[tenant];
          paths_[tenant] = p.get();
          return p;
        },
        [this](const std::vector<LogCheckpoint>& cps) { durable_.push_back(cps); }, registry_,
        errors_);
    auto opened = router_->open(recovered_);
    ASSERT_TRUE(opened.has_value()) << opened.error();
  }

  static Labels pod(const std::string& ns, const std::string& name) {
    return {{"container", "app"}, {"namespace", ns}, {"pod", name}};
  }
  static LogEntry line(const std::string& text, const std::string& uid = "") {
    LogEntry e;
    e.timestamp_ns = 1;
    e.line = text;
    if (!uid.empty()) e.metadata = {{"pod_uid", uid}};
    return e;
  }
  static LogCheckpoint at(const std::string& source, std::uint64_t offset) {
    LogCheckpoint cp;
    cp.source = source;
    cp.offset = offset;
    return cp;
  }
  // The lines each tenant's spool holds, by tenant.
  std::map<std::string, std::size_t> spooled() {
    std::map<std::string, std::size_t> out;
    router_->forEach([&](const std::string& tenant, LogTenantPath& path) {
      out[tenant] = static_cast<TestPath&>(path).sendAll();
    });
    return out;
  }

  fs::path dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  PodLabels metadata_;
  std::chrono::steady_clock::time_point now_ = std::chrono::steady_clock::now();
  std::size_t batch_bytes_ = 1 << 20;
  std::vector<std::string> recovered_;
  std::map<std::string, TestPath*> paths_;
  std::map<std::string, bool> discarded_;
  std::vector<std::vector<LogCheckpoint>> durable_;
  std::unique_ptr<LogTenantRouter> router_;
};

TEST(LokiTenantRule, AcceptsWhatLokiAcceptsAndRefusesTheRest) {
  for (const std::string& ok :
       std::vector<std::string>{"a", "team-a", "Team_B.prod", "x!*'()", std::string(150, 'z')}) {
    EXPECT_TRUE(validateLokiTenant(ok).has_value()) << ok;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "a|b", "a b", "a/b", "t\x01", "caf\xc3\xa9",
                                std::string(151, 'z'), "a:b"}) {
    EXPECT_FALSE(validateLokiTenant(bad).has_value()) << bad;
  }
  EXPECT_NE(validateLokiTenant("a|b").error().find("'|'"), std::string::npos);
}

TEST(LokiTenantDirName, RoundTripsAndRefusesNamesItWouldNotWrite) {
  for (const std::string& tenant :
       std::vector<std::string>{"a", "team-a", "x!*'()", ".hidden", "a.b", "...", "50%"}) {
    if (!validateLokiTenant(tenant)) continue;  // "50%" is no tenant: never written
    const std::string name = tenantDirName(tenant);
    EXPECT_EQ(name.find_first_of("!*'()"), std::string::npos) << name;
    auto back = tenantFromDirName(name);
    ASSERT_TRUE(back.has_value()) << name << ": " << back.error();
    EXPECT_EQ(*back, tenant);
  }
  for (const std::string bad : {"", "a", "t-", "t-.", "t-..", "t-a%2", "t-a%", "t-a%41", "t-a%2a",
                                "t-a*", "t-a|b", "t-a%7C", "x-a"}) {
    EXPECT_FALSE(tenantFromDirName(bad).has_value()) << bad;
  }
}

TEST_F(LogTenantRouterTest, PodLabelThenNamespaceMapThenDefault) {
  LogTenantOptions t;
  t.namespaces = {{"team-a", "a"}, {"team-b", "b"}};
  t.pod_label = "loki-tenant";
  metadata_.labels["uid-own"] = {{"loki-tenant", "own"}};
  metadata_.labels["uid-bad"] = {{"loki-tenant", "no|pe"}};
  start(t);
  ASSERT_TRUE(router_->accept(pod("team-a", "x"), line("to a"), at("/f/a", 1)));
  ASSERT_TRUE(router_->accept(pod("team-b", "y"), line("to b"), at("/f/b", 1)));
  ASSERT_TRUE(router_->accept(pod("team-a", "z"), line("to own", "uid-own"), at("/f/own", 1)));
  // A label value Loki would refuse: the namespace's tenant, counted.
  ASSERT_TRUE(router_->accept(pod("team-b", "w"), line("to b too", "uid-bad"), at("/f/bad", 1)));
  ASSERT_TRUE(router_->accept(pod("other", "v"), line("to default"), at("/f/o", 1)));
  ASSERT_TRUE(router_->accept({{"unit", "kubelet.service"}}, line("journal"), at("journal", 1)));
  ASSERT_TRUE(router_->flush());
  EXPECT_EQ(spooled(),
            (std::map<std::string, std::size_t>{{"a", 1}, {"b", 2}, {"own", 1}, {"platform", 2}}));
  EXPECT_EQ(errors_.count("logs", "tenant_invalid"), 1);
  EXPECT_EQ(metric(registry_, "nodewarden_log_tenants"), 4);
}

TEST_F(LogTenantRouterTest, WithoutTenantsEverythingGoesToTheDefault) {
  start(LogTenantOptions{}, "");
  ASSERT_TRUE(router_->accept(pod("team-a", "x"), line("one"), at("/f/a", 1)));
  ASSERT_TRUE(router_->accept(pod("team-b", "y"), line("two"), at("/f/b", 1)));
  ASSERT_TRUE(router_->flush());
  EXPECT_EQ(spooled(), (std::map<std::string, std::size_t>{{"", 2}}));
}

TEST_F(LogTenantRouterTest, PastTheCapLinesGoToTheDefaultAndAreCounted) {
  LogTenantOptions t;
  t.namespaces = {{"n1", "a"}, {"n2", "b"}, {"n3", "c"}};
  t.max_tenants = 3;  // the default and two more
  start(t);
  ASSERT_TRUE(router_->accept(pod("n1", "x"), line("1"), at("/f/1", 1)));
  ASSERT_TRUE(router_->accept(pod("n2", "x"), line("2"), at("/f/2", 1)));
  ASSERT_TRUE(router_->accept(pod("n3", "x"), line("3"), at("/f/3", 1)));
  ASSERT_TRUE(router_->accept(pod("n3", "x"), line("3 again"), at("/f/3", 2)));
  ASSERT_TRUE(router_->flush());
  EXPECT_EQ(spooled(), (std::map<std::string, std::size_t>{{"a", 1}, {"b", 1}, {"platform", 2}}));
  EXPECT_EQ(metric(registry_, "nodewarden_log_tenant_overflow_lines_total"), 2);
}

TEST_F(LogTenantRouterTest, AFullTenantRefusesOnlyItsOwnLines) {
  LogTenantOptions t;
  t.namespaces = {{"slow", "s"}, {"fast", "f"}};
  batch_bytes_ = 10;
  start(t);
  // s's batch reaches batch_bytes and is not flushed: its batcher has no room.
  ASSERT_TRUE(router_->acceptStream(pod("slow", "x"), line("0123456789"), at("/f/s", 10), 7));
  EXPECT_FALSE(router_->acceptStream(pod("slow", "x"), line("more"), at("/f/s", 15), 7));
  EXPECT_TRUE(router_->hasRoom());
  EXPECT_TRUE(router_->acceptStream(pod("fast", "y"), line("flows"), at("/f/f", 6), 8));
  EXPECT_FALSE(router_->hasRoomFor(pod("slow", "z")));
  EXPECT_TRUE(router_->hasRoomFor(pod("fast", "z")));
  ASSERT_TRUE(router_->flush());
  EXPECT_TRUE(router_->acceptStream(pod("slow", "x"), line("more"), at("/f/s", 15), 7));
}

TEST_F(LogTenantRouterTest, EveryTenantsPositionsArePassedOnInOneCall) {
  LogTenantOptions t;
  t.namespaces = {{"n1", "a"}};
  start(t);
  ASSERT_TRUE(router_->accept(pod("n1", "x"), line("1"), at("/f/1", 3)));
  ASSERT_TRUE(router_->accept(pod("n2", "x"), line("2"), at("/f/2", 4)));
  ASSERT_TRUE(router_->flush());
  ASSERT_EQ(durable_.size(), 1U);
  std::map<std::string, std::uint64_t> got;
  for (const auto& cp : durable_[0]) got[cp.source] = cp.offset;
  EXPECT_EQ(got, (std::map<std::string, std::uint64_t>{{"/f/1", 3}, {"/f/2", 4}}));
  EXPECT_EQ(paths_["a"]->notified, 1);
  EXPECT_EQ(paths_["platform"]->notified, 1);
}

TEST_F(LogTenantRouterTest, ASourceChangesTenantOnlyAfterItsOldTenantCommittedIt) {
  LogTenantOptions t;
  t.pod_label = "team";
  start(t);
  const Labels labels = pod("ns", "p");
  // The pod is not known yet: the default tenant.
  ASSERT_TRUE(router_->acceptStream(labels, line("early", "uid-1"), at("/f/p", 6), 5));
  metadata_.labels["uid-1"] = {{"team", "late"}};
  ++metadata_.gen;
  // The old tenant still holds the file's position: the line waits.
  EXPECT_FALSE(router_->acceptStream(labels, line("later", "uid-1"), at("/f/p", 12), 5));
  EXPECT_TRUE(paths_["platform"]->batch->holdsSource("/f/p"));
  ASSERT_TRUE(router_->flush());  // spooled, synced and committed (commit_interval 0)
  ASSERT_EQ(durable_.size(), 1U);
  EXPECT_EQ(durable_[0].front().offset, 6U);
  EXPECT_TRUE(router_->acceptStream(labels, line("later", "uid-1"), at("/f/p", 12), 5));
  ASSERT_TRUE(router_->flush());
  EXPECT_EQ(durable_.back().front().offset, 12U);
  EXPECT_EQ(spooled(), (std::map<std::string, std::size_t>{{"late", 1}, {"platform", 1}}));
  EXPECT_EQ(metric(registry_, "nodewarden_log_tenant_moves_total"), 1);
}

TEST_F(LogTenantRouterTest, AnIdleDrainedTenantIsClosedAndOpenedAgainWhenNeeded) {
  LogTenantOptions t;
  t.namespaces = {{"n1", "a"}};
  t.idle_timeout = std::chrono::minutes(1);
  start(t);
  ASSERT_TRUE(router_->accept(pod("n1", "x"), line("1"), at("/f/1", 1)));
  ASSERT_TRUE(router_->flush());
  EXPECT_EQ(router_->openTenants(), 2U);
  now_ += std::chrono::minutes(2);
  router_->flush();  // a's spool still holds its batch: not closed
  EXPECT_EQ(router_->openTenants(), 2U);
  EXPECT_EQ(paths_["a"]->sendAll(), 1U);
  now_ += std::chrono::seconds(2);
  router_->flush();
  EXPECT_EQ(router_->openTenants(), 1U);  // the default tenant stays
  EXPECT_TRUE(discarded_["a"]);
  EXPECT_FALSE(discarded_["platform"]);
  ASSERT_TRUE(router_->accept(pod("n1", "x"), line("2"), at("/f/1", 2)));
  EXPECT_EQ(router_->openTenants(), 2U);
}

TEST_F(LogTenantRouterTest, RecoveredTenantsAreOpenedToDrainAndAFailedOpenMakesLinesWait) {
  recovered_ = {"old"};
  LogTenantOptions t;
  t.namespaces = {{"n1", "broken"}};
  start(t);
  EXPECT_EQ(router_->openTenants(), 2U);
  EXPECT_TRUE(paths_.contains("old"));
  EXPECT_FALSE(router_->accept(pod("n1", "x"), line("waits"), at("/f/1", 1)));
  EXPECT_EQ(errors_.count("logs", "tenant_open"), 1);
  // Not tried again for every line.
  EXPECT_FALSE(router_->accept(pod("n1", "x"), line("waits"), at("/f/1", 1)));
  EXPECT_EQ(errors_.count("logs", "tenant_open"), 1);
}

}  // namespace
}  // namespace nodewarden
