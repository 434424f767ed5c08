// PlacementFeed against FakeApiServer on 127.0.0.1: the condition, annotation and taint written to
// the stored Node (other taints, conditions and annotations kept), 409 re-read and retried, 500
// backed off, 403 logged once, dry run silent on the wire, and update() never waiting on a hung
// server.
//
// What a reader gets wrong: the holds are 0 here (PlacementDecision has its own tests), so one
// update() decides; the feed's worker applies it asynchronously, and every wait for its effect is
// bounded (kWait). Backoffs are a few milliseconds so the retry tests stay fast.
#include "exporters/kube/placement_feed.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/fake_apiserver.h"

namespace nodewarden::kube {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeApiRequest;
using testing::FakeApiServer;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{5000};
constexpr const char* kNode = "node-a";
constexpr const char* kTaintKey = "nodewarden.io/noisy-neighbor";
constexpr const char* kAnnotation = "nodewarden.io/signals";

bool eventually(const std::function<bool()>& condition, milliseconds timeout = kWait) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

json otherTaint() { return json{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}; }
json ourTaint() { return json{{"key", kTaintKey}, {"effect", "PreferNoSchedule"}}; }

json baseNode() {
  return json{{"kind", "Node"},
              {"apiVersion", "v1"},
              {"metadata", {{"name", kNode}, {"annotations", {{"team", "data"}}}}},
              {"spec", {{"taints", json::array({otherTaint()})}}},
              {"status",
               {{"conditions", json::array({{{"type", "Ready"},
                                             {"status", "True"},
                                             {"reason", "KubeletReady"},
                                             {"lastTransitionTime", "2024-01-01T00:00:00Z"}}})}}}};
}

detector::NodeSignals signalsWith(double score, std::string summary = {}) {
  detector::NodeSignals s;
  s.interference_score = score;
  s.saturation = {0.9, 0.5, std::nullopt};
  s.headroom = {0.1, 0.5, std::nullopt};
  s.victims = score > 0.2 ? 1 : 0;
  s.antagonists = score > 0.2 ? 1 : 0;
  s.summary = std::move(summary);
  return s;
}

std::optional<json> condition(const json& node, const std::string& type) {
  for (const json& c : node["status"]["conditions"]) {
    if (c.value("type", "") == type) return c;
  }
  return std::nullopt;
}

double metric(prometheus::Registry& registry, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      const bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& want) {
        return std::any_of(m.label.begin(), m.label.end(), [&](const auto& l) {
          return l.name == want.first && l.value == want.second;
        });
      });
      if (match) total += m.gauge.value + m.counter.value;
    }
  }
  return total;
}

