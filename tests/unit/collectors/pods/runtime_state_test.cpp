// RuntimeStateReader against fixture state roots (tests/fixtures/runtime_state: one containerd and
// one CRI-O pod, a sandbox and two app containers each, plus one garbled config.json per runtime),
// and parseRuntimeConfig on hand-written configs for each way a file can be unusable.
//
// What a reader gets wrong: the fixture ids are sha256 of a name (see the constants below), not
// real runtime ids, and the tests that change the tree work on a copy in a temp dir; the fixture
// tree itself is never written.
#include "collectors/pods/runtime_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "collectors/pods/runtime_state_metadata.h"

namespace nodewarden::pods {
namespace {

namespace fs = std::filesystem;

// sha256("containerd-sandbox") etc., as tests/fixtures/runtime_state was generated.
constexpr const char* kCdSandbox =
    "85b013213e803c7bc39ff8937f98c8b3b8ba3ee2cf22b5c7f08dfa7dd07f0fc4";
constexpr const char* kCdCheckout =
    "e808dd0f3b6368e4c3e4575f0f5cbd7b52ac9b1731ae27863e358f5c0ee25a6c";
constexpr const char* kCdEnvoy = "c4590b77ae209e339c515003987ac2fa4321e37c43e38c0ee1a87e23d0ad238a";
constexpr const char* kCdGarbled =
    "04d226c7fe6f1594f44248fd3d51389e337eda43725f44f386f0a03ad67a4a3d";
constexpr const char* kCrioSandbox =
    "a18bfabd3cf1d74d0267b59ef276e9c1c94d4e31a9fb482340d884a4c4275b94";
constexpr const char* kCrioReport =
    "8bf65cfcc8d420a688b100753dd2c844640c6525ea6e36d44100a707c2f60681";
constexpr const char* kCrioUploader =
    "0144420f82a69483bd628f9e1302c6beb5a2b979d05f47ed0c42966ba85e78be";
constexpr const char* kCrioGarbled =
    "3d3122bb99c5246112b07ca579dabf60e9d7e704e62d0ed3456277aa57c97156";

constexpr const char* kCdUid = "7c1e3b52-9a0d-4f4e-8f61-2d5b6c3a9e10";
constexpr const char* kCrioUid = "e2a4c6d8-1b3f-4a5c-9d7e-0f1a2b3c4d5e";

// A fresh id for containers the tests create.
constexpr const char* kNewId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fs::path fixture(const fs::path& relative) {
  return fs::path(NODEWARDEN_FIXTURES) / "runtime_state" / relative;
}

void writeFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

ContainerMeta meta(std::string uid, std::string ns, std::string pod, std::string container,
                   std::string image, std::string sandbox_id, bool is_sandbox) {
  return {std::move(uid),   std::move(ns),         std::move(pod), std::move(container),
          std::move(image), std::move(sandbox_id), is_sandbox};
}

// A containerd config.json with the given annotations (a JSON object's members, without braces).
std::string containerdConfig(const std::string& annotations) {
  return R"({"ociVersion":"1.1.0","process":{"args":["/app"],"cwd":"/"},"root":{"path":"rootfs"},)"
         R"("annotations":{)" +
         annotations + "}}";
}

std::string containerdApp(const std::string& name, const std::string& sandbox_id) {
  return containerdConfig(R"("io.kubernetes.cri.container-type":"container",)"
                          R"("io.kubernetes.cri.container-name":")" +
                          name + R"(","io.kubernetes.cri.sandbox-id":")" + sandbox_id +
                          R"(","io.kubernetes.cri.sandbox-name":"checkout-6d8f9c7b5-x2x9q",)"
                          R"("io.kubernetes.cri.sandbox-namespace":"shop",)"
                          R"("io.kubernetes.cri.sandbox-uid":")" +
                          kCdUid + R"(","io.kubernetes.cri.image-name":"busybox:1.36")");
}

class RuntimeStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) / (std::string("nodewarden_runtime_state_") +
                                              info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A writable copy of one runtime's fixture root.
  fs::path copyFixture(const char* runtime) {
    const fs::path to = root_ / runtime;
    fs::copy(fixture(runtime), to, fs::copy_options::recursive);
    return to;
  }
  fs::path containerdDir(const fs::path& root) const {
    return root / "io.containerd.runtime.v2.task" / "k8s.io";
  }

  double errors(std::string_view reason) const { return errors_.count("pods", reason); }

  fs::path root_;
  SelfMetrics metrics_;
  ErrorReporter errors_{metrics_.registry()};
};

TEST_F(RuntimeStateTest, ContainerdFixtureParsesToExactValues) {
  RuntimeStateReader reader({fixture("containerd")}, errors_);
  reader.rescan();

  const ContainerMeta* sandbox = reader.find(kCdSandbox);
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(*sandbox, meta(kCdUid, "shop", "checkout-6d8f9c7b5-x2x9q", "", "", kCdSandbox, true));
  const ContainerMeta* checkout = reader.find(kCdCheckout);
  ASSERT_NE(checkout, nullptr);
  EXPECT_EQ(*checkout, meta(kCdUid, "shop", "checkout-6d8f9c7b5-x2x9q", "checkout",
                            "registry.example.com/shop/checkout:1.14.2", kCdSandbox, false));
  const ContainerMeta* envoy = reader.find(kCdEnvoy);
  ASSERT_NE(envoy, nullptr);
  EXPECT_EQ(*envoy, meta(kCdUid, "shop", "checkout-6d8f9c7b5-x2x9q", "envoy",
                         "docker.io/envoyproxy/envoy:v1.29.1", kCdSandbox, false));

  EXPECT_EQ(reader.find(kCdGarbled), nullptr);
  EXPECT_EQ(reader.size(), 3U);
  EXPECT_EQ(errors("bad_json"), 1);
  const auto& stats = reader.lastRescan();
  EXPECT_EQ(stats.layouts_found, 1U);
  EXPECT_EQ(stats.listed, 4U);
  EXPECT_EQ(stats.parsed, 4U);
  EXPECT_EQ(stats.failed, 1U);
  EXPECT_EQ(stats.pending, 0U);
}

TEST_F(RuntimeStateTest, CrioFixtureParsesToExactValues) {
  RuntimeStateReader reader({fixture("crio")}, errors_);
  reader.rescan();

  // The sandbox has kubelet's labels only in io.kubernetes.cri-o.Labels.
  const ContainerMeta* sandbox = reader.find(kCrioSandbox);
  ASSERT_NE(sandbox, nullptr);
  EXPECT_EQ(*sandbox, meta(kCrioUid, "batch", "report-28461234-9kq7h", "",
                           "registry.k8s.io/pause:3.9", kCrioSandbox, true));
  const ContainerMeta* report = reader.find(kCrioReport);
  ASSERT_NE(report, nullptr);
  EXPECT_EQ(*report, meta(kCrioUid, "batch", "report-28461234-9kq7h", "report",
                          "quay.io/example/report:2.3.0", kCrioSandbox, false));
  // ImageName is "" for an image pulled by digest: the requested reference is used instead.
  const ContainerMeta* uploader = reader.find(kCrioUploader);
  ASSERT_NE(uploader, nullptr);
  EXPECT_EQ(*uploader, meta(kCrioUid, "batch", "report-28461234-9kq7h", "uploader",
                            "docker.io/amazon/aws-cli@sha256:"
                            "7f73346cfb85ff7dac92ee16fae15b9e5f00388fbb6cf5807a0ba81020038c38",
                            kCrioSandbox, false));

  EXPECT_EQ(reader.find(kCrioGarbled), nullptr);
  EXPECT_EQ(reader.size(), 3U);
  EXPECT_EQ(errors("bad_json"), 1);
  EXPECT_EQ(reader.lastRescan().failed, 1U);
}

