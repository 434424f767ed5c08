// ApiServerPodWatcher against FakeApiServer on 127.0.0.1 (list, watch, bookmarks, a dropped
// connection, 410 Gone both ways, 403, garbage lines, stop), and the Pod / watch event parsers on
// the fixtures in tests/fixtures/apiserver (shaped like `kubectl get pod -o json`).
//
// What a reader gets wrong: the fake keeps an event history, so a test does not race the
// watcher's reconnects: what it changes while the watcher is away is replayed when the watch
// resumes. Tests assert on the requests the fake recorded (resourceVersion, query) to tell a
// resume from a re-list. Every wait is bounded (kWait) and waits for an event; where a test checks
// time the watcher measures (staleness, the grace period), it moves a test clock by hand.
#include "collectors/pods/apiserver_pods.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/fakes/fake_apiserver.h"

namespace nodewarden::pods {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using testing::FakeApiRequest;
using testing::FakeApiServer;
using testing::GoneMode;

constexpr milliseconds kWait{5000};
constexpr const char* kNode = "node-a";
constexpr const char* kWebUid = "3f1c2a9e-5b7d-4c8e-9a1f-2b3c4d5e6f70";
constexpr const char* kJobUid = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
constexpr const char* kEnvoyId = "a3d5f7b9c1e3a5d7f9b1c3e5a7d9f1b3c5e7a9d1f3b5c7e9a1d3f5b7c9e1a3d5";
constexpr const char* kJobContainerId =
    "4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a6c8e0b2d4f6a";

std::string fixtureText(const std::string& name) {
  std::ifstream in(fs::path(NODEWARDEN_FIXTURES) / "apiserver" / name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

json fixturePod(const std::string& name) { return json::parse(fixtureText(name)); }

// Polls a condition until it holds or the bound passes.
bool eventually(const std::function<bool()>& condition, milliseconds timeout = kWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

std::vector<FakeApiRequest> lists(const std::vector<FakeApiRequest>& requests) {
  std::vector<FakeApiRequest> out;
  for (const auto& r : requests) {
    if (!r.watch()) out.push_back(r);
  }
  return out;
}

std::vector<FakeApiRequest> watches(const std::vector<FakeApiRequest>& requests) {
  std::vector<FakeApiRequest> out;
  for (const auto& r : requests) {
    if (r.watch()) out.push_back(r);
  }
  return out;
}

class ApiServerPodsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = FakeApiServer::start();
    ASSERT_TRUE(fake.has_value()) << fake.error();
    fake_ = std::move(*fake);
    options_.url = fake_->url();
    options_.node_name = kNode;
    options_.watch_timeout = std::chrono::seconds(30);
    options_.connect_timeout = milliseconds(2000);
    options_.list_timeout = milliseconds(5000);
    options_.backoff_initial = milliseconds(20);
    options_.backoff_max = milliseconds(100);
  }

  void TearDown() override {
    if (watcher_) watcher_->stop();
    if (!token_dir_.empty()) fs::remove_all(token_dir_);
  }

  ApiServerPodWatcher& startWatcher() {
    auto created = ApiServerPodWatcher::create(options_, errors_);
    EXPECT_TRUE(created.has_value()) << created.error();
    watcher_ = std::move(*created);
    watcher_->start();
    return *watcher_;
  }

  // Starts the watcher and waits for its first watch to be streaming.
  ApiServerPodWatcher& startWatching() {
    ApiServerPodWatcher& w = startWatcher();
    EXPECT_TRUE(fake_->waitForWatch(1, kWait));
    EXPECT_TRUE(w.synced());
    return w;
  }

  double errorCount(std::string_view reason) const { return errors_.count("pods", reason); }

  // The watcher's clock becomes the test's: it moves only by advance(). Read from the watch
  // thread, hence atomic.
  void useTestClock() {
    options_.now = [this] {
      return ApiServerPodWatcher::Clock::time_point{} + std::chrono::hours(1) +
             std::chrono::nanoseconds(clock_ns_.load());
    };
  }
  void advance(std::chrono::nanoseconds by) { clock_ns_ += by.count(); }

  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::atomic<std::int64_t> clock_ns_{0};  // before watcher_: it outlives the watch thread
  std::unique_ptr<FakeApiServer> fake_;
  ApiServerPodsOptions options_;
  std::unique_ptr<ApiServerPodWatcher> watcher_;
  fs::path token_dir_;
};

// The pod's containers as one list, init containers first, with state.terminated and
// lastState.terminated as optionals: how these tests read them.
struct ListedContainer {
  std::string name;
  std::string runtime;
  std::string container_id;
  std::string image;
  int restart_count = 0;
  bool init = false;
  std::optional<ContainerState> terminated;
  std::optional<ContainerState> last_terminated;
};
std::vector<ListedContainer> listContainers(const PodInfo& pod) {
  std::vector<ListedContainer> out;
  for (const auto* list : {&pod.init_containers, &pod.containers}) {
    for (const ContainerStatus& c : *list) {
      ListedContainer l{c.name,       c.runtime,       c.container_id,
                        c.image,      c.restart_count, list == &pod.init_containers,
                        std::nullopt, std::nullopt};
      if (c.state.kind == ContainerStateKind::kTerminated) l.terminated = c.state;
      if (c.last_state.kind == ContainerStateKind::kTerminated) l.last_terminated = c.last_state;
      out.push_back(std::move(l));
    }
  }
  return out;
}

// --- parsers -------------------------------------------------------------------------------

TEST(ApiPodParse, DeploymentPodWithInitContainerAndRestart) {
  const auto pod = parseApiPod(fixtureText("pod_web.json"));
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->uid, kWebUid);
  EXPECT_EQ(pod->namespace_name, "shop");
  EXPECT_EQ(pod->name, "web-7d9c6b5f8-x2k4p");
  EXPECT_EQ(pod->owner.kind, "ReplicaSet");
  EXPECT_EQ(pod->owner.name, "web-7d9c6b5f8");
  EXPECT_EQ(qosClassName(pod->qos_class), "Burstable");
  EXPECT_EQ(podPhaseName(pod->phase), "Running");
  EXPECT_EQ(pod->labels.at("app.kubernetes.io/name"), "web");
  ASSERT_EQ(listContainers(*pod).size(), 3U);
  const auto listed = listContainers(*pod);
  const ListedContainer& migrate = listed[0];
  EXPECT_TRUE(migrate.init);
  EXPECT_EQ(migrate.name, "migrate");
  ASSERT_TRUE(migrate.terminated.has_value());
  EXPECT_EQ(migrate.terminated->reason, "Completed");
  EXPECT_EQ(migrate.terminated->exit_code, 0);
  const ListedContainer& envoy = listed[1];
  EXPECT_FALSE(envoy.init);
  EXPECT_EQ(envoy.runtime, "containerd");
  EXPECT_EQ(envoy.container_id, kEnvoyId);
  EXPECT_EQ(envoy.image, "docker.io/envoyproxy/envoy:v1.30.1");
  EXPECT_FALSE(envoy.terminated.has_value());
  const ListedContainer& web = listed[2];
  EXPECT_EQ(web.restart_count, 1);
  EXPECT_FALSE(web.terminated.has_value());
  ASSERT_TRUE(web.last_terminated.has_value());
  EXPECT_EQ(web.last_terminated->reason, "OOMKilled");
  EXPECT_EQ(web.last_terminated->exit_code, 137);
  EXPECT_EQ(web.last_terminated->finished_at, parseRfc3339("2024-05-02T09:31:42Z"));
}

TEST(ApiPodParse, FailedJobPodOnCrio) {
  const auto pod = parseApiPod(fixtureText("pod_job_failed.json"));
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->owner.kind, "Job");
  EXPECT_EQ(pod->owner.name, "nightly-report-28571040");
  EXPECT_EQ(podPhaseName(pod->phase), "Failed");
  EXPECT_EQ(qosClassName(pod->qos_class), "Guaranteed");
  ASSERT_EQ(listContainers(*pod).size(), 1U);
  EXPECT_EQ(listContainers(*pod)[0].runtime, "cri-o");
  ASSERT_TRUE(listContainers(*pod)[0].terminated.has_value());
  EXPECT_EQ(listContainers(*pod)[0].terminated->reason, "OOMKilled");
  EXPECT_EQ(listContainers(*pod)[0].terminated->exit_code, 137);
}

