// The one Kubernetes client (kubeapi/api_client.h) against the repository's fakes over real
// loopback sockets: the fake kubelet behind its TLS front for the token re-read, the CA file,
// insecure_skip_verify, the timeout and cancellation; the fake API server for a Status body turned
// into an error, the streamed watch and the PATCH of a Node.
#include "kubeapi/api_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/fakes/fake_apiserver.h"
#include "tests/fakes/fake_kubelet.h"
#include "tests/support/loopback_certificate.h"

namespace nodewarden::kubeapi {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeApiServer;
using testing::FakeKubelet;

constexpr auto kWait = 10s;

// The fake kubelet speaks TLS with a self-signed certificate for 127.0.0.1 and wants a token.
class ClientAgainstKubelet : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "nodewarden-kubeapi-XXXXXX");
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto certificate = testing::makeLoopbackCertificate(dir_);
    ASSERT_TRUE(certificate.has_value()) << certificate.error();
    certificate_ = *certificate;
    token_file_ = (dir_ / "token").string();
    writeToken("first-token");
    testing::FakeKubeletOptions options;
    options.token = "first-token";
    options.certificate_file = certificate_.certificate;
    options.key_file = certificate_.key;
    auto fake = FakeKubelet::start(std::move(options));
    ASSERT_TRUE(fake.has_value()) << fake.error();
    fake_ = std::move(*fake);
  }
  void TearDown() override {
    fake_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void writeToken(const std::string& token) const {
    std::ofstream(token_file_, std::ios::trunc) << token << "\n";  // as projected: one line
  }
  ClientOptions options() const {
    ClientOptions o;
    o.url = fake_->url();
    o.token_file = token_file_;
    o.ca_file = certificate_.certificate;
    o.timeout = 20s;
    return o;
  }
  static std::unique_ptr<ApiClient> client(ClientOptions o) {
    auto c = ApiClient::create(std::move(o));
    EXPECT_TRUE(c.has_value()) << c.error();
    return c ? std::move(*c) : nullptr;
  }

  fs::path dir_;
  testing::CertificateFiles certificate_;
  std::string token_file_;
  std::unique_ptr<FakeKubelet> fake_;
};

TEST_F(ClientAgainstKubelet, VerifiesWithTheCaFileAndSendsTheToken) {
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  auto got = c->get("/pods");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->http_status, 200);
  EXPECT_NE(got->body.find("PodList"), std::string::npos) << got->body;
  const auto requests = fake_->requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].authorization, "Bearer first-token");
}

TEST_F(ClientAgainstKubelet, ReadsTheTokenFileAgainForEveryRequest) {
  auto c = client(options());
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->get("/pods").has_value());
  fake_->setToken("rotated-token");  // the old token stops working
  writeToken("rotated-token");       // and the projection rewrote the file
  auto got = c->get("/pods");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->http_status, 200);
  const auto requests = fake_->requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[1].authorization, "Bearer rotated-token");
}

TEST_F(ClientAgainstKubelet, AnUnreadableTokenSendsNothing) {
  auto o = options();
  o.token_file = (dir_ / "no-such-token").string();
  auto c = client(o);
  ASSERT_NE(c, nullptr);
  auto got = c->get("/pods");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kToken);
  EXPECT_NE(got.error().message.find("no-such-token"), std::string::npos) << got.error().message;
  writeToken("two\nlines");
  auto broken = client(options())->get("/pods");
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().kind, ErrorKind::kToken);
  EXPECT_NE(broken.error().message.find("line break"), std::string::npos);
  EXPECT_TRUE(fake_->requests().empty());
}

TEST_F(ClientAgainstKubelet, AServerOutsideTheCaFileIsATlsError) {
  // A CA file that does not hold the kubelet's certificate: a fresh self-signed one of its own.
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  auto unrelated = testing::makeLoopbackCertificate(other);
  ASSERT_TRUE(unrelated.has_value()) << unrelated.error();
  auto o = options();
  o.ca_file = unrelated->certificate;
  auto got = client(o)->get("/pods");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTls) << got.error().message;
  EXPECT_TRUE(fake_->requests().empty());

  o.insecure_skip_verify = true;  // the explicit way round it
  auto skipped = client(o)->get("/pods");
  ASSERT_TRUE(skipped.has_value()) << skipped.error().message;
  EXPECT_EQ(skipped->http_status, 200);
}