// Captures spdlog's output for one test.
class LogCapture {
 public:
  LogCapture()
      : previous_(spdlog::default_logger()),
        logger_(std::make_shared<spdlog::logger>(
            "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_))) {
    spdlog::set_default_logger(logger_);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string text() {
    logger_->flush();
    return out_.str();
  }
  std::size_t count(const std::string& needle) {
    const std::string all = text();
    std::size_t n = 0;
    for (auto pos = all.find(needle); pos != std::string::npos; pos = all.find(needle, pos + 1)) {
      ++n;
    }
    return n;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<spdlog::logger> logger_;
};

class PlacementFeedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = FakeApiServer::start();
    ASSERT_TRUE(started) << started.error();
    server_ = std::move(*started);
    server_->putNode(baseNode());
  }

  PlacementOptions options() const {
    PlacementOptions o;
    o.apiserver_url = server_->url();
    o.node_name = kNode;
    o.on_hold = milliseconds(0);
    o.off_hold = milliseconds(0);
    o.min_taint_duration = milliseconds(0);
    o.initial_backoff = milliseconds(5);
    o.max_backoff = milliseconds(20);
    o.timeout = milliseconds(2000);
    o.refresh_interval = seconds(3600);
    o.wall_clock = [this] {
      return std::chrono::system_clock::time_point{seconds(1714564800 + 60 * wall_minutes_.load())};
    };
    return o;
  }

  std::unique_ptr<PlacementFeed> makeFeed(PlacementOptions o) {
    auto made = PlacementFeed::create(std::move(o), errors_, registry_);
    EXPECT_TRUE(made) << (made ? "" : made.error());
    return made ? std::move(*made) : nullptr;
  }

  json node() const { return server_->node(kNode).value_or(json()); }
  bool tainted() const {
    const json n = node();
    const json& taints = n["spec"]["taints"];
    return std::find(taints.begin(), taints.end(), ourTaint()) != taints.end();
  }
  std::vector<FakeApiRequest> nodeRequests() const {
    std::vector<FakeApiRequest> out;
    for (auto& r : server_->requests()) {
      if (r.path.starts_with("/api/v1/nodes/")) out.push_back(r);
    }
    return out;
  }

  std::unique_ptr<FakeApiServer> server_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::atomic<int> wall_minutes_{0};
  Clock::time_point now_ = Clock::now();
};

TEST_F(PlacementFeedTest, PatchesConditionAnnotationAndTaintKeepingEverythingElse) {
  auto feed = makeFeed(options());
  ASSERT_NE(feed, nullptr);
  const std::string summary = "cpu: shop/web stalled 42% by others (batch/etl: cpu_cores 7.5)";
  feed->update(signalsWith(0.42, summary), now_);
  ASSERT_TRUE(eventually([&] { return tainted() && condition(node(), "NoisyNeighbor"); }));
  ASSERT_TRUE(eventually([&] { return node()["metadata"]["annotations"].contains(kAnnotation); }));

  json n = node();
  EXPECT_EQ(n["spec"]["taints"], json::array({otherTaint(), ourTaint()}));
  const json c = *condition(n, "NoisyNeighbor");
  EXPECT_EQ(c["status"], "True");
  EXPECT_EQ(c["reason"], "InterferenceHigh");
  EXPECT_EQ(c["message"], summary);
  EXPECT_EQ(c["lastTransitionTime"], "2024-05-01T12:00:00Z");
  EXPECT_EQ(c["lastHeartbeatTime"], "2024-05-01T12:00:00Z");
  EXPECT_EQ(condition(n, "Ready")->at("reason"), "KubeletReady");  // merged by type
  EXPECT_EQ(n["metadata"]["annotations"]["team"], "data");
  const json value = json::parse(n["metadata"]["annotations"][kAnnotation].get<std::string>());
  EXPECT_DOUBLE_EQ(value["interference_score"].get<double>(), 0.42);
  EXPECT_EQ(value["saturation"], (json{{"cpu", 0.9}, {"memory", 0.5}}));
  EXPECT_EQ(value["headroom"], (json{{"cpu", 0.1}, {"memory", 0.5}}));
  EXPECT_EQ(value["victims"], 1);
  EXPECT_EQ(value["antagonists"], 1);
  EXPECT_EQ(value["tainted"], true);
  EXPECT_EQ(value["updated"], "2024-05-01T12:00:00Z");

  // The requests as the API server saw them.
  bool status_patch = false;
  bool annotation_patch = false;
  bool taint_patch = false;
  for (const auto& r : nodeRequests()) {
    if (r.method != "PATCH") continue;
    const json body = json::parse(r.body);
    if (r.path == "/api/v1/nodes/node-a/status") {
      status_patch = true;
      EXPECT_EQ(r.content_type, "application/strategic-merge-patch+json");
    } else if (body.contains("spec")) {
      taint_patch = true;
      EXPECT_EQ(r.content_type, "application/merge-patch+json");
      EXPECT_TRUE(body["metadata"]["resourceVersion"].is_string());
    } else {
      annotation_patch = true;
      EXPECT_EQ(r.content_type, "application/merge-patch+json");
    }
  }
  EXPECT_TRUE(status_patch && annotation_patch && taint_patch);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_tainted"), 1);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_condition_status"), 1);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_transitions_total", {{"state", "on"}}), 1);
  EXPECT_GE(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "taint"}, {"code", "200"}}),
            1);
  EXPECT_GE(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "get"}, {"code", "200"}}),
            1);

  // Interference gone: the taint comes off, the other stays exactly; the condition turns False.
  wall_minutes_ = 10;
  feed->update(signalsWith(0.0, "no interference"), now_ + seconds(5));
  ASSERT_TRUE(eventually([&] {
    const auto c2 = condition(node(), "NoisyNeighbor");
    return !tainted() && c2 && c2->at("status") == "False";
  }));
  n = node();
  EXPECT_EQ(n["spec"]["taints"], json::array({otherTaint()}));
  EXPECT_EQ(condition(n, "NoisyNeighbor")->at("reason"), "InterferenceLow");
  EXPECT_EQ(condition(n, "NoisyNeighbor")->at("lastTransitionTime"), "2024-05-01T12:10:00Z");
  ASSERT_TRUE(eventually([&] {
    return metric(registry_, "nodewarden_placement_tainted") == 0 && !feed->status().tainted;
  }));
  EXPECT_EQ(metric(registry_, "nodewarden_placement_transitions_total", {{"state", "off"}}), 1);
  EXPECT_FALSE(feed->status().condition_status);
  EXPECT_TRUE(feed->status().last_error.empty());
}