TEST(ApiPodParse, ControllerOwnerWinsOverTheFirst) {
  const auto pod = parseApiPod(R"({"metadata":{"uid":"u","name":"n","namespace":"ns",
      "ownerReferences":[{"kind":"ConfigMap","name":"c"},
                         {"kind":"StatefulSet","name":"db","controller":true}]}})");
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->owner.kind, "StatefulSet");
  EXPECT_EQ(pod->owner.name, "db");
}

TEST(ApiPodParse, BadInputIsAnErrorNotACrash) {
  EXPECT_EQ(parseApiPod("{not json").error(), ApiPodError::kMalformedJson);
  EXPECT_EQ(parseApiPod("[]").error(), ApiPodError::kMalformedJson);
  EXPECT_EQ(parseApiPod(R"({"metadata":{"name":"n","namespace":"ns"}})").error(),
            ApiPodError::kMissingField);
  EXPECT_EQ(parseApiPod(R"({"metadata":{"uid":7,"name":"n","namespace":"ns"}})").error(),
            ApiPodError::kBadValue);
  EXPECT_EQ(parseApiPod(R"({"metadata":{"uid":"u","name":"n","namespace":"ns","labels":{"a":1}}})")
                .error(),
            ApiPodError::kBadValue);
  EXPECT_EQ(parseApiPod(R"({"metadata":{"uid":"u","name":"n","namespace":"ns"},
      "status":{"containerStatuses":[{"name":"c","restartCount":99999999999}]}})")
                .error(),
            ApiPodError::kBadValue);
}

