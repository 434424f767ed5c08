// KubeletPodsClient, parsePodList and KubeletPodsMetadata: the PodList fixtures in
// tests/fixtures/kubelet parsed to exact values, then GET /pods over TLS from FakeKubelet on
// 127.0.0.1 (a throwaway CA and server certificate made once per run with the openssl CLI).
//
// What a reader gets wrong: the fixture ids are sha256 of "<pod>/<container>" and the uids md5 of
// "<namespace>/<pod>" (how the fixtures were generated), so the constants below are not real
// runtime ids. Signals in the fixtures are never reported by the runtime (as in real output): the
// 9 and 15 expected below are derived from the exit codes.
#include "collectors/pods/kubelet_pods.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "collectors/cgroup/cgroup_collector.h"
#include "pipeline/snapshot.h"
#include "tests/fakes/fake_kubelet.h"

namespace nodewarden::pods {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nodewarden::testing::FakeKubelet;
using nodewarden::testing::FakeKubeletOptions;

std::string readFixture(const char* name) {
  std::ifstream in(fs::path(NODEWARDEN_FIXTURES) / "kubelet" / name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

PodList parseFixture(const char* name) {
  const std::string text = readFixture(name);
  EXPECT_FALSE(text.empty()) << name;
  auto list = parsePodList(text);
  EXPECT_TRUE(list.has_value()) << name << ": " << (list ? "" : list.error().message);
  return list ? std::move(*list) : PodList{};
}

const PodInfo* byName(const PodList& list, std::string_view name) {
  for (const PodInfo& p : list.pods) {
    if (p.name == name) return &p;
  }
  ADD_FAILURE() << "no pod " << name;
  return nullptr;
}

Timestamp at(int y, unsigned mo, unsigned d, int h, int mi, int s) {
  return std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) /
                               std::chrono::day(d)) +
         std::chrono::hours(h) + std::chrono::minutes(mi) + std::chrono::seconds(s);
}

ContainerState terminated(int code, int signal, std::string reason, Timestamp started,
                          Timestamp finished, std::string message = {}) {
  return {ContainerStateKind::kTerminated,
          std::move(reason),
          std::move(message),
          code,
          signal,
          started,
          finished};
}

ContainerState running(Timestamp started) {
  return {ContainerStateKind::kRunning, {}, {}, 0, 0, started, std::nullopt};
}

ContainerState waiting(std::string reason, std::string message = {}) {
  return {ContainerStateKind::kWaiting, std::move(reason), std::move(message), 0, 0, {}, {}};
}

std::map<std::string, std::string> jobLabels(const std::string& job, const std::string& uid) {
  return {{"batch.kubernetes.io/controller-uid", uid},
          {"batch.kubernetes.io/job-name", job},
          {"controller-uid", uid},
          {"job-name", job}};
}

// ---- parsing ----

TEST(KubeletPodList, CronJobPodCompletedParsesToExactValues) {
  const PodList list = parseFixture("podlist_jobs.json");
  ASSERT_EQ(list.pods.size(), 6u);
  EXPECT_EQ(list.skipped, 0u);
  EXPECT_EQ(list.bad_fields, 0u) << list.first_bad_field;
  PodInfo want;
  want.uid = "57471fdd-e841-4f2d-a0d1-79af5f0f7ebd";
  want.namespace_name = "analytics";
  want.name = "nightly-report-28504320-7xk2p";
  want.resource_version = "419839";
  // Both label spellings: job-name (all versions) and batch.kubernetes.io/job-name (1.27+).
  want.labels = jobLabels("nightly-report-28504320", "4f44bfe6-8fa0-4500-ab4a-6409315ed940");
  want.qos_class = QosClass::kBurstable;
  want.phase = PodPhase::kSucceeded;
  want.node_name = "worker-1";
  want.owner = {"Job", "nightly-report-28504320"};  // the CronJob is the Job's owner, not here
  want.start_time = at(2024, 3, 1, 2, 0, 1);
  want.containers = {
      {"report",
       "6843abe9ce2989ec34d96e1215dbef652625a29f402f25bd2b6293bcd908befc",
       "registry.example.com/analytics/report:1.8.0",
       0,
       terminated(0, 0, "Completed", at(2024, 3, 1, 2, 0, 5), at(2024, 3, 1, 2, 3, 17)),
       {},
       "containerd"}};
  const PodInfo* got = byName(list, "nightly-report-28504320-7xk2p");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->labels, want.labels);
  EXPECT_EQ(got->containers, want.containers);
  EXPECT_EQ(*got, want);
}

TEST(KubeletPodList, FailedJobPodsCarryReasonExitCodeAndSignal) {
  const PodList list = parseFixture("podlist_jobs.json");

  const PodInfo* error = byName(list, "etl-load-q8w4n");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->phase, PodPhase::kFailed);
  EXPECT_EQ(error->owner, (OwnerRef{"Job", "etl-load"}));
  ASSERT_EQ(error->containers.size(), 1u);
  EXPECT_EQ(error->containers[0].state,
            terminated(3, 0, "Error", at(2024, 3, 1, 3, 10, 2), at(2024, 3, 1, 3, 12, 45)));
  EXPECT_EQ(error->containers[0].container_id,
            "849f22cc5ba021768392b266bc92041f4cd9881414a72a220ec71e6574930be8");

  const PodInfo* oom = byName(list, "spark-shuffle-5vbtl");
  ASSERT_NE(oom, nullptr);
  EXPECT_EQ(oom->qos_class, QosClass::kGuaranteed);
  ASSERT_EQ(oom->containers.size(), 1u);
  EXPECT_EQ(oom->containers[0].image, "docker.io/apache/spark:3.5.1");
  EXPECT_EQ(oom->containers[0].state,
            terminated(137, 9, "OOMKilled", at(2024, 3, 1, 4, 0, 3), at(2024, 3, 1, 4, 21, 40)));

  const PodInfo* deadline = byName(list, "backfill-9dj2m");
  ASSERT_NE(deadline, nullptr);
  EXPECT_EQ(deadline->phase, PodPhase::kFailed);
  EXPECT_EQ(deadline->reason, "DeadlineExceeded");
  EXPECT_EQ(deadline->message, "Pod was active on the node longer than the specified deadline");
  EXPECT_EQ(deadline->qos_class, QosClass::kBestEffort);
  ASSERT_EQ(deadline->containers.size(), 1u);
  EXPECT_EQ(deadline->containers[0].state,
            terminated(143, 15, "Error", at(2024, 3, 1, 5, 0, 2), at(2024, 3, 1, 5, 10, 1)));

  const PodInfo* start = byName(list, "schema-migrate-l4k7s");
  ASSERT_NE(start, nullptr);
  ASSERT_EQ(start->containers.size(), 1u);
  const ContainerState& s = start->containers[0].state;
  EXPECT_EQ(s.kind, ContainerStateKind::kTerminated);
  EXPECT_EQ(s.reason, "StartError");
  EXPECT_EQ(s.exit_code, 128);
  EXPECT_EQ(s.signal, 0);                // 128 is not above 128: no signal
  EXPECT_EQ(s.started_at, Timestamp{});  // containerd reports the zero time for a start failure
  EXPECT_EQ(s.finished_at, at(2024, 3, 1, 6, 0, 4));
  EXPECT_TRUE(s.message.starts_with("failed to create containerd task: ")) << s.message;
}