TEST_F(PlacementFeedTest, TransitionTimeMovesOnlyWithTheStatus) {
  PlacementOptions o = options();
  o.refresh_interval = milliseconds(0);  // a heartbeat with every update
  auto feed = makeFeed(o);
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.5, "first"), now_);
  ASSERT_TRUE(eventually([&] { return tainted(); }));
  wall_minutes_ = 5;
  feed->update(signalsWith(0.6, "second"), now_ + seconds(5));
  ASSERT_TRUE(eventually([&] {
    const auto c = condition(node(), "NoisyNeighbor");
    return c && c->at("message") == "second";
  }));
  const json c = *condition(node(), "NoisyNeighbor");
  EXPECT_EQ(c["lastTransitionTime"], "2024-05-01T12:00:00Z");
  EXPECT_EQ(c["lastHeartbeatTime"], "2024-05-01T12:05:00Z");
}

TEST_F(PlacementFeedTest, AnnotationIsRewrittenOnlyForAMaterialChange) {
  auto feed = makeFeed(options());  // refresh_interval: an hour
  ASSERT_NE(feed, nullptr);
  const auto annotationPatches = [&] {
    const auto all = nodeRequests();
    return std::count_if(all.begin(), all.end(), [](const FakeApiRequest& r) {
      return r.method == "PATCH" && r.body.find("\"annotations\"") != std::string::npos;
    });
  };
  const auto score = [&] {
    const json n = node();
    if (!n["metadata"]["annotations"].contains(kAnnotation)) return -1.0;
    return json::parse(n["metadata"]["annotations"][kAnnotation].get<std::string>())
        .at("interference_score")
        .get<double>();
  };
  feed->update(signalsWith(0.5), now_);
  ASSERT_TRUE(eventually([&] { return score() == 0.5; }));
  for (int i = 1; i <= 20; ++i) {  // within 0.05 of what was written: nothing to send
    feed->update(signalsWith(i % 2 == 0 ? 0.52 : 0.48), now_ + seconds(5 * i));
  }
  feed->update(signalsWith(0.6), now_ + seconds(105));
  ASSERT_TRUE(eventually([&] { return score() == 0.6; }));
  EXPECT_EQ(annotationPatches(), 2);
}