TEST(WatchEventParse, TypesAndErrors) {
  const auto bookmark = parseWatchEvent(
      R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12345"}}})");
  ASSERT_TRUE(bookmark.has_value());
  EXPECT_EQ(bookmark->type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark->resource_version, "12345");

  const auto gone =
      parseWatchEvent(R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired",)"
                      R"x("message":"too old resource version: 1 (5)"}})x");
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->type, WatchEventType::kError);
  EXPECT_EQ(gone->error_code, 410);
  EXPECT_NE(gone->error_message.find("too old"), std::string::npos);

  const auto deleted = parseWatchEvent(
      R"({"type":"DELETED","object":{"metadata":{"uid":"u","name":"n","namespace":"ns",)"
      R"("resourceVersion":"77"}}})");
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->type, WatchEventType::kDeleted);
  EXPECT_EQ(deleted->resource_version, "77");

  EXPECT_FALSE(parseWatchEvent("garbage").has_value());
  EXPECT_FALSE(parseWatchEvent(R"({"type":"FROBNICATED","object":{}})").has_value());
  EXPECT_FALSE(parseWatchEvent(R"({"type":"ADDED"})").has_value());
  EXPECT_FALSE(parseWatchEvent(R"({"type":"BOOKMARK","object":{"metadata":{}}})").has_value());
}

TEST(Backoff, DoublesToTheCapWithBoundedJitter) {
  const milliseconds initial(100);
  const milliseconds max(1000);
  EXPECT_EQ(backoffDelay(1, initial, max, 0.0), milliseconds(50));
  EXPECT_EQ(backoffDelay(1, initial, max, 1.0), milliseconds(100));
  EXPECT_EQ(backoffDelay(2, initial, max, 1.0), milliseconds(200));
  EXPECT_EQ(backoffDelay(4, initial, max, 1.0), milliseconds(800));
  EXPECT_EQ(backoffDelay(5, initial, max, 1.0), milliseconds(1000));
  EXPECT_EQ(backoffDelay(1000, initial, max, 1.0), milliseconds(1000));
  EXPECT_EQ(backoffDelay(1000, initial, max, 0.0), milliseconds(500));
  EXPECT_GE(backoffDelay(1, milliseconds(0), max, 0.0), milliseconds(0));
}

TEST(InClusterDefaults, FromTheEnvironmentAndTheServiceAccount) {
  const fs::path dir = fs::temp_directory_path() / ("nw-sa-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "token") << "abc";
  std::ofstream(dir / "ca.crt") << "pem";
  const EnvLookup env = [](const char* name) -> std::optional<std::string> {
    if (std::string_view(name) == "KUBERNETES_SERVICE_HOST") return "fd00::1";
    if (std::string_view(name) == "KUBERNETES_SERVICE_PORT") return "443";
    return std::nullopt;
  };
  const auto options = withInClusterDefaults({}, env, dir.string());
  ASSERT_TRUE(options.has_value()) << options.error();
  EXPECT_EQ(options->url, "https://[fd00::1]:443");
  EXPECT_EQ(options->token_file, (dir / "token").string());
  EXPECT_EQ(options->ca_file, (dir / "ca.crt").string());

  ApiServerPodsOptions given;
  given.url = "https://10.0.0.1:6443";
  given.token_file = "/etc/token";
  const auto kept = withInClusterDefaults(given, env, dir.string());
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->url, "https://10.0.0.1:6443");
  EXPECT_EQ(kept->token_file, "/etc/token");
  fs::remove_all(dir);

  const auto none = withInClusterDefaults(
      {}, [](const char*) { return std::nullopt; }, "/none");
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
}