TEST(KubeletPodList, InitContainersComeInOrderBesideTheAppContainers) {
  const PodList list = parseFixture("podlist_jobs.json");
  const PodInfo* p = byName(list, "db-seed-2xq9d");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->phase, PodPhase::kRunning);
  ASSERT_EQ(p->init_containers.size(), 2u);
  EXPECT_EQ(p->init_containers[0],
            (ContainerStatus{
                "wait-for-db",
                "5eb36a0c6378290510a84e6627ed862fafd6c5fb5491da8d8cbda0593faba52d",
                "docker.io/library/busybox:1.36",
                0,
                terminated(0, 0, "Completed", at(2024, 3, 1, 7, 0, 2), at(2024, 3, 1, 7, 0, 14)),
                {},
                "containerd"}));
  EXPECT_EQ(p->init_containers[1].name, "fetch-schema");
  EXPECT_EQ(p->init_containers[1].container_id,
            "b1f176da1006d80f9718321d4067056abab61634bda74fd7bfd2bd4bc9973e9a");
  ASSERT_EQ(p->containers.size(), 1u);
  EXPECT_EQ(p->containers[0],
            (ContainerStatus{"seed",
                             "46c4e2cc009e107411ecbb8b7931d48ded11cb94096bd91145ed38ded446a2fd",
                             "registry.example.com/shop/seed:1.0.4",
                             0,
                             running(at(2024, 3, 1, 7, 0, 21)),
                             {},
                             "containerd"}));
}

TEST(KubeletPodList, RestartsKeepTheLastTerminatedState) {
  const PodList list = parseFixture("podlist_workloads.json");
  ASSERT_EQ(list.pods.size(), 5u);
  EXPECT_EQ(list.bad_fields, 0u) << list.first_bad_field;
  const PodInfo* p = byName(list, "checkout-6d8f9c7b5-x2x9q");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->owner, (OwnerRef{"ReplicaSet", "checkout-6d8f9c7b5"}));
  EXPECT_EQ(p->labels, (std::map<std::string, std::string>{{"app", "checkout"},
                                                           {"pod-template-hash", "6d8f9c7b5"}}));
  ASSERT_EQ(p->containers.size(), 2u);
  const ContainerStatus& app = p->containers[0];
  EXPECT_EQ(app.container_id, "523ad2e9ef4d7e435ebf0b7a08ec90f2cf3340dc0929c5572725a7d5fbabc97d");
  EXPECT_EQ(app.restart_count, 4);
  EXPECT_EQ(app.state, waiting("CrashLoopBackOff",
                               "back-off 1m20s restarting failed container=app "
                               "pod=checkout-6d8f9c7b5-x2x9q_shop(a3a13f8e-917d-4e01-af8b-"
                               "4d3e59403d34)"));
  EXPECT_EQ(app.last_state,
            terminated(1, 0, "Error", at(2024, 3, 1, 8, 5, 10), at(2024, 3, 1, 8, 5, 12)));
  const ContainerStatus& envoy = p->containers[1];
  EXPECT_EQ(envoy.restart_count, 1);
  EXPECT_EQ(envoy.state, running(at(2024, 3, 1, 8, 1, 30)));
  EXPECT_EQ(envoy.last_state,
            terminated(137, 9, "OOMKilled", at(2024, 3, 1, 8, 0, 3), at(2024, 3, 1, 8, 1, 29)));
}

TEST(KubeletPodList, OwnersAndQosOfEachWorkloadKind) {
  const PodList list = parseFixture("podlist_workloads.json");
  const PodInfo* ds = byName(list, "node-exporter-8wz5k");
  const PodInfo* sts = byName(list, "postgres-0");
  const PodInfo* bare = byName(list, "debug-shell");
  const PodInfo* evicted = byName(list, "cache-7f9d8b6c4-kq2lm");
  ASSERT_TRUE(ds && sts && bare && evicted);

  EXPECT_EQ(ds->owner, (OwnerRef{"DaemonSet", "node-exporter"}));
  EXPECT_EQ(ds->qos_class, QosClass::kBurstable);
  EXPECT_EQ(ds->start_time, at(2024, 2, 20, 10, 0, 0));

  EXPECT_EQ(sts->owner, (OwnerRef{"StatefulSet", "postgres"}));
  EXPECT_EQ(sts->qos_class, QosClass::kGuaranteed);
  EXPECT_EQ(sts->labels.at("statefulset.kubernetes.io/pod-name"), "postgres-0");
  EXPECT_EQ(sts->containers.at(0).container_id,
            "720d3fd9deec5c8a6c55c3cf195841390fc3c212a74c54701a02ae1ef322345f");

  EXPECT_EQ(bare->owner, OwnerRef{});
  EXPECT_EQ(bare->qos_class, QosClass::kBestEffort);
  EXPECT_EQ(bare->phase, PodPhase::kPending);
  ASSERT_EQ(bare->containers.size(), 1u);
  EXPECT_EQ(bare->containers[0].container_id, "");  // not created yet
  EXPECT_EQ(bare->containers[0].state, waiting("ContainerCreating"));

  EXPECT_EQ(evicted->phase, PodPhase::kFailed);
  EXPECT_EQ(evicted->reason, "Evicted");
  EXPECT_TRUE(evicted->message.starts_with("The node was low on resource: memory."))
      << evicted->message;
  EXPECT_EQ(evicted->qos_class, QosClass::kBestEffort);
  EXPECT_EQ(evicted->containers.at(0).state.exit_code, 137);
}