TEST_F(RuntimeStateTest, OneReaderScansEveryRootForBothLayouts) {
  RuntimeStateReader reader({fixture("containerd"), fixture("crio")}, errors_);
  reader.rescan();
  EXPECT_EQ(reader.lastRescan().layouts_found, 2U);
  EXPECT_EQ(reader.size(), 6U);
  ASSERT_NE(reader.find(kCdEnvoy), nullptr);
  ASSERT_NE(reader.find(kCrioReport), nullptr);
  EXPECT_TRUE(reader.find(kCrioSandbox)->is_sandbox);
  EXPECT_FALSE(reader.find(kCrioReport)->is_sandbox);
  EXPECT_EQ(errors("bad_json"), 2);
  EXPECT_EQ(reader.find("not-an-id"), nullptr);
}

TEST_F(RuntimeStateTest, UnchangedTreeIsNotReadAgainAndBadFilesAreCountedOnce) {
  RuntimeStateReader reader({fixture("containerd"), fixture("crio")}, errors_);
  reader.rescan();
  reader.rescan();
  const auto& stats = reader.lastRescan();
  EXPECT_EQ(stats.listed, 8U);
  EXPECT_EQ(stats.parsed, 0U);
  EXPECT_EQ(stats.failed, 0U);
  EXPECT_EQ(stats.forgotten, 0U);
  EXPECT_EQ(reader.size(), 6U);
  EXPECT_EQ(errors("bad_json"), 2);
}

TEST_F(RuntimeStateTest, RescanPicksUpANewContainerAndForgetsARemovedOne) {
  const fs::path root = copyFixture("containerd");
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  ASSERT_NE(reader.find(kCdEnvoy), nullptr);
  ASSERT_EQ(reader.find(kNewId), nullptr);

  writeFile(containerdDir(root) / kNewId / "config.json", containerdApp("migrate", kCdSandbox));
  fs::remove_all(containerdDir(root) / kCdEnvoy);
  reader.rescan();

  EXPECT_EQ(reader.find(kCdEnvoy), nullptr);
  const ContainerMeta* added = reader.find(kNewId);
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(*added, meta(kCdUid, "shop", "checkout-6d8f9c7b5-x2x9q", "migrate", "busybox:1.36",
                         kCdSandbox, false));
  const auto& stats = reader.lastRescan();
  EXPECT_EQ(stats.parsed, 1U);  // only the new one
  EXPECT_EQ(stats.forgotten, 1U);
  EXPECT_EQ(reader.size(), 3U);
  EXPECT_EQ(errors("bad_json"), 1);  // the garbled one, still not recounted
}

TEST_F(RuntimeStateTest, DirectoryWithoutConfigIsPendingUntilTheFileAppears) {
  const fs::path root = copyFixture("containerd");
  RuntimeStateReader reader({root}, errors_);
  fs::create_directories(containerdDir(root) / kNewId);
  reader.rescan();
  EXPECT_EQ(reader.find(kNewId), nullptr);
  EXPECT_EQ(reader.lastRescan().pending, 1U);
  EXPECT_EQ(errors("unreadable_file"), 0);

  writeFile(containerdDir(root) / kNewId / "config.json", containerdApp("late", kCdSandbox));
  reader.rescan();
  ASSERT_NE(reader.find(kNewId), nullptr);
  EXPECT_EQ(reader.find(kNewId)->container_name, "late");
  EXPECT_EQ(reader.lastRescan().pending, 0U);
}

TEST_F(RuntimeStateTest, GarbledFileIsReadAgainOnceItChanges) {
  const fs::path root = copyFixture("containerd");
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  ASSERT_EQ(reader.find(kCdGarbled), nullptr);
  ASSERT_EQ(errors("bad_json"), 1);

  // The runtime finished writing it (os.WriteFile is not atomic): larger, newer, readable.
  writeFile(containerdDir(root) / kCdGarbled / "config.json", containerdApp("init-db", kCdSandbox));
  reader.rescan();
  ASSERT_NE(reader.find(kCdGarbled), nullptr);
  EXPECT_EQ(reader.find(kCdGarbled)->container_name, "init-db");
  EXPECT_EQ(errors("bad_json"), 1);
}