TEST_F(ClientAgainstKubelet, ARequestWithoutAnAnswerTimesOut) {
  fake_->hang(5s, 1);
  auto o = options();
  o.timeout = 300ms;
  auto got = client(o)->get("/pods");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kTimeout) << got.error().message;
  EXPECT_NE(got.error().message.find("300 ms"), std::string::npos) << got.error().message;
}

TEST_F(ClientAgainstKubelet, CancelEndsTheRequestInFlightAndEveryLaterOne) {
  fake_->hang(15s, 1);
  auto c = client(options());  // a 20 s timeout: only cancel() can end it sooner
  ASSERT_NE(c, nullptr);
  auto pending = std::async(std::launch::async, [&] { return c->get("/pods"); });
  ASSERT_TRUE(fake_->waitForHangs(1, kWait));
  c->cancel();
  // Far below the hang and the timeout; a client that ignored cancel() would end with kTimeout
  // or a 200 after them.
  ASSERT_EQ(pending.wait_for(kWait), std::future_status::ready);
  auto got = pending.get();
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().kind, ErrorKind::kCancelled) << got.error().message;
  const std::size_t answered = fake_->requests().size();
  auto later = c->get("/pods");
  ASSERT_FALSE(later.has_value());
  EXPECT_EQ(later.error().kind, ErrorKind::kCancelled);
  EXPECT_EQ(fake_->requests().size(), answered) << "a cancelled client sends nothing";
}

class ClientAgainstApiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fake = FakeApiServer::start();
    ASSERT_TRUE(fake.has_value()) << fake.error();
    fake_ = std::move(*fake);
    auto c = ApiClient::create(
        {.url = fake_->url() + "/", .token_file = "", .ca_file = "", .timeout = 20s});
    ASSERT_TRUE(c.has_value()) << c.error();
    client_ = std::move(*c);
  }

  std::unique_ptr<FakeApiServer> fake_;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(ClientAgainstApiServer, AStatusBodyBecomesAnErrorThatNamesIt) {
  fake_->answerJobs(403, 1);
  const std::string path = "/apis/batch/v1/namespaces/batch/jobs/nightly";
  auto got = client_->get(path);
  ASSERT_TRUE(got.has_value()) << got.error().message;  // an answer, not a transport failure
  EXPECT_EQ(got->http_status, 403);
  const ApiError error = statusError("GET", client_->url() + path, *got);
  EXPECT_EQ(error.kind, ErrorKind::kHttpStatus);
  EXPECT_EQ(error.http_status, 403);
  ASSERT_TRUE(error.status.has_value()) << got->body;
  EXPECT_EQ(error.status->reason, "Forbidden");
  EXPECT_EQ(error.status->code, 403);
  EXPECT_FALSE(error.status->message.empty());
  EXPECT_TRUE(error.message.starts_with("GET " + fake_->url() + path + ": HTTP 403: Forbidden: "))
      << error.message;
  EXPECT_NE(error.message.find(error.status->message), std::string::npos) << error.message;
}

TEST(StatusBody, OnlyAStatusIsTakenForOne) {
  EXPECT_FALSE(parseStatus("not json").has_value());
  EXPECT_FALSE(parseStatus(R"({"kind":"Pod","message":"x"})").has_value());
  EXPECT_FALSE(parseStatus(R"({"items":[]})").has_value());
  const auto status = parseStatus(R"({"kind":"Status","reason":"NotFound","code":404})");
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->reason, "NotFound");
  EXPECT_EQ(status->code, 404);
  const ApiError plain =
      statusError("GET", "http://x/pods", {.http_status = 403, .body = "Forbidden (user=a)\n"});
  EXPECT_FALSE(plain.status.has_value());
  EXPECT_EQ(plain.detail, "HTTP 403: Forbidden (user=a)");
}