TEST(KubeletPodList, DockershimContainerCannotRun) {
  const PodList list = parseFixture("podlist_dockershim.json");
  ASSERT_EQ(list.pods.size(), 1u);
  const PodInfo& p = list.pods[0];
  EXPECT_EQ(p.owner, (OwnerRef{"Job", "report-upload-28504380"}));
  EXPECT_EQ(p.labels.at("job-name"), "report-upload-28504380");
  ASSERT_EQ(p.containers.size(), 1u);
  EXPECT_EQ(p.containers[0].container_id,
            "1941395d7f642f54f4911dc3f6e78cee5921db5a19a5a8ef88f3a1579a4be711");
  EXPECT_EQ(p.containers[0].state.reason, "ContainerCannotRun");
  EXPECT_EQ(p.containers[0].state.exit_code, 127);
  EXPECT_EQ(p.containers[0].state.signal, 0);
}

TEST(KubeletPodList, BadItemsAreSkippedAndBadFieldsCounted) {
  const PodList list = parseFixture("podlist_bad_items.json");
  ASSERT_EQ(list.pods.size(), 1u);
  EXPECT_EQ(list.skipped, 4u);  // a string, no uid, a numeric uid, no metadata
  // labels.replicas, startTime, restartCount, a status without a name
  EXPECT_EQ(list.bad_fields, 4u);
  EXPECT_EQ(list.first_skipped, "an item is not an object");
  EXPECT_EQ(list.first_bad_field, "label replicas is not a string");
  const PodInfo& p = list.pods[0];
  EXPECT_EQ(p.name, "odd-values");
  EXPECT_EQ(p.phase, PodPhase::kUnknown);      // "Exploded"
  EXPECT_EQ(p.qos_class, QosClass::kUnknown);  // "Platinum"
  EXPECT_EQ(p.labels, (std::map<std::string, std::string>{{"app", "odd"}}));
  EXPECT_EQ(p.start_time, std::nullopt);
  ASSERT_EQ(p.containers.size(), 1u);
  EXPECT_EQ(p.containers[0].restart_count, 0);
  EXPECT_EQ(p.containers[0].state, running(at(2024, 3, 1, 10, 0, 0)));
}

TEST(KubeletPodList, UnusableBodiesFailWhole) {
  EXPECT_EQ(parsePodList("<html>502 Bad Gateway</html>").error().error, KubeletError::kBadJson);
  EXPECT_EQ(parsePodList(R"({"kind":"PodList","items":[)").error().error, KubeletError::kBadJson);
  EXPECT_EQ(parsePodList("[]").error().error, KubeletError::kNotPodList);
  EXPECT_EQ(parsePodList(R"({"kind":"Pod","items":[]})").error().error, KubeletError::kNotPodList);
  EXPECT_EQ(parsePodList(R"({"kind":"PodList"})").error().error, KubeletError::kNotPodList);
  EXPECT_EQ(parsePodList(R"({"kind":"PodList","items":{}})").error().error,
            KubeletError::kNotPodList);
  auto empty = parsePodList(R"({"kind":"PodList","apiVersion":"v1","metadata":{},"items":null})");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->pods.empty());
}

TEST(KubeletPodList, TimesWithOffsetsAndFractions) {
  const auto startOf = [](const std::string& time) -> std::optional<Timestamp> {
    auto list = parsePodList(R"({"kind":"PodList","items":[{"metadata":{"uid":"u","name":"p",)"
                             R"("namespace":"n"},"status":{"startTime":")" +
                             time + R"("}}]})");
    if (!list || list->pods.size() != 1) return std::nullopt;
    return list->pods[0].start_time;
  };
  EXPECT_EQ(startOf("2024-03-01T02:00:05Z"), at(2024, 3, 1, 2, 0, 5));
  EXPECT_EQ(startOf("2024-03-01T03:00:05+01:00"), at(2024, 3, 1, 2, 0, 5));
  EXPECT_EQ(startOf("2024-02-29T21:30:05.123456-04:30"), at(2024, 3, 1, 2, 0, 5));
  EXPECT_EQ(startOf("2024-02-30T02:00:05Z"), std::nullopt);
  EXPECT_EQ(startOf("2024-03-01 02:00:05"), std::nullopt);
  EXPECT_EQ(startOf("2024-03-01T02:00:05"), std::nullopt);
}

TEST(KubeletPodList, ContainerIdSchemesAreStripped) {
  EXPECT_EQ(stripContainerIdScheme("containerd://abc"), "abc");
  EXPECT_EQ(stripContainerIdScheme("cri-o://abc"), "abc");
  EXPECT_EQ(stripContainerIdScheme("docker://abc"), "abc");
  EXPECT_EQ(stripContainerIdScheme("abc"), "abc");
}

// ---- over TLS ----

constexpr const char* kOpensslConfig = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[loopback]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
)";

constexpr const char* kToken = "eyJhbGciOiJSUzI1NiJ9.nodewarden-test-token.sig";

class KubeletTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string pattern = (fs::temp_directory_path() / "nodewarden-kubelet-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    std::ofstream(dir_ / "openssl.cnf") << kOpensslConfig;
    const std::string in = "cd '" + dir_.string() + "' && ";
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc ";
    const std::string script =
        in + "openssl req -x509 -config openssl.cnf -extensions ca" + key +
        "-keyout ca.key -out ca.pem -days 2 -subj '/CN=nodewarden test kubelet CA' && " +
        "openssl req -new -config openssl.cnf" + key +
        "-keyout kubelet.key -out kubelet.csr -subj '/CN=worker-1' && " +
        "openssl x509 -req -in kubelet.csr -out kubelet.pem -extensions loopback -CA ca.pem " +
        "-CAkey ca.key -days 2 -extfile openssl.cnf -set_serial 2";
    const std::string command = "(" + script + ") > '" + (dir_ / "openssl.log").string() + "' 2>&1";
    const int rc = std::system(command.c_str());
    if (rc != 0 || !fs::exists(dir_ / "kubelet.pem")) {
      std::ifstream log(dir_ / "openssl.log");
      setup_error_ = "making the test PKI with the openssl CLI failed (" + std::to_string(rc) +
                     "): " + std::string(std::istreambuf_iterator<char>(log), {});
    }
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    token_file_ = path(("token-" + std::to_string(++counter_)).c_str());
    writeToken(kToken);
    FakeKubeletOptions options;
    options.token = kToken;
    options.certificate_file = path("kubelet.pem");
    options.key_file = path("kubelet.key");
    options.pod_list = readFixture("podlist_jobs.json");
    auto fake = FakeKubelet::start(std::move(options));
    ASSERT_TRUE(fake.has_value()) << fake.error();
    fake_ = std::move(*fake);
  }

  static std::string path(const char* name) { return (dir_ / name).string(); }
  void writeToken(const std::string& token) const {
    std::ofstream(token_file_, std::ios::trunc) << token << "\n";  // as projected: one line
  }

  KubeletPodsOptions options() const {
    KubeletPodsOptions o;
    o.url = fake_->url();
    o.token_file = token_file_;
    o.ca_file = path("ca.pem");
    o.timeout = 5s;
    return o;
  }
  static std::unique_ptr<KubeletPodsClient> client(KubeletPodsOptions o) {
    auto c = KubeletPodsClient::create(std::move(o));
    EXPECT_TRUE(c.has_value()) << c.error();
    return c ? std::move(*c) : nullptr;
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
  static inline int counter_ = 0;
  std::string token_file_;
  std::unique_ptr<FakeKubelet> fake_;
  SelfMetrics metrics_;
  ErrorReporter errors_{metrics_.registry()};
};

TEST_F(KubeletTls, FetchesThePodListWithTheBearerToken) {
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->podsUrl().starts_with("https://127.0.0.1:")) << c->podsUrl();
  auto list = c->fetch();
  ASSERT_TRUE(list.has_value()) << list.error().message;
  const PodList want = parseFixture("podlist_jobs.json");
  EXPECT_EQ(list->pods, want.pods);
  const auto requests = fake_->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path, "/pods");
  EXPECT_EQ(requests[0].authorization, std::string("Bearer ") + kToken);
  EXPECT_EQ(requests[0].status, 200);
}

TEST_F(KubeletTls, TheTokenFileIsReadOnEveryFetch) {
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->fetch().has_value());
  fake_->setToken("rotated-token");  // the old token stops working
  auto stale = c->fetch();
  ASSERT_FALSE(stale.has_value());
  EXPECT_EQ(stale.error().error, KubeletError::kForbidden);
  writeToken("rotated-token");  // the kubelet's projection rewrote the file
  auto fresh = c->fetch();
  EXPECT_TRUE(fresh.has_value()) << fresh.error().message;
}

TEST_F(KubeletTls, MissingTokenIs401NamingTheRbac) {
  auto o = options();
  o.token_file.clear();
  auto c = client(o);
  ASSERT_NE(c, nullptr);
  auto list = c->fetch();
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().error, KubeletError::kUnauthorized);
  EXPECT_EQ(list.error().http_status, 401);
  EXPECT_NE(list.error().message.find("nodes/proxy"), std::string::npos) << list.error().message;
  EXPECT_NE(list.error().message.find("nodes/pods"), std::string::npos) << list.error().message;
  EXPECT_EQ(fake_->requests().at(0).authorization, "");
}

TEST_F(KubeletTls, WrongTokenIs403NamingTheRbac) {
  writeToken("not-the-token");
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  auto list = c->fetch();
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().error, KubeletError::kForbidden);
  EXPECT_EQ(list.error().http_status, 403);
  const std::string& m = list.error().message;
  EXPECT_NE(m.find("\"get\" on nodes/proxy"), std::string::npos) << m;
  EXPECT_NE(m.find("nodes/pods"), std::string::npos) << m;
  EXPECT_NE(m.find("subresource(s)=[proxy]"), std::string::npos) << m;  // the kubelet's own words
}

TEST_F(KubeletTls, UnreadableOrEmptyTokenFileFailsBeforeAnyRequest) {
  auto o = options();
  o.token_file = path("no-such-token");
  auto missing = client(o)->fetch();
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().error, KubeletError::kToken);
  EXPECT_NE(missing.error().message.find("no-such-token"), std::string::npos);
  writeToken("");
  auto empty = client(options())->fetch();
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().error, KubeletError::kToken);
  EXPECT_TRUE(fake_->requests().empty());
}

TEST_F(KubeletTls, AHangEndsAtTheTimeout) {
  fake_->hang(10s);
  auto o = options();
  o.timeout = 300ms;
  auto c = client(o);
  ASSERT_NE(c, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto list = c->fetch();
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().error, KubeletError::kTimeout) << list.error().message;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);
}

TEST_F(KubeletTls, ServerErrorsGarbageAndHugeAnswersFailDistinctly) {
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  fake_->failWith(500, 1);
  auto five = c->fetch();
  ASSERT_FALSE(five.has_value());
  EXPECT_EQ(five.error().error, KubeletError::kHttpStatus);
  EXPECT_EQ(five.error().http_status, 500);

  fake_->setPodList("{\"kind\":\"PodList\",\"items\":[{\"metadata\":");
  auto garbage = c->fetch();
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().error, KubeletError::kBadJson);

  fake_->setPodList(readFixture("podlist_jobs.json"));
  auto o = options();
  o.max_response_bytes = 4096;
  auto small = client(o);
  ASSERT_NE(small, nullptr);
  auto huge = small->fetch();
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().error, KubeletError::kTooLarge);
  EXPECT_TRUE(c->fetch().has_value());  // the kept handle is still good
}

TEST_F(KubeletTls, AnUntrustedCertificateIsATlsErrorUnlessVerificationIsOff) {
  auto o = options();
  o.ca_file.clear();  // the system store does not know the test CA
  auto untrusted = client(o)->fetch();
  ASSERT_FALSE(untrusted.has_value());
  EXPECT_EQ(untrusted.error().error, KubeletError::kTls) << untrusted.error().message;
  EXPECT_NE(untrusted.error().message.find("insecure_skip_verify"), std::string::npos);
  o.insecure_skip_verify = true;
  auto skipped = client(o)->fetch();
  EXPECT_TRUE(skipped.has_value()) << skipped.error().message;
}

TEST(KubeletPodsClientCreate, RejectsBadOptions) {
  KubeletPodsOptions o;
  o.url = "127.0.0.1:10250";
  EXPECT_FALSE(KubeletPodsClient::create(o).has_value());
  o.url = "https://127.0.0.1:10250";
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(KubeletPodsClient::create(o).has_value());
  o.ca_file.clear();
  o.timeout = 0ms;
  EXPECT_FALSE(KubeletPodsClient::create(o).has_value());
}