TEST(ApiServerPodWatcherCreate, RefusesWhatCannotWork) {
  prometheus::Registry registry;
  ErrorReporter errors(registry);
  ApiServerPodsOptions options;
  options.url = "http://127.0.0.1:1";
  EXPECT_FALSE(ApiServerPodWatcher::create(options, errors).has_value());  // no node name
  options.node_name = kNode;
  options.url = "ftp://127.0.0.1:1";
  EXPECT_FALSE(ApiServerPodWatcher::create(options, errors).has_value());
  options.url = "http://127.0.0.1:1";
  options.deleted_grace = milliseconds(-1);
  EXPECT_FALSE(ApiServerPodWatcher::create(options, errors).has_value());
  EXPECT_EQ(ApiServerPodsOptions{}.deleted_grace, std::chrono::minutes(2));  // the default
}

// --- list and watch ----------------------------------------------------------------------------

TEST_F(ApiServerPodsTest, ListsThenAppliesAddedModifiedDeleted) {
  fake_->putPod(fixturePod("pod_web.json"));
  ApiServerPodWatcher& w = startWatching();
  EXPECT_EQ(w.size(), 1U);
  EXPECT_EQ(w.resourceVersion(), fake_->resourceVersion());

  fake_->putPod(fixturePod("pod_job_failed.json"));
  ASSERT_TRUE(eventually([&] { return w.findPod(kJobUid).has_value(); }));

  json web = fixturePod("pod_web.json");
  web["status"]["phase"] = "Succeeded";
  fake_->putPod(web);
  ASSERT_TRUE(eventually([&] { return podPhaseName(w.findPod(kWebUid)->phase) == "Succeeded"; }));

  const std::string rv = fake_->deletePod(kJobUid);
  ASSERT_TRUE(eventually([&] { return w.size() == 1; }));  // findPod keeps it for a grace period
  EXPECT_EQ(w.resourceVersion(), rv);
  EXPECT_EQ(w.departedCount(), 1U);
  EXPECT_EQ(w.stats().events, 3U);

  // The ContainerMetadata face: a runtime container id resolves to its names.
  const auto envoy = w.container(kEnvoyId);
  ASSERT_TRUE(envoy.has_value());
  EXPECT_EQ(envoy->pod_name, "web-7d9c6b5f8-x2k4p");
  EXPECT_EQ(envoy->namespace_name, "shop");
  EXPECT_EQ(envoy->container_name, "envoy");
  EXPECT_EQ(w.pod(kWebUid)->namespace_name, "shop");

  const auto requests = fake_->requests();
  ASSERT_GE(requests.size(), 2U);
  const FakeApiRequest& list = requests[0];
  EXPECT_FALSE(list.watch());
  EXPECT_EQ(list.path, "/api/v1/pods");
  EXPECT_EQ(list.params.at("fieldSelector"), "spec.nodeName=node-a");
  EXPECT_EQ(list.resourceVersion(), "0");  // the first list may come from the watch cache
  const FakeApiRequest& watch = requests[1];
  EXPECT_TRUE(watch.watch());
  EXPECT_EQ(watch.params.at("fieldSelector"), "spec.nodeName=node-a");
  EXPECT_EQ(watch.params.at("allowWatchBookmarks"), "true");
  EXPECT_EQ(watch.params.at("timeoutSeconds"), "30");
  EXPECT_EQ(watch.resourceVersion(), std::to_string(101));  // the list's: one putPod after 100
  EXPECT_EQ(w.stats().lists, 1U);
}