TEST_F(RuntimeStateTest, MissingRootsAreNotFatalAndNotCounted) {
  writeFile(root_ / "a-file", "x");
  RuntimeStateReader reader({root_ / "does-not-exist", root_ / "a-file", root_}, errors_);
  reader.rescan();
  reader.rescan();
  EXPECT_EQ(reader.size(), 0U);
  EXPECT_EQ(reader.lastRescan().layouts_found, 0U);
  EXPECT_EQ(errors("unreadable_dir"), 0);
  EXPECT_EQ(reader.find(kCdSandbox), nullptr);
}

TEST_F(RuntimeStateTest, RootThatDisappearsForgetsItsContainers) {
  const fs::path root = copyFixture("crio");
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  ASSERT_EQ(reader.size(), 3U);
  fs::remove_all(root);
  reader.rescan();
  EXPECT_EQ(reader.size(), 0U);
  EXPECT_EQ(reader.lastRescan().forgotten, 4U);  // the garbled one's entry too
}

TEST_F(RuntimeStateTest, EntriesThatAreNotContainerIdsAreIgnored) {
  const fs::path root = copyFixture("crio");
  writeFile(root / "overlay-containers" / "containers.lock", "");
  writeFile(root / "overlay-containers" / "volatile-containers.json", "[]");
  writeFile(root / "overlay-containers" / "ABCDEF" / "userdata" / "config.json", "{}");
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  EXPECT_EQ(reader.lastRescan().listed, 4U);
  EXPECT_EQ(reader.size(), 3U);
}

TEST_F(RuntimeStateTest, ContainersOfOtherClientsAreSkippedWithoutCounting) {
  const fs::path root = copyFixture("crio");
  // podman shares CRI-O's storage; its containers carry no CRI annotations.
  writeFile(root / "overlay-containers" / kNewId / "userdata" / "config.json",
            R"({"ociVersion":"1.0.0","annotations":{"io.container.manager":"libpod",)"
            R"("org.opencontainers.image.stopSignal":"15"}})");
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  EXPECT_EQ(reader.find(kNewId), nullptr);
  EXPECT_EQ(reader.lastRescan().foreign, 1U);
  EXPECT_EQ(errors("not_cri"), 0);
  EXPECT_EQ(errors("missing_annotations"), 0);
  reader.rescan();
  EXPECT_EQ(reader.lastRescan().parsed, 0U);  // not read again while unchanged
}

TEST_F(RuntimeStateTest, ContainerWithoutPodFieldsTakesThemFromItsSandbox) {
  const fs::path root = copyFixture("containerd");
  // An older containerd: the container names its sandbox but not the pod.
  writeFile(containerdDir(root) / kNewId / "config.json",
            containerdConfig(R"("io.kubernetes.cri.container-type":"container",)"
                             R"("io.kubernetes.cri.container-name":"old",)"
                             R"("io.kubernetes.cri.sandbox-id":")" +
                             std::string(kCdSandbox) + R"(")"));
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  const ContainerMeta* old = reader.find(kNewId);
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(*old, meta(kCdUid, "shop", "checkout-6d8f9c7b5-x2x9q", "old", "", kCdSandbox, false));
}

TEST_F(RuntimeStateTest, ContainerWhoseSandboxIsUnknownKeepsEmptyPodFields) {
  const fs::path root = copyFixture("containerd");
  fs::remove_all(containerdDir(root) / kCdSandbox);
  const std::string other_sandbox(64, 'e');
  writeFile(containerdDir(root) / kNewId / "config.json",
            containerdConfig(R"("io.kubernetes.cri.container-type":"container",)"
                             R"("io.kubernetes.cri.container-name":"old",)"
                             R"("io.kubernetes.cri.sandbox-id":")" +
                             other_sandbox + R"(")"));
  RuntimeStateReader reader({root}, errors_);
  reader.rescan();
  const ContainerMeta* old = reader.find(kNewId);
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(*old, meta("", "", "", "old", "", other_sandbox, false));
}

// ---- parseRuntimeConfig ----