// ---- the ContainerMetadata adapter ----

TEST_F(KubeletTls, MetadataAnswersAndKeepsTheLastGoodListAcrossFailures) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  EXPECT_EQ(meta.staleness(), std::nullopt);
  EXPECT_EQ(meta.container("46c4e2cc009e107411ecbb8b7931d48ded11cb94096bd91145ed38ded446a2fd"),
            std::nullopt);

  meta.refresh();
  ASSERT_EQ(meta.pods().size(), 6u);
  const auto seed =
      meta.container("46c4e2cc009e107411ecbb8b7931d48ded11cb94096bd91145ed38ded446a2fd");
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(seed->pod_uid, "3ee3bdc2-73a7-46ab-a38b-5f61bce37059");
  EXPECT_EQ(seed->namespace_name, "shop");
  EXPECT_EQ(seed->pod_name, "db-seed-2xq9d");
  EXPECT_EQ(seed->container_name, "seed");
  EXPECT_EQ(seed->image, "registry.example.com/shop/seed:1.0.4");
  EXPECT_FALSE(seed->is_sandbox);
  // Init containers are found by id too.
  const auto init =
      meta.container("5eb36a0c6378290510a84e6627ed862fafd6c5fb5491da8d8cbda0593faba52d");
  ASSERT_TRUE(init.has_value());
  EXPECT_EQ(init->container_name, "wait-for-db");
  const auto pod = meta.pod("453886ab-8b3e-4e70-a9b5-3d304ea94939");
  ASSERT_TRUE(pod.has_value());
  EXPECT_EQ(pod->namespace_name, "data");
  EXPECT_EQ(pod->pod_name, "etl-load-q8w4n");
  EXPECT_EQ(meta.pod("00000000-0000-0000-0000-000000000000"), std::nullopt);
  ASSERT_NE(meta.findPod("453886ab-8b3e-4e70-a9b5-3d304ea94939"), nullptr);
  EXPECT_EQ(meta.findPod("453886ab-8b3e-4e70-a9b5-3d304ea94939")->owner.kind, "Job");
  EXPECT_EQ(meta.staleness(), std::chrono::steady_clock::duration::zero());

  // Within the interval: no request.
  now += 5s;
  meta.refresh();
  EXPECT_EQ(fake_->requests().size(), 1u);

  // A 500 and then garbage: counted, the list stays, staleness grows.
  fake_->failWith(500, 1);
  now += 5s;
  meta.refresh();
  EXPECT_EQ(fake_->requests().size(), 2u);
  EXPECT_EQ(errors_.count("pods", "kubelet_http_status"), 1.0);
  EXPECT_TRUE(meta.pod("453886ab-8b3e-4e70-a9b5-3d304ea94939").has_value());
  fake_->setPodList("garbage");
  now += 10s;
  meta.refresh();
  EXPECT_EQ(errors_.count("pods", "kubelet_bad_json"), 1.0);
  EXPECT_EQ(meta.pods().size(), 6u);
  EXPECT_EQ(meta.staleness(), std::chrono::steady_clock::duration(20s));
  EXPECT_EQ(meta.stats().fetches, 3u);
  EXPECT_EQ(meta.stats().failures, 2u);

  // A good list replaces pods() wholesale; the pods gone from /pods are departed (see the
  // DeletedPod tests for their grace period).
  fake_->setPodList(readFixture("podlist_workloads.json"));
  now += 10s;
  meta.refresh();
  EXPECT_EQ(meta.staleness(), std::chrono::steady_clock::duration::zero());
  EXPECT_EQ(meta.pods().size(), 5u);
  EXPECT_EQ(meta.departedCount(), 6u);
  const auto envoy =
      meta.container("b69d5ae9f67ae54ade61942cc8e56a761f6b5a9e71376c66b14b4a493a5a47ee");
  ASSERT_TRUE(envoy.has_value());
  EXPECT_EQ(envoy->pod_name, "checkout-6d8f9c7b5-x2x9q");
}

// pod() resolves the owner chain: workloads from the owners, a CronJob by the naming rule when no
// lookup is given, and from the lookup when one is.
TEST_F(KubeletTls, PodsCarryTheirOwnerChainQosAndLabels) {
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  fake_->setPodList(readFixture("podlist_workloads.json"));
  KubeletPodsMetadata workloads(client(options()), errors_, mo);
  workloads.refresh();
  const auto checkout = workloads.pod("a3a13f8e-917d-4e01-af8b-4d3e59403d34");
  ASSERT_TRUE(checkout.has_value());
  EXPECT_EQ(checkout->owner_kind, "ReplicaSet");
  EXPECT_EQ(checkout->owner_name, "checkout-6d8f9c7b5");
  EXPECT_EQ(checkout->workload_kind, "Deployment");
  EXPECT_EQ(checkout->workload_name, "checkout");
  EXPECT_EQ(checkout->qos_class, "Burstable");
  EXPECT_EQ(checkout->labels, (std::map<std::string, std::string>{
                                  {"app", "checkout"}, {"pod-template-hash", "6d8f9c7b5"}}));
  EXPECT_EQ(checkout->job, "");
  EXPECT_EQ(checkout->cronjob, "");
  const auto sts = workloads.pod("35b9c961-ca42-4153-ab20-4dd3ab107532");
  ASSERT_TRUE(sts.has_value());
  EXPECT_EQ(sts->workload_kind, "StatefulSet");
  EXPECT_EQ(sts->workload_name, "postgres");
  EXPECT_EQ(sts->qos_class, "Guaranteed");
  const auto bare = workloads.pod("bc7d224e-7403-40c0-a2fb-8a53d8b50d0d");
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->owner_kind, "");
  EXPECT_EQ(bare->workload_kind, "");
  EXPECT_EQ(bare->workload_name, "");
  EXPECT_EQ(bare->qos_class, "BestEffort");

  fake_->setPodList(readFixture("podlist_jobs.json"));
  KubeletPodsMetadata by_name(client(options()), errors_, mo);
  by_name.refresh();
  const auto nightly = by_name.pod("57471fdd-e841-4f2d-a0d1-79af5f0f7ebd");
  ASSERT_TRUE(nightly.has_value());
  EXPECT_EQ(nightly->job, "nightly-report-28504320");
  EXPECT_EQ(nightly->cronjob, "nightly-report");
  EXPECT_EQ(nightly->workload_kind, "CronJob");
  EXPECT_EQ(nightly->workload_name, "nightly-report");
  const auto etl = by_name.pod("453886ab-8b3e-4e70-a9b5-3d304ea94939");
  ASSERT_TRUE(etl.has_value());
  EXPECT_EQ(etl->job, "etl-load");
  EXPECT_EQ(etl->cronjob, "");
  EXPECT_EQ(etl->workload_kind, "Job");
  EXPECT_EQ(etl->workload_name, "etl-load");

  class OneCronJob final : public CronJobLookup {
   public:
    CronJobAnswer cronJobOf(std::string_view ns, std::string_view job) override {
      if (ns == "data" && job == "etl-load") return {CronJobAnswer::State::kCronJob, "etl-hourly"};
      return {CronJobAnswer::State::kNone, ""};
    }
  };
  mo.cronjobs = std::make_shared<OneCronJob>();
  KubeletPodsMetadata by_api(client(options()), errors_, mo);
  by_api.refresh();
  EXPECT_EQ(by_api.pod("453886ab-8b3e-4e70-a9b5-3d304ea94939")->cronjob, "etl-hourly");
  EXPECT_EQ(by_api.pod("453886ab-8b3e-4e70-a9b5-3d304ea94939")->workload_name, "etl-hourly");
  // The API said "no CronJob": the name that looks like one is not taken for one.
  EXPECT_EQ(by_api.pod("57471fdd-e841-4f2d-a0d1-79af5f0f7ebd")->cronjob, "");
  EXPECT_EQ(by_api.pod("57471fdd-e841-4f2d-a0d1-79af5f0f7ebd")->workload_kind, "Job");
}

