// Tests for remote write: the exposition parser and WriteRequestEncoder (decoded back with the
// generated prompb classes after a snappy round trip), the HTTP status rules, and MetricSender's
// handling of each answer against a scripted exporter over a real metric spool.
#include <gtest/gtest.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <snappy.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include "exporters/remote_write/remote.pb.h"
#include "exporters/remote_write/remote_write_exporter.h"
#include "exporters/remote_write/write_request_encoder.h"
#include "pipeline/metric_sender.h"
#include "pipeline/spool.h"
#include "tests/fakes/fake_loki.h"

namespace nodewarden {
namespace {

using std::chrono::milliseconds;

prometheus::WriteRequest decode(const MetricWriteBatch& batch) {
  // Through the wire format: the exporter's snappy block, uncompressed again.
  const std::string wire = snappyBlock(batch.request);
  std::string raw;
  EXPECT_TRUE(snappy::Uncompress(wire.data(), wire.size(), &raw));
  prometheus::WriteRequest request;
  EXPECT_TRUE(request.ParseFromString(raw));
  return request;
}

std::vector<MetricWriteBatch> encode(std::string_view text, std::size_t max_samples,
                                     std::int64_t ts, std::size_t chunk = 7) {
  WriteRequestEncoder encoder(max_samples);
  encoder.begin(ts);
  // In small chunks: lines cut across chunks must come out whole.
  for (std::size_t i = 0; i < text.size(); i += chunk) encoder.add(text.substr(i, chunk));
  return encoder.finish();
}

TEST(ExpositionLine, ParsesNamesLabelsEscapesAndSpecialValues) {
  ExpositionSample s;
  ASSERT_TRUE(parseExpositionLine(
      R"(container_cpu_usage_seconds_total{namespace="a",pod="p\"q",image="x\\y\nz",} 12.5)", s));
  EXPECT_EQ(s.name, "container_cpu_usage_seconds_total");
  ASSERT_EQ(s.labels.size(), 3U);
  EXPECT_EQ(s.labels[1].second, "p\"q");
  EXPECT_EQ(s.labels[2].second, "x\\y\nz");
  EXPECT_DOUBLE_EQ(s.value, 12.5);
  ASSERT_TRUE(parseExpositionLine("up 1 1700000000000", s));
  EXPECT_TRUE(s.labels.empty());
  EXPECT_DOUBLE_EQ(s.value, 1);
  ASSERT_TRUE(parseExpositionLine("a +Inf", s));
  EXPECT_TRUE(std::isinf(s.value) && s.value > 0);
  ASSERT_TRUE(parseExpositionLine("a -Inf", s));
  EXPECT_TRUE(std::isinf(s.value) && s.value < 0);
  ASSERT_TRUE(parseExpositionLine("a NaN", s));
  EXPECT_TRUE(std::isnan(s.value));
  ASSERT_TRUE(parseExpositionLine("a 1e-3", s));
  EXPECT_DOUBLE_EQ(s.value, 0.001);
  for (const char* bad : {"", "1abc 2", "a", "a{b=\"c\" 1", "a{b=c} 1", "a{b=\"c\"}1", "a x",
                          "a{b=\"c\\", "a 1.2.3"}) {
    EXPECT_FALSE(parseExpositionLine(bad, s)) << bad;
  }
}

TEST(WriteRequestEncoder, SortsLabelsWithNameAndStampsTheCycleTime) {
  const std::string text =
      "# HELP container_memory_working_set_bytes Current working set.\n"
      "# TYPE container_memory_working_set_bytes gauge\n"
      "container_memory_working_set_bytes{pod=\"web-0\",namespace=\"shop\",container=\"app\","
      "Zone=\"eu\",image=\"\"} 1048576\n"
      "\n"
      "nodewarden_collection_cycles_total 42\n";
  const auto batches = encode(text, 2000, 1'700'000'000'123);
  ASSERT_EQ(batches.size(), 1U);
  EXPECT_EQ(batches[0].samples, 2U);
  EXPECT_EQ(batches[0].timestamp_ms, 1'700'000'000'123);
  const auto req = decode(batches[0]);
  ASSERT_EQ(req.timeseries_size(), 2);
  const auto& ts = req.timeseries(0);
  std::vector<std::string> names;
  for (const auto& l : ts.labels()) names.push_back(l.name());
  // Byte order: capitals sort before "__name__"; the empty image label is left out.
  EXPECT_EQ(names, (std::vector<std::string>{"Zone", "__name__", "container", "namespace", "pod"}));
  EXPECT_EQ(ts.labels(1).value(), "container_memory_working_set_bytes");
  EXPECT_EQ(ts.labels(4).value(), "web-0");
  ASSERT_EQ(ts.samples_size(), 1);
  EXPECT_DOUBLE_EQ(ts.samples(0).value(), 1048576);
  EXPECT_EQ(ts.samples(0).timestamp(), 1'700'000'000'123);
  const auto& self = req.timeseries(1);
  ASSERT_EQ(self.labels_size(), 1);
  EXPECT_EQ(self.labels(0).value(), "nodewarden_collection_cycles_total");
  EXPECT_DOUBLE_EQ(self.samples(0).value(), 42);
}

TEST(WriteRequestEncoder, SplitsByMaxSamplesInOrder) {
  std::string text;
  for (int i = 0; i < 25; ++i)
    text += "series_total{i=\"" + std::to_string(i) + "\"} " + std::to_string(i) + "\n";
  const auto batches = encode(text, 10, 5000, 64);
  ASSERT_EQ(batches.size(), 3U);
  int next = 0;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const auto req = decode(batches[b]);
    EXPECT_EQ(batches[b].samples, static_cast<std::uint64_t>(req.timeseries_size()));
    EXPECT_EQ(req.timeseries_size(), b < 2 ? 10 : 5);
    for (const auto& ts : req.timeseries()) {
      EXPECT_EQ(ts.labels(1).value(), std::to_string(next));
      EXPECT_DOUBLE_EQ(ts.samples(0).value(), next);
      ++next;
    }
  }
  EXPECT_EQ(next, 25);
}

TEST(WriteRequestEncoder, CountsUnparsedLinesAndKeepsTheRest) {
  const auto text = std::string("good 1\nbad{ 2\nalso_good 3");  // no final newline
  WriteRequestEncoder encoder(100);
  encoder.begin(1);
  encoder.add(text);
  const auto batches = encoder.finish();
  EXPECT_EQ(encoder.skippedLines(), 1U);
  EXPECT_EQ(encoder.firstSkipped(), "bad{ 2");
  ASSERT_EQ(batches.size(), 1U);
  EXPECT_EQ(batches[0].samples, 2U);
  // An empty cycle makes no request.
  encoder.begin(2);
  EXPECT_TRUE(encoder.finish().empty());
}

TEST(WriteRequestEncoder, EncodesPrometheusCppSelfMetrics) {
  // The agent's own metrics come from prometheus-cpp's serializer: they must all come through.
  auto registry = std::make_shared<prometheus::Registry>();
  auto& c = prometheus::BuildCounter().Name("nodewarden_x_total").Help("x").Register(*registry);
  c.Add({{"reason", "a"}}).Increment(3);
  c.Add({{"reason", "b"}}).Increment(4);
  const std::string text = prometheus::TextSerializer().Serialize(registry->Collect());
  WriteRequestEncoder encoder(100);
  encoder.begin(9);
  encoder.add(text);
  const auto batches = encoder.finish();
  EXPECT_EQ(encoder.skippedLines(), 0U) << encoder.firstSkipped();
  ASSERT_EQ(batches.size(), 1U);
  const auto req = decode(batches[0]);
  ASSERT_EQ(req.timeseries_size(), 2);
  EXPECT_DOUBLE_EQ(req.timeseries(0).samples(0).value() + req.timeseries(1).samples(0).value(), 7);
}

TEST(WriteRequestEncoder, TakesNaNAndInfinityInAnyCaseAsAScrapeDoes) {
  // prometheus-cpp writes NaN as "Nan"; Prometheus scrapes that line from /metrics (Go's
  // ParseFloat ignores case), so remote write must send it too rather than skip it (from_chars,
  // the parser's fallback, ignores case as well).
  prometheus::Registry registry;
  prometheus::BuildGauge()
      .Name("nodewarden_x")
      .Help("x")
      .Register(registry)
      .Add({})
      .Set(std::numeric_limits<double>::quiet_NaN());
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  WriteRequestEncoder encoder(100);
  encoder.begin(9);
  encoder.add(text);
  const auto batches = encoder.finish();
  EXPECT_EQ(encoder.skippedLines(), 0U) << encoder.firstSkipped();
  ASSERT_EQ(batches.size(), 1U) << text;
  EXPECT_TRUE(std::isnan(decode(batches[0]).timeseries(0).samples(0).value()));

  ExpositionSample s;
  for (const char* nan : {"a nan", "a NAN", "a Nan"}) {
    ASSERT_TRUE(parseExpositionLine(nan, s)) << nan;
    EXPECT_TRUE(std::isnan(s.value)) << nan;
  }
  for (const char* inf : {"a inf", "a +inf", "a Infinity", "a +INFINITY"}) {
    ASSERT_TRUE(parseExpositionLine(inf, s)) << inf;
    EXPECT_TRUE(std::isinf(s.value) && s.value > 0) << inf;
  }
  ASSERT_TRUE(parseExpositionLine("a -infinity", s));
  EXPECT_TRUE(std::isinf(s.value) && s.value < 0);
  for (const char* bad : {"a na", "a infinit", "a ++inf"}) {
    EXPECT_FALSE(parseExpositionLine(bad, s)) << bad;
  }
}

TEST(RemoteWriteStatus, FollowsPrometheusQueueManager) {
  EXPECT_EQ(remoteWriteSendStatus(200), SendStatus::kOk);
  EXPECT_EQ(remoteWriteSendStatus(204), SendStatus::kOk);
  EXPECT_EQ(remoteWriteSendStatus(429), SendStatus::kRetry);
  EXPECT_EQ(remoteWriteSendStatus(500), SendStatus::kRetry);
  EXPECT_EQ(remoteWriteSendStatus(503), SendStatus::kRetry);
  EXPECT_EQ(remoteWriteSendStatus(400), SendStatus::kDrop);
  EXPECT_EQ(remoteWriteSendStatus(404), SendStatus::kDrop);
  EXPECT_EQ(remoteWriteSendStatus(413), SendStatus::kDrop);
}

TEST(RemoteWriteExporter, RejectsUnusableOptions) {
  RemoteWriteOptions o;
  o.http.url = "ftp://x";
  EXPECT_FALSE(RemoteWriteExporter::create(o).has_value());
  o.http.url = "http://127.0.0.1:1/api/v1/write";
  o.headers = {{"Bad:Name", "v"}};
  EXPECT_FALSE(RemoteWriteExporter::create(o).has_value());
  o.headers.clear();
  o.http.ca_file = "/nonexistent/ca.pem";
  EXPECT_FALSE(RemoteWriteExporter::create(o).has_value());
  o.http.ca_file.clear();
  auto ok = RemoteWriteExporter::create(o);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  // Nobody listens on port 1: a connection error is RETRY, never DROP.
  MetricWriteBatch batch;
  batch.samples = 1;
  const auto r = (*ok)->send(batch);
  EXPECT_EQ(r.status, SendStatus::kRetry);
  EXPECT_EQ(r.http_status, 0);
}

// Answers from a script, recording the samples of every request it saw.
class ScriptedExporter final : public MetricExporter {
 public:
  [[nodiscard]] std::string_view name() const override { return "scripted"; }
  SendResult send(const MetricWriteBatch& batch) override {
    std::lock_guard lock(mu_);
    seen_.push_back(batch.timestamp_ms);
    if (answers_.empty()) return {SendStatus::kOk, 204, "", {}};
    const int status = answers_.front();
    answers_.pop_front();
    const SendStatus s = status == 0 ? SendStatus::kRetry : remoteWriteSendStatus(status);
    return {s, status, "scripted", {}};
  }
  void script(std::deque<int> answers) {
    std::lock_guard lock(mu_);
    answers_ = std::move(answers);
  }
  std::vector<std::int64_t> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::deque<int> answers_;
  std::vector<std::int64_t> seen_;
};

class MetricSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nodewarden-rw-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    SpoolOptions o;
    o.dir = dir_;
    o.fsync = false;
    spool_ = MetricSpool::open(o, errors_).value();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void append(std::int64_t ts, std::uint64_t samples) {
    MetricWriteBatch b;
    b.timestamp_ms = ts;
    b.samples = samples;
    b.request = "r" + std::to_string(ts);
    ASSERT_TRUE(spool_->append(std::move(b)).has_value());
  }
  double value(const std::string& name, const std::string& reason = "") {
    for (const auto& f : registry_.Collect()) {
      if (f.name != name) continue;
      for (const auto& m : f.metric) {
        const bool match =
            reason.empty() || std::any_of(m.label.begin(), m.label.end(), [&](auto& l) {
              return l.name == "reason" && l.value == reason;
            });
        if (match)
          return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
    return -1;
  }
  bool waitEmpty() {
    for (int i = 0; i < 500 && spool_->batches() > 0; ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    return spool_->batches() == 0;
  }

  std::filesystem::path dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::unique_ptr<MetricSpool> spool_;
  ScriptedExporter exporter_;
};

TEST_F(MetricSenderTest, RetriesInOrderAndDropsOther4xx) {
  // Request 1: 503, 429, no answer, then OK; request 2: 400 (dropped); request 3: OK.
  exporter_.script({503, 429, 0, 204, 400});
  append(1, 10);
  append(2, 20);
  append(3, 30);
  MetricSender sender({milliseconds(1), milliseconds(4), milliseconds(20)}, *spool_, exporter_,
                      registry_, errors_);
  sender.start();
  ASSERT_TRUE(waitEmpty());
  sender.stop();
  EXPECT_EQ(exporter_.seen(), (std::vector<std::int64_t>{1, 1, 1, 1, 2, 3}));
  EXPECT_EQ(value("nodewarden_remote_write_samples_sent_total"), 40);
  EXPECT_EQ(value("nodewarden_remote_write_requests_sent_total"), 2);
  EXPECT_EQ(value("nodewarden_remote_write_requests_retried_total"), 3);
  EXPECT_EQ(value("nodewarden_remote_write_requests_failed_total"), 4);
  EXPECT_EQ(value("nodewarden_remote_write_samples_dropped_total", "http_4xx"), 20);
  EXPECT_EQ(errors_.count("remote_write", "http_400"), 1);
  EXPECT_GT(value("nodewarden_remote_write_last_success_timestamp_seconds"), 1e9);
}

TEST_F(MetricSenderTest, StopKeepsTheUnsentRequestForTheNextStart) {
  exporter_.script(std::deque<int>(1000, 503));
  append(7, 5);
  {
    MetricSender sender({milliseconds(1), milliseconds(2), milliseconds(20)}, *spool_, exporter_,
                        registry_, errors_);
    sender.start();
    for (int i = 0; i < 500 && exporter_.seen().size() < 3; ++i) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    sender.stop();
  }
  EXPECT_GE(exporter_.seen().size(), 3U);
  // Reopened as after a restart: the request is still there, and goes once the peer is back.
  spool_.reset();
  SpoolOptions o;
  o.dir = dir_;
  o.fsync = false;
  spool_ = MetricSpool::open(o, errors_).value();
  ASSERT_EQ(spool_->batches(), 1U);
  const auto front = spool_->front();
  ASSERT_NE(front, nullptr);
  EXPECT_EQ(front->timestamp_ms, 7);
  EXPECT_EQ(front->samples, 5U);
  EXPECT_EQ(front->request, "r7");
  exporter_.script({});
  MetricSender sender({milliseconds(1), milliseconds(2), milliseconds(20)}, *spool_, exporter_,
                      registry_, errors_);
  sender.start();
  ASSERT_TRUE(waitEmpty());
  sender.stop();
}

TEST(MetricWriteBatchCodec, RoundTripsAndRejectsShortPayloads) {
  MetricWriteBatch b;
  b.request = std::string("\0\1binary", 8);
  b.samples = 123;
  b.timestamp_ms = -5;
  const auto back = decodeMetricWriteBatch(encodeMetricWriteBatch(b));
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, b);
  EXPECT_FALSE(decodeMetricWriteBatch("NWMB1234").has_value());
  EXPECT_FALSE(decodeMetricWriteBatch(std::string(40, 'x')).has_value());
}

// Over HTTP against the fake receiver: the spec's headers, and each answer's status.
TEST(RemoteWriteExporter, SendsTheSpecHeadersAndMapsAnswers) {
  auto fake = testing::FakeLoki::start({});
  ASSERT_TRUE(fake.has_value()) << fake.error();
  RemoteWriteOptions o;
  o.http.url = (*fake)->remoteWriteUrl();
  o.http.user_agent = "nodewarden/test";
  o.headers = {{"X-Scope-OrgID", "team-a"}};
  auto exporter = RemoteWriteExporter::create(o);
  ASSERT_TRUE(exporter.has_value()) << exporter.error();
  const auto batches = encode("a_total{x=\"1\"} 1\nb 2\n", 100, 1000);
  ASSERT_EQ(batches.size(), 1U);

  auto r = (*exporter)->send(batches[0]);
  EXPECT_EQ(r.status, SendStatus::kOk) << r.message;
  auto requests = (*fake)->requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].status, 204) << requests[0].error;
  EXPECT_EQ(requests[0].entries, 2U);
  EXPECT_EQ(requests[0].header("User-Agent"), "nodewarden/test");
  EXPECT_EQ(requests[0].header("X-Scope-OrgID"), "team-a");

  (*fake)->answer(testing::FakeLokiAnswer::tooManyRequests(std::chrono::seconds(3)), 1);
  r = (*exporter)->send(batches[0]);
  EXPECT_EQ(r.status, SendStatus::kRetry);
  EXPECT_EQ(r.http_status, 429);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(3));
  (*fake)->answer(testing::FakeLokiAnswer::withStatus(503), 1);
  EXPECT_EQ((*exporter)->send(batches[0]).status, SendStatus::kRetry);
  (*fake)->answer(testing::FakeLokiAnswer::withStatus(400), 1);
  r = (*exporter)->send(batches[0]);
  EXPECT_EQ(r.status, SendStatus::kDrop);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ((*exporter)->send(batches[0]).status, SendStatus::kOk) << "answers are back to 204";
}

}  // namespace
}  // namespace nodewarden
