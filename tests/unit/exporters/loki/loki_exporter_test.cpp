// LokiExporter against FakeLoki on 127.0.0.1: how each answer maps onto SendStatus, the headers
// it sends (auth, tenant, encoding), keep-alive, timeouts and cancel.
#include "exporters/loki/loki_exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>

#include "tests/fakes/fake_loki.h"

namespace nodewarden {
namespace {

using namespace std::chrono_literals;
using testing::FakeLoki;
using testing::FakeLokiAnswer;
using testing::FakeLokiOptions;

const Labels kWeb{{"namespace", "shop"}, {"pod", "web-1"}};
const Labels kDb{{"namespace", "shop"}, {"pod", "db-0"}};

LogBatch sampleBatch(int entries = 3) {
  LogBatch batch;
  LogBatch::Stream web{kWeb, {}};
  for (int i = 0; i < entries; ++i) {
    web.entries.push_back(
        {1'700'000'000'000'000'000 + i, "line " + std::to_string(i), {{"pod_uid", "u-1"}}});
  }
  batch.streams.push_back(std::move(web));
  batch.streams.push_back({kDb, {{1'700'000'000'500'000'000, "db up", {}}}});
  return batch;
}

std::unique_ptr<FakeLoki> startFake(FakeLokiOptions options = {}) {
  auto fake = FakeLoki::start(std::move(options));
  EXPECT_TRUE(fake.has_value()) << fake.error();
  return fake ? std::move(*fake) : nullptr;
}

LokiExporterOptions optionsFor(const FakeLoki& fake) {
  LokiExporterOptions options;
  options.url = fake.pushUrl();
  options.timeout = 5s;
  options.no_proxy = "*";
  return options;
}

std::unique_ptr<LokiExporter> exporterFor(LokiExporterOptions options) {
  auto exporter = LokiExporter::create(std::move(options));
  EXPECT_TRUE(exporter.has_value()) << exporter.error();
  return exporter ? std::move(*exporter) : nullptr;
}

// A port with nothing listening: bound, then closed.
int closedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class TempFile {
 public:
  TempFile()
      : path_(
            std::filesystem::temp_directory_path() /
            ("nodewarden-loki-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {}
  ~TempFile() { std::filesystem::remove(path_); }
  void write(const std::string& text) const { std::ofstream(path_, std::ios::trunc) << text; }
  [[nodiscard]] std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

TEST(LokiSendStatus, FollowsLokiConventions) {
  EXPECT_EQ(lokiSendStatus(200), SendStatus::kOk);
  EXPECT_EQ(lokiSendStatus(204), SendStatus::kOk);
  EXPECT_EQ(lokiSendStatus(400), SendStatus::kDrop);
  EXPECT_EQ(lokiSendStatus(401), SendStatus::kDrop);
  EXPECT_EQ(lokiSendStatus(404), SendStatus::kDrop);
  EXPECT_EQ(lokiSendStatus(413), SendStatus::kTooLarge);
  EXPECT_EQ(lokiSendStatus(429), SendStatus::kRetry);
  EXPECT_EQ(lokiSendStatus(500), SendStatus::kRetry);
  EXPECT_EQ(lokiSendStatus(503), SendStatus::kRetry);
  EXPECT_EQ(lokiSendStatus(301), SendStatus::kDrop);
}

TEST(LokiExporterCreate, RejectsOptionsThatCannotWork) {
  LokiExporterOptions options;
  options.url = "loki:3100/loki/api/v1/push";
  EXPECT_NE(LokiExporter::create(options).error().find("url"), std::string::npos);
  options.url = "http://127.0.0.1:1/loki/api/v1/push";
  options.bearer_token = "a";
  options.bearer_token_file = "/x";
  EXPECT_FALSE(LokiExporter::create(options).has_value());
  options.bearer_token_file.clear();
  options.basic_user = "u";
  EXPECT_FALSE(LokiExporter::create(options).has_value());
  options.bearer_token.clear();
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_NE(LokiExporter::create(options).error().find("ca_file"), std::string::npos);
  options.ca_file.clear();
  options.headers = {{"X-Bad\r\nInjected", "1"}};
  EXPECT_FALSE(LokiExporter::create(options).has_value());
  options.headers = {{"X-Ok", "1"}};
  EXPECT_TRUE(LokiExporter::create(options).has_value());
}

TEST(LokiExporter, AcceptedBatchArrivesStreamByStreamInOrder) {
  auto fake = startFake();
  auto exporter = exporterFor(optionsFor(*fake));
  const LogBatch batch = sampleBatch();
  const SendResult result = exporter->send(batch);
  EXPECT_EQ(result.status, SendStatus::kOk) << result.message;
  EXPECT_EQ(result.http_status, 204);
  EXPECT_EQ(fake->entries(kWeb), batch.streams[0].entries);
  EXPECT_EQ(fake->entries(kDb), batch.streams[1].entries);
  const auto requests = fake->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].content_type, "application/x-protobuf");
  EXPECT_EQ(requests[0].content_encoding, "");
  EXPECT_EQ(requests[0].entries, 4u);
  EXPECT_EQ(requests[0].header("User-Agent"), "nodewarden");
  EXPECT_EQ(requests[0].header("X-Scope-OrgID"), "");
  EXPECT_EQ(requests[0].header("Authorization"), "");
}

TEST(LokiExporter, JsonIsSentGzipped) {
  auto fake = startFake();
  auto options = optionsFor(*fake);
  options.encoding = LokiEncoding::kJson;
  auto exporter = exporterFor(options);
  const LogBatch batch = sampleBatch();
  EXPECT_EQ(exporter->send(batch).status, SendStatus::kOk);
  const auto requests = fake->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_EQ(requests[0].content_encoding, "gzip");
  EXPECT_EQ(fake->entries(kWeb), batch.streams[0].entries);
  EXPECT_EQ(fake->entries(kDb), batch.streams[1].entries);
}

TEST(LokiExporter, BadRequestIsDroppedWithThePeersReply) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::withStatus(400, "entry out of order for stream"));
  auto exporter = exporterFor(optionsFor(*fake));
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kDrop);
  EXPECT_EQ(result.http_status, 400);
  EXPECT_EQ(result.message, "entry out of order for stream");
  EXPECT_EQ(fake->entryCount(), 0u);
}