TEST_F(PlacementFeedTest, ConflictRereadsTheNodeAndKeepsTheOtherWritersTaint) {
  auto feed = makeFeed(options());
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.0), now_);  // the first GET and the low condition
  ASSERT_TRUE(eventually([&] { return condition(node(), "NoisyNeighbor").has_value(); }));
  ASSERT_TRUE(eventually([&] { return node()["metadata"]["annotations"].contains(kAnnotation); }));

  const json cordon = {{"key", "node.kubernetes.io/unschedulable"}, {"effect", "NoSchedule"}};
  server_->changeNodeAfterNextGet([&](json& n) { n["spec"]["taints"].push_back(cordon); });
  const std::size_t before = nodeRequests().size();
  feed->update(signalsWith(0.9), now_ + seconds(5));
  ASSERT_TRUE(eventually([&] { return tainted(); }));
  EXPECT_EQ(node()["spec"]["taints"], json::array({otherTaint(), cordon, ourTaint()}));

  std::vector<std::pair<std::string, int>> taint_calls;  // after the update: GET/PATCH, status
  const auto all = nodeRequests();
  for (std::size_t i = before; i < all.size(); ++i) {
    if (all[i].method == "GET" || all[i].body.find("\"spec\"") != std::string::npos) {
      taint_calls.emplace_back(all[i].method, all[i].status);
    }
  }
  const std::vector<std::pair<std::string, int>> expected = {
      {"GET", 200}, {"PATCH", 409}, {"GET", 200}, {"PATCH", 200}};
  EXPECT_EQ(taint_calls, expected);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "taint"}, {"code", "409"}}),
            1);
}

TEST_F(PlacementFeedTest, ServerErrorsBackOffThenSucceed) {
  server_->answerNodes(500, 3);
  auto feed = makeFeed(options());
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.7), now_);
  ASSERT_TRUE(eventually([&] { return tainted(); }));
  const auto requests = nodeRequests();
  EXPECT_EQ(std::count_if(requests.begin(), requests.end(),
                          [](const FakeApiRequest& r) { return r.status == 500; }),
            3);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "get"}, {"code", "500"}}),
            3);
  EXPECT_EQ(errors_.count("placement", "apiserver_http_error"), 3);
  ASSERT_TRUE(eventually([&] { return feed->status().tainted; }));
  EXPECT_TRUE(eventually([&] { return feed->status().last_error.empty(); }));
}

TEST_F(PlacementFeedTest, ConnectionRefusedIsRetriedAndCounted) {
  PlacementOptions o = options();
  o.apiserver_url = "http://127.0.0.1:1";  // nothing listens there
  auto feed = makeFeed(o);
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.7), now_);
  ASSERT_TRUE(eventually([&] { return errors_.count("placement", "apiserver_connect") >= 2; }));
  EXPECT_GE(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "get"}, {"code", "error"}}),
            2);
  EXPECT_FALSE(feed->status().last_error.empty());
  EXPECT_TRUE(feed->status().desired);
  EXPECT_FALSE(feed->status().tainted);
}

TEST_F(PlacementFeedTest, ForbiddenIsLoggedOnceNamingTheRbacAndCounted) {
  LogCapture logs;
  server_->answerNodes(403);
  auto feed = makeFeed(options());
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.7), now_);
  ASSERT_TRUE(eventually([&] { return errors_.count("placement", "apiserver_forbidden") >= 3; }));
  feed.reset();
  EXPECT_EQ(logs.count("apiserver_forbidden"), 1U) << logs.text();
  EXPECT_NE(logs.text().find("nodes/status"), std::string::npos);
  EXPECT_GE(metric(registry_, "nodewarden_placement_api_requests_total",
                   {{"operation", "get"}, {"code", "403"}}),
            3);
  EXPECT_FALSE(tainted());
}