// generation() moves with the list and every ADDED, MODIFIED or DELETED event, not with a
// bookmark: the collector asks about its unnamed cgroups again exactly when the watch may name
// them.
TEST_F(ApiServerPodsTest, GenerationMovesWithTheListAndEveryEventButBookmarks) {
  ApiServerPodWatcher& w = startWatching();
  const auto listed = w.generation();
  EXPECT_GT(listed, 0U);
  const std::string rv = fake_->bookmark();
  ASSERT_TRUE(eventually([&] { return w.resourceVersion() == rv; }));
  EXPECT_EQ(w.generation(), listed);
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ASSERT_TRUE(eventually([&] { return w.findPod(kJobUid).has_value(); }));
  const auto added = w.generation();
  EXPECT_GT(added, listed);
  // The pod is there when the number says so (the number moves after the maps).
  EXPECT_TRUE(w.pod(kJobUid).has_value());
  fake_->deletePod(kJobUid);
  ASSERT_TRUE(eventually([&] { return w.size() == 0; }));
  EXPECT_GT(w.generation(), added);
}

TEST_F(ApiServerPodsTest, BookmarkAdvancesTheResourceVersionAndFreshness) {
  useTestClock();
  ApiServerPodWatcher& w = startWatching();
  const std::string before = w.resourceVersion();
  advance(milliseconds(50));  // staleness grows, to see the reset
  EXPECT_EQ(w.staleness(), milliseconds(50));
  const std::string rv = fake_->bookmark();
  ASSERT_NE(rv, before);
  ASSERT_TRUE(eventually([&] { return w.resourceVersion() == rv; }));
  EXPECT_EQ(w.stats().bookmarks, 1U);
  EXPECT_EQ(w.stats().events, 0U);
  EXPECT_EQ(w.staleness(), milliseconds(0));
}

TEST_F(ApiServerPodsTest, DroppedConnectionResumesFromTheLastResourceVersion) {
  fake_->putPod(fixturePod("pod_web.json"));
  ApiServerPodWatcher& w = startWatching();
  fake_->putPod(fixturePod("pod_job_failed.json"));
  const std::string last = fake_->bookmark();
  ASSERT_TRUE(eventually([&] { return w.resourceVersion() == last; }));

  fake_->dropWatch();
  fake_->deletePod(kWebUid);  // missed by the dropped watch: the resumed one must get it
  ASSERT_TRUE(fake_->waitForWatch(2, kWait));
  ASSERT_TRUE(eventually([&] { return w.departedCount() == 1; }));
  EXPECT_EQ(w.size(), 1U);

  const auto requests = fake_->requests();
  EXPECT_EQ(lists(requests).size(), 1U);  // no re-list
  const auto ws = watches(requests);
  ASSERT_EQ(ws.size(), 2U);
  EXPECT_EQ(ws[1].resourceVersion(), last);
  EXPECT_EQ(w.stats().lists, 1U);
  EXPECT_GE(errorCount("apiserver_watch_dropped"), 1.0);
  EXPECT_TRUE(w.findPod(kJobUid).has_value());
}

TEST_F(ApiServerPodsTest, EndedWatchResumesWithoutBackoffOrError) {
  ApiServerPodWatcher& w = startWatching();
  const std::string last = fake_->bookmark();
  ASSERT_TRUE(eventually([&] { return w.resourceVersion() == last; }));
  fake_->endWatch();
  ASSERT_TRUE(fake_->waitForWatch(2, kWait));
  const auto ws = watches(fake_->requests());
  ASSERT_EQ(ws.size(), 2U);
  EXPECT_EQ(ws[1].resourceVersion(), last);
  EXPECT_EQ(w.stats().failures, 0U);
}

TEST_F(ApiServerPodsTest, GoneAsAnErrorEventRelistsWithoutResourceVersion) {
  fake_->putPod(fixturePod("pod_web.json"));
  ApiServerPodWatcher& w = startWatching();
  fake_->expire(GoneMode::kErrorEvent);
  ASSERT_TRUE(eventually([&] { return w.stats().lists == 2; }));
  ASSERT_TRUE(fake_->waitForWatch(2, kWait));
  EXPECT_EQ(w.stats().relists_gone, 1U);
  EXPECT_EQ(w.resourceVersion(), fake_->resourceVersion());

  const auto ls = lists(fake_->requests());
  ASSERT_EQ(ls.size(), 2U);
  EXPECT_EQ(ls[0].resourceVersion(), "0");
  EXPECT_FALSE(ls[1].resourceVersion().has_value());  // a fresh list, never from the cache
  const auto ws = watches(fake_->requests());
  ASSERT_EQ(ws.size(), 2U);
  EXPECT_EQ(ws[1].resourceVersion(), fake_->resourceVersion());

  // And the new watch works.
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ASSERT_TRUE(eventually([&] { return w.findPod(kJobUid).has_value(); }));
  EXPECT_EQ(w.size(), 2U);
}