TEST(ParseRuntimeConfigTest, ContainerdSandboxUidFallsBackToItsLogDirectory) {
  const auto parsed = parseRuntimeConfig(
      containerdConfig(R"("io.kubernetes.cri.container-type":"sandbox",)"
                       R"("io.kubernetes.cri.sandbox-name":"web-0",)"
                       R"("io.kubernetes.cri.sandbox-namespace":"default",)"
                       R"("io.kubernetes.cri.sandbox-log-directory":)"
                       R"("/var/log/pods/default_web-0_7c1e3b52-9a0d-4f4e-8f61-2d5b6c3a9e10")"),
      RuntimeKind::kContainerd);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->pod_uid, kCdUid);
  EXPECT_EQ(parsed->pod_name, "web-0");
  EXPECT_TRUE(parsed->is_sandbox);
}

TEST(ParseRuntimeConfigTest, EachKindOfBadInputHasItsError) {
  struct Case {
    const char* what;
    std::string json;
    RuntimeKind kind;
    RuntimeConfigError error;
  };
  const std::string type = R"("io.kubernetes.cri.container-type":"container",)";
  const std::string pod =
      R"("io.kubernetes.cri.sandbox-name":"web-0",)"
      R"("io.kubernetes.cri.sandbox-namespace":"default",)"
      R"("io.kubernetes.cri.sandbox-uid":"7c1e3b52-9a0d-4f4e-8f61-2d5b6c3a9e10")";
  const Case cases[] = {
      {"empty", "", RuntimeKind::kContainerd, RuntimeConfigError::kMalformedJson},
      {"truncated", R"({"ociVersion":"1.1.0","annot)", RuntimeKind::kCrio,
       RuntimeConfigError::kMalformedJson},
      {"array", "[1,2]", RuntimeKind::kContainerd, RuntimeConfigError::kMalformedJson},
      {"annotations not an object", R"({"annotations":[]})", RuntimeKind::kCrio,
       RuntimeConfigError::kMalformedJson},
      {"no annotations", R"({"ociVersion":"1.1.0"})", RuntimeKind::kContainerd,
       RuntimeConfigError::kNotKubernetes},
      {"no container type", containerdConfig(pod), RuntimeKind::kContainerd,
       RuntimeConfigError::kNotKubernetes},
      {"container without a name", containerdConfig(type + pod), RuntimeKind::kContainerd,
       RuntimeConfigError::kMissingField},
      {"container without pod or sandbox",
       containerdConfig(type + R"("io.kubernetes.cri.container-name":"app")"),
       RuntimeKind::kContainerd, RuntimeConfigError::kMissingField},
      {"sandbox without uid",
       containerdConfig(R"("io.kubernetes.cri.container-type":"sandbox",)"
                        R"("io.kubernetes.cri.sandbox-name":"web-0",)"
                        R"("io.kubernetes.cri.sandbox-namespace":"default")"),
       RuntimeKind::kContainerd, RuntimeConfigError::kMissingField},
      {"unknown type",
       containerdConfig(R"("io.kubernetes.cri.container-type":"podsandbox",)" + pod),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"type not a string", containerdConfig(R"("io.kubernetes.cri.container-type":1)"),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"name not a string",
       containerdConfig(type + R"("io.kubernetes.cri.container-name":{"a":1},)" + pod),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"bad uid",
       containerdConfig(type + R"("io.kubernetes.cri.container-name":"app",)"
                               R"("io.kubernetes.cri.sandbox-name":"web-0",)"
                               R"("io.kubernetes.cri.sandbox-namespace":"default",)"
                               R"("io.kubernetes.cri.sandbox-uid":"not-a-uid")"),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"name with an underscore",
       containerdConfig(type + R"("io.kubernetes.cri.container-name":"my_app",)" + pod),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"bad sandbox id",
       containerdConfig(type + R"("io.kubernetes.cri.container-name":"app",)"
                               R"("io.kubernetes.cri.sandbox-id":"xyz")"),
       RuntimeKind::kContainerd, RuntimeConfigError::kBadValue},
      {"crio labels garbled",
       R"({"annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox",)"
       R"("io.kubernetes.cri-o.Labels":"{\"io.kubernetes.pod.name\":"}})",
       RuntimeKind::kCrio, RuntimeConfigError::kBadValue},
      {"crio sandbox without labels",
       R"({"annotations":{"io.kubernetes.cri-o.ContainerType":"sandbox",)"
       R"("io.kubernetes.cri-o.Namespace":"default"}})",
       RuntimeKind::kCrio, RuntimeConfigError::kMissingField},
      // containerd's keys mean nothing in a CRI-O bundle.
      {"containerd keys in crio", containerdConfig(type + pod), RuntimeKind::kCrio,
       RuntimeConfigError::kNotKubernetes},
  };
  for (const Case& c : cases) {
    const auto parsed = parseRuntimeConfig(c.json, c.kind);
    ASSERT_FALSE(parsed.has_value()) << c.what;
    EXPECT_EQ(parsed.error(), c.error) << c.what;
  }
}