TEST_F(PlacementFeedTest, DryRunSendsNothingAndTracksTheWouldBeState) {
  LogCapture logs;
  PlacementOptions o = options();
  o.dry_run = true;
  auto feed = makeFeed(o);
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.8, "dry"), now_);
  ASSERT_TRUE(eventually([&] { return feed->status().tainted; }));
  const PlacementStatus s = feed->status();
  EXPECT_TRUE(s.dry_run);
  EXPECT_TRUE(s.condition_status);
  EXPECT_EQ(metric(registry_, "nodewarden_placement_tainted"), 1);
  feed.reset();
  EXPECT_TRUE(server_->requests().empty());
  EXPECT_EQ(node()["spec"]["taints"], json::array({otherTaint()}));
  const std::string text = logs.text();
  EXPECT_NE(text.find("would PATCH /api/v1/nodes/node-a/status"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("type":"NoisyNeighbor")"), std::string::npos) << text;
  EXPECT_NE(text.find(R"("key":"nodewarden.io/noisy-neighbor")"), std::string::npos) << text;
}

TEST_F(PlacementFeedTest, AdoptsTheTaintTheNodeAlreadyCarries) {
  json n = baseNode();
  n["spec"]["taints"].push_back(ourTaint());
  server_->putNode(n);
  PlacementOptions o = options();
  o.min_taint_duration = seconds(3600);
  auto feed = makeFeed(o);
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.0), now_);  // a fresh detector: nothing seen yet
  ASSERT_TRUE(eventually([&] { return condition(node(), "NoisyNeighbor").has_value(); }));
  ASSERT_TRUE(eventually([&] { return node()["metadata"]["annotations"].contains(kAnnotation); }));
  EXPECT_TRUE(tainted());
  EXPECT_TRUE(feed->status().desired);
  EXPECT_TRUE(feed->status().tainted);
  EXPECT_EQ(condition(node(), "NoisyNeighbor")->at("status"), "True");
  for (const auto& r : nodeRequests()) {
    EXPECT_EQ(r.body.find("\"spec\""), std::string::npos) << "no taint patch: " << r.body;
  }
}

TEST_F(PlacementFeedTest, UpdateNeverWaitsForAHungServerAndShutdownIsPrompt) {
  server_->holdNodes(true);
  auto feed = makeFeed(options());
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.9), now_);
  ASSERT_TRUE(server_->waitForHeldNodes(1, kWait));
  // The request in flight would take the whole timeout (2 s) if update() waited on it; the bounds
  // leave room for a loaded machine descheduling the test thread now and then.
  std::vector<Clock::duration> took;
  for (int i = 1; i <= 200; ++i) {
    const auto start = Clock::now();
    feed->update(signalsWith(i % 2 == 0 ? 0.9 : 0.0), now_ + milliseconds(i));
    took.push_back(Clock::now() - start);
  }
  std::sort(took.begin(), took.end());
  EXPECT_LT(took[took.size() / 2], milliseconds(1));
  EXPECT_LT(took.back(), milliseconds(100));
  EXPECT_FALSE(feed->status().tainted);
  const auto start = Clock::now();
  feed.reset();  // the GET is still held by the server
  EXPECT_LT(Clock::now() - start, milliseconds(500));
  server_->holdNodes(false);
}

TEST_F(PlacementFeedTest, ARequestOutlivingTheTimeoutFailsAndIsRetried) {
  server_->holdNodes(true);
  PlacementOptions o = options();
  o.timeout = milliseconds(100);
  auto feed = makeFeed(o);
  ASSERT_NE(feed, nullptr);
  feed->update(signalsWith(0.9), now_);
  ASSERT_TRUE(eventually([&] { return errors_.count("placement", "apiserver_connect") >= 2; }));
  EXPECT_NE(feed->status().last_error.find("Timeout"), std::string::npos)
      << feed->status().last_error;
  server_->holdNodes(false);
  EXPECT_TRUE(eventually([&] { return tainted(); }));
}

TEST_F(PlacementFeedTest, CreateRejectsBadOptions) {
  PlacementOptions o = options();
  o.node_name.clear();
  EXPECT_FALSE(PlacementFeed::create(o, errors_, registry_));
  o = options();
  o.off_score = 0.5;  // above on_score
  EXPECT_FALSE(PlacementFeed::create(o, errors_, registry_));
  o = options();
  o.apiserver_url = "ftp://example";
  EXPECT_FALSE(PlacementFeed::create(o, errors_, registry_));
  o.dry_run = true;  // no API server needed
  o.apiserver_url.clear();
  EXPECT_TRUE(PlacementFeed::create(o, errors_, registry_));
}

}  // namespace
}  // namespace nodewarden::kube