TEST(LokiExporter, ReplyQuotedInMessageIsCutToOneKiB) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::withStatus(400, std::string(5000, 'e')));
  auto exporter = exporterFor(optionsFor(*fake));
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kDrop);
  EXPECT_EQ(result.message, std::string(LokiExporter::kMaxReplyBytes, 'e'));
  // The rest of the reply was read, so the connection is still good for the next batch.
  fake->answer(FakeLokiAnswer::ok());
  EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kOk);
  EXPECT_EQ(fake->connections(), 1u);
}

TEST(LokiExporter, PayloadTooLargeAsksForASplit) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::withStatus(413));
  auto exporter = exporterFor(optionsFor(*fake));
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kTooLarge);
  EXPECT_EQ(result.http_status, 413);
}

TEST(LokiExporter, FakeRefusesRequestsOverItsEntryLimit) {
  FakeLokiOptions fake_options;
  fake_options.max_entries_per_request = 3;
  auto fake = startFake(fake_options);
  auto exporter = exporterFor(optionsFor(*fake));
  EXPECT_EQ(exporter->send(sampleBatch(3)).status, SendStatus::kTooLarge);  // 4 entries
  EXPECT_EQ(exporter->send(sampleBatch(2)).status, SendStatus::kOk);        // 3 entries
  EXPECT_EQ(fake->entryCount(), 3u);
}

TEST(LokiExporter, TooManyRequestsIsRetriedAfterRetryAfter) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::tooManyRequests(7s));
  auto exporter = exporterFor(optionsFor(*fake));
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kRetry);
  EXPECT_EQ(result.http_status, 429);
  EXPECT_EQ(result.retry_after, 7s);
}

TEST(LokiExporter, ServerErrorIsRetriedAndOnlyTheNextRequestFails) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::withStatus(500), 1);
  auto exporter = exporterFor(optionsFor(*fake));
  const SendResult first = exporter->send(sampleBatch());
  EXPECT_EQ(first.status, SendStatus::kRetry);
  EXPECT_EQ(first.http_status, 500);
  EXPECT_EQ(first.retry_after, 0ms);
  EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kOk);
  EXPECT_EQ(fake->entryCount(), 4u);
}

TEST(LokiExporter, NoAnswerTimesOutAsRetry) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::hangFor(10s));
  auto options = optionsFor(*fake);
  options.timeout = 300ms;
  auto exporter = exporterFor(options);
  const auto started = std::chrono::steady_clock::now();
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_EQ(result.status, SendStatus::kRetry);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_NE(result.message.find("imeout"), std::string::npos) << result.message;
}

TEST(LokiExporter, ConnectionRefusedIsRetry) {
  LokiExporterOptions options;
  options.url = "http://127.0.0.1:" + std::to_string(closedPort()) + "/loki/api/v1/push";
  options.timeout = 2s;
  options.no_proxy = "*";
  auto exporter = exporterFor(options);
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kRetry);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_FALSE(result.message.empty());
}

TEST(LokiExporter, TenantHeader) {
  FakeLokiOptions fake_options;
  fake_options.tenant = "team-a";
  auto fake = startFake(fake_options);
  auto options = optionsFor(*fake);
  const SendResult without = exporterFor(options)->send(sampleBatch());
  EXPECT_EQ(without.status, SendStatus::kDrop);
  EXPECT_EQ(without.http_status, 401);
  options.tenant = "team-a";
  const SendResult with = exporterFor(options)->send(sampleBatch());
  EXPECT_EQ(with.status, SendStatus::kOk) << with.message;
  EXPECT_EQ(fake->requests().back().header("X-Scope-OrgID"), "team-a");
}