TEST_F(ApiServerPodsTest, GoneAsHttpStatusRelists) {
  ApiServerPodWatcher& w = startWatching();
  const std::string first_rv = w.resourceVersion();
  fake_->expire(GoneMode::kHttpStatus);  // drops the watch; its resume gets HTTP 410
  ASSERT_TRUE(eventually([&] { return w.stats().lists == 2; }));
  ASSERT_TRUE(fake_->waitForWatch(2, kWait));
  const auto requests = fake_->requests();
  ASSERT_GE(requests.size(), 5U);
  EXPECT_TRUE(requests[2].watch());
  EXPECT_EQ(requests[2].resourceVersion(), first_rv);
  EXPECT_EQ(requests[2].status, 410);
  EXPECT_FALSE(requests[3].watch());
  EXPECT_FALSE(requests[3].resourceVersion().has_value());
  EXPECT_TRUE(requests[4].watch());
  EXPECT_EQ(requests[4].resourceVersion(), fake_->resourceVersion());
  EXPECT_EQ(w.stats().relists_gone, 1U);
}

TEST_F(ApiServerPodsTest, ForbiddenIsCountedNamesRbacAndBacksOff) {
  options_.backoff_initial = milliseconds(50);
  options_.backoff_max = milliseconds(200);
  fake_->answer(403);
  const auto began = std::chrono::steady_clock::now();
  ApiServerPodWatcher& w = startWatcher();
  // Delays: 25-50, 50-100, then 100-200 ms each: the fourth answer comes 175 ms after the first
  // request at the earliest (a busy loop would get there in a few milliseconds).
  ASSERT_TRUE(eventually([&] { return w.stats().forbidden >= 4; }));
  EXPECT_GE(std::chrono::steady_clock::now() - began, milliseconds(175));
  EXPECT_FALSE(w.synced());
  const auto stats = w.stats();
  EXPECT_GE(stats.forbidden, 4U);
  EXPECT_GE(fake_->requests().size(), 4U);
  EXPECT_GE(errorCount("apiserver_forbidden"), 4.0);
  EXPECT_NE(stats.last_error.find("RBAC"), std::string::npos) << stats.last_error;
  EXPECT_NE(stats.last_error.find("list and watch pods"), std::string::npos) << stats.last_error;
  EXPECT_NE(stats.last_error.find("403"), std::string::npos) << stats.last_error;
  EXPECT_GT(stats.last_backoff, milliseconds(0));
  EXPECT_LE(stats.last_backoff, options_.backoff_max);

  fake_->answerOk();  // RBAC fixed: it recovers by itself
  EXPECT_TRUE(eventually([&] { return w.synced(); }));
}

TEST_F(ApiServerPodsTest, StopEndsAnOpenWatchWithinOneSecond) {
  ApiServerPodWatcher& w = startWatching();
  const auto began = std::chrono::steady_clock::now();
  w.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - began, milliseconds(1000));
  w.stop();  // idempotent
}