constexpr const char* kEtlUid = "453886ab-8b3e-4e70-a9b5-3d304ea94939";
constexpr const char* kEtlId = "849f22cc5ba021768392b266bc92041f4cd9881414a72a220ec71e6574930be8";

bool listed(const KubeletPodsMetadata& meta, std::string_view uid) {
  return std::ranges::any_of(meta.pods(), [&](const PodInfo& p) { return p.uid == uid; });
}

TEST_F(KubeletTls, DeletedPodIsAnsweredUntilItsGracePeriodEnds) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  mo.now = [&] { return now; };
  EXPECT_EQ(mo.deleted_grace, 2min);  // the issue's default
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  meta.refresh();
  ASSERT_TRUE(meta.pod(kEtlUid).has_value());

  fake_->setPodList(readFixture("podlist_workloads.json"));
  now += 10s;
  meta.refresh();  // the jobs left /pods at this list
  EXPECT_FALSE(listed(meta, kEtlUid));
  EXPECT_EQ(meta.departedCount(), 6u);
  const auto departed = [&] {
    const auto c = meta.container(kEtlId);
    const auto p = meta.pod(kEtlUid);
    const PodInfo* info = meta.findPod(kEtlUid);
    return c && c->pod_name == "etl-load-q8w4n" && p && p->pod_name == "etl-load-q8w4n" &&
           p->job == "etl-load" && info != nullptr && info->owner.kind == "Job";
  };
  EXPECT_TRUE(departed());
  // The live ones are answered beside them.
  EXPECT_TRUE(meta.pod("35b9c961-ca42-4153-ab20-4dd3ab107532").has_value());

  // Still the departed list's grace, counted from the list that left them out, across fetches.
  now += 2min - 1s;
  meta.refresh();
  EXPECT_TRUE(departed());
  EXPECT_EQ(meta.departedCount(), 6u);

  // At the end of it, a lookup misses at once, before any refresh() ...
  now += 1s;
  EXPECT_EQ(meta.container(kEtlId), std::nullopt);
  EXPECT_EQ(meta.pod(kEtlUid), std::nullopt);
  EXPECT_EQ(meta.findPod(kEtlUid), nullptr);
  // ... and the next refresh() forgets them.
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 0u);
  EXPECT_EQ(meta.pods().size(), 5u);
}

TEST_F(KubeletTls, DeletedPodsAreForgottenEvenWhileTheKubeletIsDown) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  mo.deleted_grace = 30s;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  meta.refresh();
  fake_->setPodList(readFixture("podlist_workloads.json"));
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 6u);
  fake_->failWith(503);  // no good list from now on: the expiry does not wait for one
  now += 30s;
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 0u);
  EXPECT_EQ(meta.pod(kEtlUid), std::nullopt);
  EXPECT_EQ(meta.pods().size(), 5u);  // the last good list stays
}

TEST_F(KubeletTls, APodBackWithinItsGracePeriodIsLiveAgain) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  meta.refresh();
  fake_->setPodList(readFixture("podlist_workloads.json"));
  now += 10s;
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 6u);

  // /pods briefly left them out (a kubelet restart, a lagging sync): they come back.
  fake_->setPodList(readFixture("podlist_jobs.json"));
  now += 10s;
  meta.refresh();
  EXPECT_TRUE(listed(meta, kEtlUid));
  EXPECT_EQ(meta.pods().size(), 6u);
  EXPECT_EQ(meta.departedCount(), 5u);  // now the workloads are the departed ones

  // Long past the first grace period: live pods are never forgotten.
  now += 10min;
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 0u);
  ASSERT_TRUE(meta.container(kEtlId).has_value());
  EXPECT_EQ(meta.container(kEtlId)->pod_uid, kEtlUid);
  ASSERT_NE(meta.findPod(kEtlUid), nullptr);
  EXPECT_EQ(meta.pod("35b9c961-ca42-4153-ab20-4dd3ab107532"), std::nullopt);
}

TEST_F(KubeletTls, PodChurnKeepsOnlyTheGracePeriodsDeparted) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  // One short-lived pod per list, a list every 30 s: 20 pods pass through in 10 minutes.
  const auto podList = [](int i) {
    const std::string n = std::to_string(i);
    return R"({"kind":"PodList","items":[{"metadata":{"uid":"uid-)" + n + R"(","name":"job-)" + n +
           R"(","namespace":"batch"},"status":{"containerStatuses":[{"name":"main",)" +
           R"("containerID":"containerd://id-)" + n + R"("}]}}]})";
  };
  std::size_t most = 0;
  for (int i = 0; i < 20; ++i) {
    fake_->setPodList(podList(i));
    meta.refresh();
    ASSERT_EQ(meta.pods().size(), 1u);
    most = std::max(most, meta.departedCount());
    if (i > 0) {  // the previous pod is still answered, by container id too
      ASSERT_TRUE(meta.container("id-" + std::to_string(i - 1)).has_value()) << i;
    }
    now += 30s;
  }
  EXPECT_EQ(most, 4u);  // the pods that left in the last 2 minutes, never more
  EXPECT_EQ(meta.pod("uid-0"), std::nullopt);
  now += 2min;
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 0u);
}

