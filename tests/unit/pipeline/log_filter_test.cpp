// FilterStage: each action (drop a stream, drop matching lines, keep only matching lines) on the
// streams its selector picks (namespace, container, stream, pod labels through the metadata), the
// per-rule counters of lines and bytes, the first dropping rule counting, and the per-stream
// decision following the metadata when a pod's labels become known.
#include "pipeline/log_filter.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nodewarden {
namespace {

class Capture final : public LogSink {
 public:
  bool accept(const Labels&, const LogEntry& entry, const LogCheckpoint&) override {
    lines.push_back(entry.line);
    return true;
  }
  [[nodiscard]] bool hasRoom() const override { return true; }
  std::vector<std::string> lines;
};

// Pods by uid, with a generation a test moves when it changes them.
class Metadata final : public ContainerMetadata {
 public:
  void refresh() override {}
  std::optional<ContainerIdentity> container(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<PodIdentity> pod(std::string_view uid) const override {
    const auto it = pods.find(std::string(uid));
    if (it == pods.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] std::uint64_t generation() const override { return gen; }
  std::map<std::string, PodIdentity> pods;
  std::uint64_t gen = 1;
};

double value(prometheus::Registry& registry, const std::string& family_name,
             const std::string& rule) {
  for (const auto& family : registry.Collect()) {
    if (family.name != family_name) continue;
    for (const auto& m : family.metric) {
      if (m.label.size() == 1 && m.label[0].value == rule) return m.counter.value;
    }
  }
  return -1;
}

LogFilterRule rule(std::string name, LogSelector match, LogFilterRule::Action action,
                   std::string pattern = "") {
  return {std::move(name), std::move(match), action, std::move(pattern)};
}

LogSelector namespaces(std::vector<std::string> values) {
  LogSelector s;
  s.namespaces = std::move(values);
  return s;
}

Labels stream(const std::string& ns, const std::string& container = "app",
              const std::string& out = "stdout") {
  return {{"container", container}, {"namespace", ns}, {"pod", "p"}, {"stream", out}};
}

struct Fixture {
  explicit Fixture(const std::vector<LogFilterRule>& rules, const ContainerMetadata* md = nullptr) {
    auto s = FilterStage::create(rules, md, registry);
    EXPECT_TRUE(s.has_value()) << s.error();
    stage = std::move(*s);
    stage->setNext(sink);
  }
  void send(const Labels& labels, const std::string& line, std::uint64_t id,
            const std::string& uid = "uid-1") {
    LogEntry entry{1, line, {{"pod_uid", uid}}};
    EXPECT_TRUE(stage->acceptStream(labels, entry, LogCheckpoint{}, id));
  }
  prometheus::Registry registry;
  Capture sink;
  std::unique_ptr<FilterStage> stage;
};

using Action = LogFilterRule::Action;

TEST(FilterStage, DropLinesOfOneNamespaceOnly) {
  Fixture f({rule("team-a-debug", namespaces({"team-a"}), Action::kDropLines, R"(\bDEBUG\b)")});
  f.send(stream("team-a"), "DEBUG cache miss", 1);
  f.send(stream("team-a"), "INFO served", 1);
  f.send(stream("team-b"), "DEBUG cache miss", 2);
  f.send(stream("team-a"), "DEBUGGING is not DEBUG-level? it is", 1);
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"INFO served", "DEBUG cache miss"}));
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "team-a-debug"), 2);
  EXPECT_EQ(value(f.registry, "nodewarden_log_bytes_filtered_total", "team-a-debug"), 16 + 35);
}

TEST(FilterStage, KeepLinesDropsTheOthers) {
  LogSelector s;
  s.containers = {"worker"};
  Fixture f({rule("errors-only", s, Action::kKeepLines, "ERROR|WARN")});
  f.send(stream("x", "worker"), "INFO tick", 1);
  f.send(stream("x", "worker"), "ERROR boom", 1);
  f.send(stream("x", "web"), "INFO tick", 2);
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"ERROR boom", "INFO tick"}));
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "errors-only"), 1);
}

TEST(FilterStage, DropStreamByContainerAndStream) {
  LogSelector s;
  s.containers = {"istio-proxy"};
  s.streams = {"stdout"};
  Fixture f({rule("mesh", s, Action::kDropStream)});
  f.send(stream("x", "istio-proxy"), "GET / 200", 1);
  f.send(stream("x", "istio-proxy", "stderr"), "warning: upstream reset", 2);
  f.send(stream("x", "app"), "hello", 3);
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"warning: upstream reset", "hello"}));
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "mesh"), 1);
  EXPECT_EQ(value(f.registry, "nodewarden_log_bytes_filtered_total", "mesh"), 9);
}

TEST(FilterStage, TheFirstRuleThatDropsALineCountsIt) {
  Fixture f({rule("no-debug", {}, Action::kDropLines, "DEBUG"),
             rule("no-trace-or-debug", {}, Action::kDropLines, "TRACE|DEBUG"),
             rule("errors-only", namespaces({"quiet"}), Action::kKeepLines, "ERROR")});
  f.send(stream("quiet"), "DEBUG a", 1);
  f.send(stream("quiet"), "TRACE b", 1);
  f.send(stream("quiet"), "INFO c", 1);
  f.send(stream("quiet"), "ERROR d", 1);
  f.send(stream("loud"), "INFO e", 2);
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"ERROR d", "INFO e"}));
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "no-debug"), 1);
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "no-trace-or-debug"), 1);
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "errors-only"), 1);
}

TEST(FilterStage, PodLabelsFromTheMetadataOnceItKnowsThePod) {
  Metadata md;
  LogSelector s;
  s.pod_labels = {{"team", "noisy"}};
  Fixture f({rule("noisy-team", s, Action::kDropStream)}, &md);
  f.send(stream("x"), "before the pod is known", 1);
  PodIdentity pod;
  pod.labels = {{"team", "noisy"}};
  md.pods["uid-1"] = pod;
  ++md.gen;
  f.send(stream("x"), "after", 1);
  f.send(stream("x"), "another pod", 2, "uid-2");
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"before the pod is known", "another pod"}));
  EXPECT_EQ(value(f.registry, "nodewarden_log_lines_filtered_total", "noisy-team"), 1);
}

TEST(FilterStage, UnnumberedEntriesAreDecidedPerLine) {
  Fixture f({rule("no-debug", {}, Action::kDropLines, "DEBUG")});
  LogEntry entry{1, "DEBUG x", {}};
  EXPECT_TRUE(f.stage->accept({{"unit", "kubelet.service"}}, entry, LogCheckpoint{}));
  entry.line = "INFO y";
  EXPECT_TRUE(f.stage->accept({{"unit", "kubelet.service"}}, entry, LogCheckpoint{}));
  EXPECT_EQ(f.sink.lines, (std::vector<std::string>{"INFO y"}));
}

TEST(FilterStage, RejectsABadPattern) {
  prometheus::Registry registry;
  const auto s =
      FilterStage::create({rule("bad", {}, Action::kDropLines, "a(")}, nullptr, registry);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().find("bad"), std::string::npos);
}

}  // namespace
}  // namespace nodewarden