TEST_F(ApiServerPodsTest, StopEndsABackoffWaitWithinOneSecond) {
  options_.backoff_initial = milliseconds(20'000);
  options_.backoff_max = milliseconds(60'000);
  fake_->answer(500);
  ApiServerPodWatcher& w = startWatcher();
  ASSERT_TRUE(fake_->waitForRequests(1, kWait));
  ASSERT_TRUE(eventually([&] { return w.stats().last_backoff > milliseconds(0); }));
  const auto began = std::chrono::steady_clock::now();
  w.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - began, milliseconds(1000));
  EXPECT_EQ(errorCount("apiserver_http_error"), 1.0);
}

TEST_F(ApiServerPodsTest, GarbageEventLinesAreCountedAndSkipped) {
  ApiServerPodWatcher& w = startWatching();
  fake_->sendLine("this is not json");
  fake_->sendLine(R"({"type":"ADDED","object":{"metadata":{"name":"no-uid","namespace":"x"}}})");
  fake_->sendLine(R"({"type":"FROBNICATED","object":{}})");
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ASSERT_TRUE(eventually([&] { return w.findPod(kJobUid).has_value(); }));
  EXPECT_EQ(w.stats().bad_events, 3U);
  EXPECT_EQ(errorCount("apiserver_bad_json"), 1.0);
  EXPECT_EQ(errorCount("apiserver_missing_field"), 1.0);
  EXPECT_EQ(errorCount("apiserver_bad_value"), 1.0);
  EXPECT_EQ(w.stats().watches, 1U);  // the stream went on
  EXPECT_EQ(w.size(), 1U);
}

TEST_F(ApiServerPodsTest, AnOversizedEventLineIsSkippedToItsEnd) {
  options_.max_event_bytes = 16 * 1024;  // the fixture pod's event is about 4 KiB
  ApiServerPodWatcher& w = startWatching();
  fake_->sendLine(R"({"type":"ADDED","object":{"metadata":{"name":")" + std::string(100'000, 'x') +
                  R"("}}})");
  fake_->putPod(fixturePod("pod_web.json"));
  ASSERT_TRUE(eventually([&] { return w.findPod(kWebUid).has_value(); }));
  EXPECT_EQ(w.stats().bad_events, 1U);
  EXPECT_EQ(errorCount("apiserver_event_too_large"), 1.0);
}

TEST_F(ApiServerPodsTest, TheTokenFileIsReadForEveryRequest) {
  token_dir_ = fs::temp_directory_path() / ("nw-token-" + std::to_string(::getpid()));
  fs::create_directories(token_dir_);
  const fs::path token = token_dir_ / "token";
  std::ofstream(token) << "first-token\n";
  options_.token_file = token.string();
  startWatching();
  std::ofstream(token) << "rotated-token\n";
  fake_->dropWatch();
  ASSERT_TRUE(fake_->waitForWatch(2, kWait));
  const auto requests = fake_->requests();
  ASSERT_GE(requests.size(), 3U);
  EXPECT_EQ(requests[0].authorization, "Bearer first-token");
  EXPECT_EQ(requests[1].authorization, "Bearer first-token");
  EXPECT_EQ(requests.back().authorization, "Bearer rotated-token");
}

// --- deleted pods' grace period ----------------------------------------------------------------

TEST_F(ApiServerPodsTest, DeletedPodIsAnsweredUntilItsGracePeriodEnds) {
  useTestClock();
  fake_->putPod(fixturePod("pod_web.json"));
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ApiServerPodWatcher& w = startWatching();
  ASSERT_EQ(w.size(), 2U);
  fake_->deletePod(kJobUid);
  ASSERT_TRUE(eventually([&] { return w.size() == 1; }));
  EXPECT_EQ(w.departedCount(), 1U);
  const auto answered = [&] {
    const auto c = w.container(kJobContainerId);
    const auto p = w.pod(kJobUid);
    const auto info = w.findPod(kJobUid);
    return c && c->pod_uid == kJobUid && p && p->job == "nightly-report-28571040" && info &&
           podPhaseName(info->phase) == "Failed";
  };
  EXPECT_TRUE(answered());
  for (const PodInfo& p : w.pods()) EXPECT_NE(p.uid, kJobUid);  // pods() is the live ones

  advance(std::chrono::minutes(2) - milliseconds(1));
  w.refresh();
  EXPECT_TRUE(answered());
  EXPECT_EQ(w.departedCount(), 1U);

  advance(milliseconds(1));  // the grace period is over: lookups miss before any refresh()
  EXPECT_FALSE(w.findPod(kJobUid).has_value());
  EXPECT_FALSE(w.pod(kJobUid).has_value());
  EXPECT_FALSE(w.container(kJobContainerId).has_value());
  w.refresh();  // and the memory goes
  EXPECT_EQ(w.departedCount(), 0U);
  EXPECT_TRUE(w.container(kEnvoyId).has_value());  // the live pod is untouched
}