TEST_F(ClientAgainstApiServer, StreamsAWatchLineByLineUntilTheReaderStops) {
  const std::string rv = fake_->resourceVersion();
  fake_->putPod({{"metadata", {{"uid", "u1"}, {"name", "a"}, {"namespace", "ns"}}}});
  fake_->putPod({{"metadata", {{"uid", "u2"}, {"name", "b"}, {"namespace", "ns"}}}});
  std::vector<std::string> lines;
  bool oversize = false;
  auto got = client_->stream(
      "/api/v1/pods?watch=1&resourceVersion=" + rv, 20s, 1 << 20,
      [&](std::string_view line) {
        lines.emplace_back(line);
        return lines.size() < 2;
      },
      [&] { oversize = true; });
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->http_status, 200);
  EXPECT_TRUE(got->ended_by_reader);
  EXPECT_FALSE(oversize);
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(json::parse(lines[0])["type"], "ADDED");
  EXPECT_EQ(json::parse(lines[1])["object"]["metadata"]["uid"], "u2");
}

TEST_F(ClientAgainstApiServer, ALineOverTheBoundIsDroppedAndTold) {
  const std::string rv = fake_->resourceVersion();  // no history after it: only the raw lines
  fake_->sendLine(std::string(4096, 'x'));
  fake_->sendLine(R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})");
  std::vector<std::string> lines;
  int oversize = 0;
  auto got = client_->stream(
      "/api/v1/pods?watch=1&resourceVersion=" + rv, 20s, 1024,
      [&](std::string_view line) {
        lines.emplace_back(line);
        return false;
      },
      [&] { ++oversize; });
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_TRUE(got->ended_by_reader);
  EXPECT_EQ(oversize, 1);
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_EQ(json::parse(lines[0])["type"], "BOOKMARK");
}

TEST_F(ClientAgainstApiServer, PatchesANode) {
  fake_->putNode({{"metadata", {{"name", "worker-1"}, {"labels", {{"a", "1"}}}}}});
  auto got = client_->patch("/api/v1/nodes/worker-1", "application/merge-patch+json",
                            R"({"metadata":{"labels":{"b":"2"}}})");
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->http_status, 200) << got->body;
  const auto node = fake_->node("worker-1");
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ((*node)["metadata"]["labels"]["b"], "2");
  EXPECT_EQ((*node)["metadata"]["labels"]["a"], "1");
  const auto requests = fake_->requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().method, "PATCH");
  EXPECT_EQ(requests.back().content_type, "application/merge-patch+json");
  // The same handle GETs again afterwards, without the body.
  auto again = client_->get("/api/v1/nodes/worker-1");
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->http_status, 200);
  EXPECT_EQ(fake_->requests().back().method, "GET");
  EXPECT_TRUE(fake_->requests().back().body.empty());
}

TEST(ApiError, ReasonsNameEveryKind) {
  EXPECT_EQ(errorReason(ErrorKind::kToken), "token");
  EXPECT_EQ(errorReason(ErrorKind::kConnect), "connect");
  EXPECT_EQ(errorReason(ErrorKind::kTls), "tls");
  EXPECT_EQ(errorReason(ErrorKind::kTimeout), "timeout");
  EXPECT_EQ(errorReason(ErrorKind::kTooLarge), "too_large");
  EXPECT_EQ(errorReason(ErrorKind::kCancelled), "cancelled");
  EXPECT_EQ(errorReason(ErrorKind::kTransport), "transport");
  EXPECT_EQ(errorReason(ErrorKind::kHttpStatus), "http_status");
}

TEST(ApiClientCreate, RefusesAUrlThatIsNotHttp) {
  auto c = ApiClient::create({.url = "ftp://127.0.0.1", .token_file = "", .ca_file = ""});
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().find("https://"), std::string::npos) << c.error();
}

}  // namespace
}  // namespace nodewarden::kubeapi