TEST_F(KubeletTls, AZeroGracePeriodForgetsAtOnce) {
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  mo.deleted_grace = 0ms;
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  meta.refresh();
  fake_->setPodList(readFixture("podlist_workloads.json"));
  meta.refresh();
  EXPECT_EQ(meta.departedCount(), 0u);
  EXPECT_EQ(meta.pod(kEtlUid), std::nullopt);
  EXPECT_EQ(meta.container(kEtlId), std::nullopt);
}

TEST_F(KubeletTls, MetadataCountsRbacFailuresAndSkippedItems) {
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 0ms;
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  writeToken("not-the-token");
  meta.refresh();
  EXPECT_EQ(errors_.count("pods", "kubelet_forbidden"), 1.0);
  writeToken(kToken);
  fake_->setPodList(readFixture("podlist_bad_items.json"));
  meta.refresh();
  EXPECT_EQ(meta.pods().size(), 1u);
  EXPECT_EQ(errors_.count("pods", "kubelet_bad_pod"), 4.0);
  EXPECT_EQ(errors_.count("pods", "kubelet_bad_field"), 4.0);
}

TEST_F(KubeletTls, BackgroundMetadataNeverWaitsForTheNetwork) {
  fake_->hang(800ms, 1);
  KubeletPodsMetadataOptions mo;
  mo.refresh_interval = 0ms;
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  const auto start = std::chrono::steady_clock::now();
  meta.refresh();  // asks for a fetch; the fake hangs on it
  meta.refresh();  // one in flight: nothing more
  EXPECT_LT(std::chrono::steady_clock::now() - start, 400ms);
  EXPECT_TRUE(meta.pods().empty());
  ASSERT_TRUE(meta.waitForFetch(10s));
  meta.refresh();  // takes in the hung fetch's 503, asks again
  EXPECT_EQ(errors_.count("pods", "kubelet_http_status"), 1.0);
  ASSERT_TRUE(meta.waitForFetch(10s));
  meta.refresh();  // takes in the good list
  EXPECT_EQ(meta.pods().size(), 6u);
  EXPECT_TRUE(meta.container("849f22cc5ba021768392b266bc92041f4cd9881414a72a220ec71e6574930be8")
                  .has_value());
  EXPECT_TRUE(meta.staleness().has_value());
}

// generation() moves when a list that differs is taken in, and only then: the collector asks
// about its unnamed cgroups again exactly when the kubelet may name them.
TEST_F(KubeletTls, GenerationMovesWhenTheListChanges) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  EXPECT_EQ(meta.generation(), 0U);
  meta.refresh();
  const auto first = meta.generation();
  EXPECT_GT(first, 0U);
  now += 10s;
  meta.refresh();  // the same list again
  EXPECT_EQ(fake_->requests().size(), 2U);
  EXPECT_EQ(meta.generation(), first);
  fake_->failWith(500, 1);
  now += 10s;
  meta.refresh();  // a failure keeps the list
  EXPECT_EQ(meta.generation(), first);
  fake_->setPodList(readFixture("podlist_workloads.json"));
  now += 10s;
  meta.refresh();
  EXPECT_GT(meta.generation(), first);
}

// A cgroup of a pod the list does not have yet asks for a fetch before the interval is over: at
// once, then at most once per early_refresh_gap however often it is asked; the list it brings is
// taken in by the next refresh() and moves generation().
TEST_F(KubeletTls, AnUnknownPodFetchesEarlyAtMostOncePerGap) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.refresh_interval = 10s;
  mo.early_refresh_gap = 1s;
  mo.now = [&] { return now; };  // read on both threads; only this one changes it, between waits
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  meta.refresh();
  ASSERT_TRUE(meta.waitForFetch(10s));
  meta.refresh();
  ASSERT_EQ(fake_->requests().size(), 1U);
  const auto first = meta.generation();
  const std::string new_uid = "8f1d7c1e-2b3a-4c5d-9e8f-0a1b2c3d4e5f";
  EXPECT_EQ(meta.pod(new_uid), std::nullopt);

  // The pod starts: the kubelet has it, the list taken in does not.
  auto list = nlohmann::json::parse(readFixture("podlist_jobs.json"));
  auto pod = list["items"][0];
  pod["metadata"]["uid"] = new_uid;
  pod["metadata"]["name"] = "short-job-x7k2p";
  list["items"].push_back(pod);
  fake_->setPodList(list.dump());

  now += 200ms;
  meta.requestRefresh();  // within the gap of the last fetch: not yet
  meta.requestRefresh();
  ASSERT_TRUE(meta.waitForFetch(10s));
  EXPECT_EQ(fake_->requests().size(), 1U);
  now += 800ms;
  meta.refresh();  // the gap is over and a request waits: fetch now, 9 s before the interval
  ASSERT_TRUE(meta.waitForFetch(10s));
  EXPECT_EQ(fake_->requests().size(), 2U);
  EXPECT_EQ(meta.stats().early, 1U);
  meta.refresh();  // takes it in
  EXPECT_GT(meta.generation(), first);
  const auto named = meta.pod(new_uid);
  ASSERT_TRUE(named.has_value());
  EXPECT_EQ(named->pod_name, "short-job-x7k2p");

  // Asked again after the gap: at once, without waiting for a refresh().
  now += 1s;
  meta.requestRefresh();
  ASSERT_TRUE(meta.waitForFetch(10s));
  EXPECT_EQ(fake_->requests().size(), 3U);
  meta.requestRefresh();  // right after: nothing
  ASSERT_TRUE(meta.waitForFetch(10s));
  EXPECT_EQ(fake_->requests().size(), 3U);
  EXPECT_EQ(meta.stats().early, 2U);
}