TEST_F(ApiServerPodsTest, APodBackWithinItsGracePeriodIsLiveAgain) {
  useTestClock();
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ApiServerPodWatcher& w = startWatching();
  fake_->deletePod(kJobUid);
  ASSERT_TRUE(eventually([&] { return w.departedCount() == 1; }));
  advance(std::chrono::seconds(30));
  json back = fixturePod("pod_job_failed.json");
  back["status"]["phase"] = "Running";
  fake_->putPod(back);  // the same uid again (a replayed ADDED, a re-created static pod)
  ASSERT_TRUE(eventually([&] { return w.size() == 1; }));
  EXPECT_EQ(w.departedCount(), 0U);
  advance(std::chrono::minutes(10));  // far past the first grace period
  w.refresh();
  ASSERT_TRUE(w.findPod(kJobUid).has_value());
  EXPECT_EQ(podPhaseName(w.findPod(kJobUid)->phase), "Running");
  EXPECT_TRUE(w.container(kJobContainerId).has_value());
}

TEST_F(ApiServerPodsTest, APodMissingFromARelistAfterGoneGetsTheGracePeriod) {
  useTestClock();
  fake_->putPod(fixturePod("pod_web.json"));
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ApiServerPodWatcher& w = startWatching();
  // Away from the watch while the pod is deleted and the history compacted: the DELETED event is
  // lost, the resumed watch gets 410, and only the re-list shows the pod gone.
  fake_->answer(500);
  fake_->dropWatch();
  ASSERT_TRUE(fake_->waitForRequests(3, kWait));  // list, watch, then a 500: the watcher is away
  fake_->deletePod(kWebUid);
  fake_->expire(GoneMode::kHttpStatus);
  fake_->answerOk();
  ASSERT_TRUE(eventually([&] { return w.stats().lists == 2; }));
  EXPECT_EQ(w.stats().relists_gone, 1U);
  EXPECT_EQ(w.size(), 1U);
  EXPECT_EQ(w.departedCount(), 1U);
  ASSERT_TRUE(w.container(kEnvoyId).has_value());
  EXPECT_EQ(w.container(kEnvoyId)->pod_name, "web-7d9c6b5f8-x2k4p");
  EXPECT_EQ(w.pod(kWebUid)->namespace_name, "shop");

  advance(std::chrono::minutes(2));
  EXPECT_FALSE(w.container(kEnvoyId).has_value());
  EXPECT_FALSE(w.findPod(kWebUid).has_value());
  w.refresh();
  EXPECT_EQ(w.departedCount(), 0U);
  EXPECT_TRUE(w.findPod(kJobUid).has_value());
}

TEST_F(ApiServerPodsTest, PodChurnKeepsOnlyTheGracePeriodsDeleted) {
  useTestClock();
  ApiServerPodWatcher& w = startWatching();
  // A pod created and deleted every 30 s: 40 of them pass through in 20 minutes.
  std::size_t most = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string n = std::to_string(i);
    fake_->putPod(
        {{"metadata", {{"uid", "uid-" + n}, {"name", "job-" + n}, {"namespace", "b"}}},
         {"status",
          {{"containerStatuses",
            json::array({{{"name", "main"}, {"containerID", "containerd://id-" + n}}})}}}});
    fake_->deletePod("uid-" + n);
    ASSERT_TRUE(eventually([&] { return w.stats().events == 2U * (i + 1); })) << i;
    ASSERT_TRUE(w.container("id-" + n).has_value()) << i;
    most = std::max(most, w.departedCount());
    advance(std::chrono::seconds(30));
  }
  EXPECT_EQ(most, 4U);  // those deleted in the last 2 minutes, never more
  EXPECT_EQ(w.size(), 0U);
  advance(std::chrono::minutes(2));
  w.refresh();
  EXPECT_EQ(w.departedCount(), 0U);
}

TEST_F(ApiServerPodsTest, AZeroGracePeriodForgetsAtOnce) {
  options_.deleted_grace = milliseconds(0);
  fake_->putPod(fixturePod("pod_job_failed.json"));
  ApiServerPodWatcher& w = startWatching();
  fake_->deletePod(kJobUid);
  ASSERT_TRUE(eventually([&] { return w.size() == 0; }));
  EXPECT_EQ(w.departedCount(), 0U);
  EXPECT_FALSE(w.findPod(kJobUid).has_value());
  EXPECT_FALSE(w.container(kJobContainerId).has_value());
}

TEST_F(ApiServerPodsTest, StalenessGrowsWithoutEvents) {
  useTestClock();
  ApiServerPodWatcher& w = startWatching();
  EXPECT_EQ(w.staleness(), milliseconds(0));
  advance(milliseconds(30));
  EXPECT_EQ(w.staleness(), milliseconds(30));
}

}  // namespace
}  // namespace nodewarden::pods