TEST(ParseRuntimeConfigTest, ErrorReasonsAreStable) {
  EXPECT_EQ(runtimeConfigErrorReason(RuntimeConfigError::kMalformedJson), "bad_json");
  EXPECT_EQ(runtimeConfigErrorReason(RuntimeConfigError::kNotKubernetes), "not_cri");
  EXPECT_EQ(runtimeConfigErrorReason(RuntimeConfigError::kMissingField), "missing_annotations");
  EXPECT_EQ(runtimeConfigErrorReason(RuntimeConfigError::kBadValue), "bad_annotation");
}

}  // namespace
}  // namespace nodewarden::pods

namespace nodewarden::pods {
namespace {

// The adapter the cgroup collector asks: containers by id, pods through their sandbox.
TEST(RuntimeStateMetadataAdapter, NamesContainersAndPodsFromTheFixtures) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  RuntimeStateMetadata meta(
      {std::filesystem::path(NODEWARDEN_FIXTURES) / "runtime_state" / "containerd"}, errors);
  meta.refresh();
  const std::filesystem::path k8s = std::filesystem::path(NODEWARDEN_FIXTURES) / "runtime_state" /
                                    "containerd/io.containerd.runtime.v2.task/k8s.io";
  int containers = 0, sandboxes = 0;
  std::string uid;
  for (const auto& e : std::filesystem::directory_iterator(k8s)) {
    auto c = meta.container(e.path().filename().string());
    if (!c) continue;  // the garbled fixture
    (c->is_sandbox ? sandboxes : containers)++;
    uid = c->pod_uid;
    EXPECT_EQ(c->namespace_name, "shop");
    if (!c->is_sandbox) {
      EXPECT_FALSE(c->container_name.empty());
      EXPECT_FALSE(c->image.empty());
    }
  }
  EXPECT_EQ(containers, 2);
  EXPECT_EQ(sandboxes, 1);
  auto p = meta.pod(uid);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->namespace_name, "shop");
  EXPECT_EQ(p->pod_name, "checkout-6d8f9c7b5-x2x9q");
  EXPECT_FALSE(meta.pod("00000000-0000-0000-0000-000000000000").has_value());
  EXPECT_FALSE(meta.container(std::string(64, '0')).has_value());
}

// generation() moves when a rescan read a state file (something may be named now), not when it
// found only what it knew; images are told only where a runtime's state directory exists.
TEST(RuntimeStateMetadataAdapter, GenerationMovesOnlyWithNewStateFiles) {
  SelfMetrics self;
  ErrorReporter errors(self.registry());
  RuntimeStateMetadata meta(
      {std::filesystem::path(NODEWARDEN_FIXTURES) / "runtime_state" / "containerd"}, errors);
  EXPECT_EQ(meta.generation(), 0U);
  meta.refresh();
  const auto first = meta.generation();
  EXPECT_GT(first, 0U);
  EXPECT_TRUE(meta.namesImages());
  meta.refresh();
  EXPECT_EQ(meta.generation(), first);

  RuntimeStateMetadata none({"/nonexistent/nodewarden-runtime"}, errors);
  none.refresh();
  EXPECT_FALSE(none.namesImages()) << "no runtime's state here: it never tells an image";
  EXPECT_EQ(none.generation(), 0U);
}

}  // namespace
}  // namespace nodewarden::pods