TEST_F(KubeletTls, DestroyingMetadataDuringAHangIsBounded) {
  fake_->hang(10s);
  auto meta = std::make_unique<KubeletPodsMetadata>(client(options()), errors_);
  meta->refresh();
  ASSERT_TRUE(fake_->waitForHangs(1, 10s));  // the fetch waits on the fake
  const auto start = std::chrono::steady_clock::now();
  meta.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

// With the defaults (collection and kubelet refresh every 10 s) a container that appears in a
// pod the kubelet lists is in the list only once its status went round the API server: here in
// the second fetch made after its cgroup appeared. The first of those began (in the cycle's
// refresh) just before the cgroup was found, so it cannot count; the second is taken in two
// cycles later. The container is held out until then, never exported anonymous, and exported
// named in the first cycle whose refresh took that list in.
TEST_F(KubeletTls, ANewContainerIsHeldUntilTheListThatNamesItWithEqualIntervals) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kInterval = 10s;
  std::atomic<Clock::time_point> now{Clock::time_point{} + 1h};
  const auto clock = [&] { return now.load(); };

  // The cgroup tree: a copy of a fixture whose besteffort pod the kubelet lists.
  std::string pattern = (fs::temp_directory_path() / "nodewarden-hold-XXXXXX");
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path root = pattern;
  fs::copy(fs::path(NODEWARDEN_FIXTURES) / "cgroup/v2-cgroupfs-docker", root,
           fs::copy_options::recursive);
  struct Remove {
    fs::path path;
    ~Remove() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } remove{root};
  const std::string uid = "11111111-2222-3333-4444-555555555553";
  const std::string id(64, 'e');
  auto list = nlohmann::json::parse(readFixture("podlist_jobs.json"));
  auto& pod = list["items"][0];
  pod["metadata"]["uid"] = uid;
  auto& status = pod["status"]["containerStatuses"][0];
  status.erase("containerID");  // not started yet, as far as the API server knows
  status["state"] = {{"waiting", {{"reason", "ContainerCreating"}}}};
  fake_->setPodList(list.dump());

  KubeletPodsMetadataOptions mo;
  mo.refresh_interval = kInterval;
  mo.early_refresh_gap = 1s;
  mo.now = clock;  // read on both threads
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  CgroupCollectorOptions co;
  co.cgroup_root = root / "sys/fs/cgroup";
  co.proc_root = root / "proc";
  co.log_root = "/nonexistent";
  co.metadata = &meta;
  co.hold_unnamed = namingHold(kInterval, mo.refresh_interval);  // as the agent sets it
  co.listings_since = [&meta](Clock::time_point t) { return meta.listingsSince(t); };
  co.hold_at_least = mo.refresh_interval;
  co.now = clock;
  CgroupCollector collector(co, errors_);
  Snapshot snapshot;

  // One of the agent's cycles at `at`: the source's refresh, then the collection a moment later;
  // the fetch it started is waited for so that the next cycle takes it in.
  const auto cycle = [&](Clock::time_point at) -> const CgroupSample* {
    now = at;
    meta.refresh();
    now = at + 1ms;
    snapshot.reset();
    collector.collect(snapshot);
    EXPECT_TRUE(meta.waitForFetch(10s));
    for (const CgroupSample* s : snapshot.cgroups) {
      if (s->pod_uid == uid && s->container_id == id) return s;
    }
    return nullptr;
  };
  const Clock::time_point start = now.load();
  cycle(start);
  cycle(start + kInterval);  // the pod's list is in: the pod is named
  ASSERT_EQ(fake_->requests().size(), 2U);

  const fs::path dir = root / "sys/fs/cgroup/kubepods/besteffort" / ("pod" + uid) / id;
  fs::create_directory(dir);
  std::ofstream(dir / "cpu.stat") << "usage_usec 5\n";
  const CgroupSample* named = nullptr;
  int cycles = 0;
  for (int k = 2; k < 8 && named == nullptr; ++k) {
    const CgroupSample* s = cycle(start + k * kInterval);
    ++cycles;
    ASSERT_NE(s, nullptr) << "collected every cycle, held or not";
    if (!s->container_name.empty()) {
      named = s;
      break;
    }
    EXPECT_TRUE(s->names_pending) << "exported anonymous in cycle " << k;
    EXPECT_EQ(s->pod_name, "nightly-report-28504320-7xk2p") << "its pod's names are known";
    // The kubelet lists the container from the second fetch after the cgroup appeared on.
    if (fake_->requests().size() == 3U) {
      status["containerID"] = "containerd://" + id;
      status["state"] = {{"running", {{"startedAt", "2024-03-01T02:00:05Z"}}}};
      fake_->setPodList(list.dump());
    }
  }
  ASSERT_NE(named, nullptr) << "never named";
  EXPECT_FALSE(named->names_pending);
  EXPECT_EQ(named->container_name, "report");
  EXPECT_EQ(named->image, "registry.example.com/analytics/report:1.8.0");
  EXPECT_EQ(cycles, 3) << "named in the cycle that took in the fourth fetch";
  EXPECT_EQ(fake_->requests().size(), 5U);
}

// listingsSince counts the fetches taken in by when they were asked for, not when they ended.
TEST_F(KubeletTls, ListingsSinceCountsFetchesAskedForFromThen) {
  auto now = std::chrono::steady_clock::time_point{} + 1h;
  KubeletPodsMetadataOptions mo;
  mo.background = false;
  mo.refresh_interval = 10s;
  mo.now = [&] { return now; };
  KubeletPodsMetadata meta(client(options()), errors_, mo);
  const auto t0 = now;
  EXPECT_EQ(meta.listingsSince(t0), 0U);
  meta.refresh();
  EXPECT_EQ(meta.listingsSince(t0), 1U);
  EXPECT_EQ(meta.listingsSince(t0 + 1ms), 0U) << "asked for before";
  fake_->failWith(500, 1);
  now += 10s;
  meta.refresh();  // a failed fetch counts: a source that is down must not hold a cgroup longer
  EXPECT_EQ(meta.listingsSince(t0 + 1ms), 1U);
  for (int i = 0; i < 6; ++i) {
    now += 10s;
    meta.refresh();
  }
  EXPECT_EQ(meta.listingsSince(t0), KubeletPodsMetadata::kListingsKept) << "the last ones kept";
  EXPECT_EQ(meta.listingsSince(now), 1U);
  EXPECT_EQ(meta.listingsSince(now + 1ms), 0U);
}

}  // namespace
}  // namespace nodewarden::pods