TEST(LokiExporter, BearerToken) {
  FakeLokiOptions fake_options;
  fake_options.authorization = "Bearer s3cret";
  auto fake = startFake(fake_options);
  auto options = optionsFor(*fake);
  options.bearer_token = "wrong";
  EXPECT_EQ(exporterFor(options)->send(sampleBatch()).status, SendStatus::kDrop);
  options.bearer_token = "s3cret";
  EXPECT_EQ(exporterFor(options)->send(sampleBatch()).status, SendStatus::kOk);
}

TEST(LokiExporter, BearerTokenFileIsReadAgainForEverySend) {
  auto fake = startFake();
  TempFile token;
  token.write("first\n");
  auto options = optionsFor(*fake);
  options.bearer_token_file = token.path();
  auto exporter = exporterFor(options);
  EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kOk);
  token.write("second");
  EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kOk);
  const auto requests = fake->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].header("Authorization"), "Bearer first");
  EXPECT_EQ(requests[1].header("Authorization"), "Bearer second");

  std::filesystem::remove(token.path());  // a projected token briefly missing: retry, not drop
  const SendResult missing = exporter->send(sampleBatch());
  EXPECT_EQ(missing.status, SendStatus::kRetry);
  EXPECT_NE(missing.message.find(token.path()), std::string::npos);
  EXPECT_EQ(fake->requests().size(), 2u);
}

TEST(LokiExporter, BasicAuth) {
  FakeLokiOptions fake_options;
  fake_options.authorization = "Basic dXNlcjpwYXNz";  // base64("user:pass")
  auto fake = startFake(fake_options);
  auto options = optionsFor(*fake);
  options.basic_user = "user";
  options.basic_password = "pass";
  const SendResult result = exporterFor(options)->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kOk) << result.message;
}

TEST(LokiExporter, ExtraHeaders) {
  auto fake = startFake();
  auto options = optionsFor(*fake);
  options.headers = {{"X-Cluster", "eu-1"}, {"X-Team", "platform"}};
  EXPECT_EQ(exporterFor(options)->send(sampleBatch()).status, SendStatus::kOk);
  const auto requests = fake->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].header("x-cluster"), "eu-1");
  EXPECT_EQ(requests[0].header("X-Team"), "platform");
}

TEST(LokiExporter, ReusesOneConnection) {
  auto fake = startFake();
  auto exporter = exporterFor(optionsFor(*fake));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kOk);
  EXPECT_EQ(fake->requests().size(), 4u);
  EXPECT_EQ(fake->connections(), 1u);
}

TEST(LokiExporter, CancelEndsASendInFlight) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::hangFor(20s));
  auto options = optionsFor(*fake);
  options.timeout = 20s;
  auto exporter = exporterFor(options);
  auto pending = std::async(std::launch::async, [&] { return exporter->send(sampleBatch()); });
  ASSERT_TRUE(fake->waitForHangs(1, 10s));  // the request reached the fake, which holds it
  const auto started = std::chrono::steady_clock::now();
  exporter->cancel();
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  const SendResult result = pending.get();
  EXPECT_EQ(result.status, SendStatus::kRetry);
  EXPECT_EQ(result.message, "cancelled");
  EXPECT_EQ(exporter->send(sampleBatch()).message, "cancelled");
}

TEST(FakeLoki, StoppingEndsAHangAtOnce) {
  auto fake = startFake();
  fake->answer(FakeLokiAnswer::hangFor(20s));
  auto options = optionsFor(*fake);
  options.timeout = 20s;
  auto exporter = exporterFor(options);
  auto pending = std::async(std::launch::async, [&] { return exporter->send(sampleBatch()); });
  ASSERT_TRUE(fake->waitForHangs(1, 10s));
  const auto started = std::chrono::steady_clock::now();
  fake.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(pending.get().status, SendStatus::kRetry);
}

TEST(FakeLoki, RecordsGarbageAsBadRequest) {
  auto fake = startFake();
  const auto decoded = testing::decodeLokiPush("application/x-protobuf", "", "not snappy");
  EXPECT_FALSE(decoded.has_value());
  // Through the wire: a JSON exporter whose body the fake cannot read would be a 400; the decoder
  // is shared, so checking it directly is enough here.
  EXPECT_FALSE(testing::decodeLokiPush("application/json", "", "{\"streams\":[{}]}").has_value());
  EXPECT_FALSE(testing::decodeLokiPush("application/json", "gzip", "{}").has_value());
  EXPECT_TRUE(testing::decodeLokiPush("application/json", "", R"({"streams":[]})").has_value());
}

TEST(FakeLoki, WaitsAreBounded) {
  auto fake = startFake();
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(fake->waitForEntries(1, 100ms));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  auto exporter = exporterFor(optionsFor(*fake));
  auto pending = std::async(std::launch::async, [&] { return exporter->send(sampleBatch()); });
  EXPECT_TRUE(fake->waitForEntries(4, 5s));
  EXPECT_EQ(pending.get().status, SendStatus::kOk);
  EXPECT_EQ(fake->streams().size(), 2u);
  fake->clear();
  EXPECT_EQ(fake->entryCount(), 0u);
}

}  // namespace
}  // namespace nodewarden
