// LokiExporter over HTTPS against FakeLoki in TLS mode, on 127.0.0.1: ca_file, the system store,
// insecure_skip_verify, host name checks, and credentials riding the TLS connection. A throwaway
// CA and its server certificates are made once per run with the openssl CLI in a temp dir.
//
// What a reader gets wrong: a failed certificate check answers kRetry, not kDrop. It will not heal
// by resending alone, but it heals without a restart once the server presents a certificate we
// trust (RenewedServerCertificateHealsTheSameExporter), and kDrop would throw away logs that are
// safe in the spool meanwhile. The message names the certificate problem, so the log says why.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "exporters/loki/loki_exporter.h"
#include "tests/fakes/fake_loki.h"

namespace nodewarden {
namespace {

using namespace std::chrono_literals;
using testing::FakeLoki;
using testing::FakeLokiOptions;

const Labels kWeb{{"namespace", "shop"}, {"pod", "web-1"}};

LogBatch sampleBatch() {
  LogBatch batch;
  batch.streams.push_back(
      {kWeb, {{1'700'000'000'000'000'000, "GET /", {}}, {1'700'000'000'000'000'001, "200", {}}}});
  return batch;
}

// The openssl req/x509 settings for a CA and two server certificates it signs: one valid for
// 127.0.0.1 and localhost, one only for a name these tests never connect to.
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
[elsewhere]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:loki.elsewhere.example
authorityKeyIdentifier = keyid
)";

class LokiTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string pattern = (std::filesystem::temp_directory_path() / "nodewarden-tls-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    std::ofstream(dir_ / "openssl.cnf") << kOpensslConfig;
    // EC P-256: a key takes milliseconds, where RSA would take a noticeable part of a second.
    const std::string in = "cd '" + dir_.string() + "' && ";
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc ";
    const std::string sign = " -CA ca.pem -CAkey ca.key -days 2 -extfile openssl.cnf -set_serial ";
    const std::string script =
        in + "openssl req -x509 -config openssl.cnf -extensions ca" + key +
        "-keyout ca.key -out ca.pem -days 2 -subj '/CN=nodewarden test CA' && " +
        "openssl req -new -config openssl.cnf" + key +
        "-keyout server.key -out server.csr -subj '/CN=localhost' && " +
        "openssl x509 -req -in server.csr -out server.pem -extensions loopback" + sign + "2 && " +
        "openssl req -new -config openssl.cnf" + key +
        "-keyout elsewhere.key -out elsewhere.csr -subj '/CN=loki.elsewhere.example' && " +
        "openssl x509 -req -in elsewhere.csr -out elsewhere.pem -extensions elsewhere" + sign + "3";
    const std::string command = "(" + script + ") > '" + (dir_ / "openssl.log").string() + "' 2>&1";
    const int rc = std::system(command.c_str());
    if (rc != 0 || !std::filesystem::exists(dir_ / "elsewhere.pem")) {
      std::ifstream log(dir_ / "openssl.log");
      setup_error_ = "making the test PKI with the openssl CLI failed (" + std::to_string(rc) +
                     "): " + std::string(std::istreambuf_iterator<char>(log), {});
    }
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static std::string path(const char* name) { return (dir_ / name).string(); }

  // A TLS fake presenting server.pem (127.0.0.1, localhost) or elsewhere.pem.
  static std::unique_ptr<FakeLoki> startFake(FakeLokiOptions options = {},
                                             const char* name = "server") {
    options.tls_certificate_file = path((std::string(name) + ".pem").c_str());
    options.tls_key_file = path((std::string(name) + ".key").c_str());
    auto fake = FakeLoki::start(std::move(options));
    EXPECT_TRUE(fake.has_value()) << fake.error();
    return fake ? std::move(*fake) : nullptr;
  }

  static LokiExporterOptions optionsFor(const FakeLoki& fake) {
    LokiExporterOptions options;
    options.url = fake.pushUrl();
    options.timeout = 5s;
    options.no_proxy = "*";
    return options;
  }

  static std::unique_ptr<LokiExporter> exporterFor(LokiExporterOptions options) {
    auto exporter = LokiExporter::create(std::move(options));
    EXPECT_TRUE(exporter.has_value()) << exporter.error();
    return exporter ? std::move(*exporter) : nullptr;
  }

  static inline std::filesystem::path dir_;
  static inline std::string setup_error_;
};

TEST_F(LokiTls, TrustedCaFileDeliversOverOneTlsConnection) {
  auto fake = startFake();
  ASSERT_NE(fake, nullptr);
  ASSERT_TRUE(fake->pushUrl().starts_with("https://127.0.0.1:")) << fake->pushUrl();
  auto options = optionsFor(*fake);
  options.ca_file = path("ca.pem");
  auto exporter = exporterFor(options);
  ASSERT_NE(exporter, nullptr);
  const LogBatch batch = sampleBatch();
  const SendResult first = exporter->send(batch);
  EXPECT_EQ(first.status, SendStatus::kOk) << first.message;
  EXPECT_EQ(first.http_status, 204);
  EXPECT_EQ(fake->entries(kWeb), batch.streams[0].entries);
  const SendResult second = exporter->send(batch);
  EXPECT_EQ(second.status, SendStatus::kOk) << second.message;
  EXPECT_EQ(fake->entryCount(), 4u);
  EXPECT_EQ(fake->connections(), 1u);  // the kept handle reuses the TLS connection
}

TEST_F(LokiTls, SystemStoreRejectsAnUnknownCaAsRetryNamingTheCertificate) {
  auto fake = startFake();
  ASSERT_NE(fake, nullptr);
  auto exporter = exporterFor(optionsFor(*fake));  // no ca_file: the system's CA bundle
  ASSERT_NE(exporter, nullptr);
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kRetry);
  EXPECT_EQ(result.http_status, 0);
  // libcurl: "SSL peer certificate ... was not OK (SSL certificate problem: unable to get local
  // issuer certificate)".
  EXPECT_NE(result.message.find("certificate"), std::string::npos) << result.message;
  EXPECT_NE(result.message.find("issuer"), std::string::npos) << result.message;
  EXPECT_EQ(fake->entryCount(), 0u);
  EXPECT_TRUE(fake->requests().empty());  // nothing was sent before the check failed
}

TEST_F(LokiTls, CertificateForAnotherHostIsRefusedEvenFromTheTrustedCa) {
  auto fake = startFake({}, "elsewhere");
  ASSERT_NE(fake, nullptr);
  auto options = optionsFor(*fake);
  options.ca_file = path("ca.pem");
  auto exporter = exporterFor(options);
  ASSERT_NE(exporter, nullptr);
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kRetry);
  // libcurl: "... no alternative certificate subject name matches target host name '127.0.0.1'".
  EXPECT_NE(result.message.find("certificate"), std::string::npos) << result.message;
  EXPECT_NE(result.message.find("127.0.0.1"), std::string::npos) << result.message;
  EXPECT_TRUE(fake->requests().empty());
}

TEST_F(LokiTls, InsecureSkipVerifyNeedsNoCaAndIgnoresTheHostName) {
  for (const char* certificate : {"server", "elsewhere"}) {
    SCOPED_TRACE(certificate);
    auto fake = startFake({}, certificate);
    ASSERT_NE(fake, nullptr);
    auto options = optionsFor(*fake);
    options.insecure_skip_verify = true;
    auto exporter = exporterFor(options);
    ASSERT_NE(exporter, nullptr);
    const SendResult result = exporter->send(sampleBatch());
    EXPECT_EQ(result.status, SendStatus::kOk) << result.message;
    EXPECT_EQ(fake->entryCount(), 2u);
  }
}

TEST_F(LokiTls, MissingCaFileFailsAtCreateNamingTheOption) {
  LokiExporterOptions options;
  options.url = "https://127.0.0.1:1/loki/api/v1/push";
  options.ca_file = path("no-such-ca.pem");
  const auto exporter = LokiExporter::create(options);
  ASSERT_FALSE(exporter.has_value());
  EXPECT_NE(exporter.error().find("ca_file"), std::string::npos) << exporter.error();
  EXPECT_NE(exporter.error().find("no-such-ca.pem"), std::string::npos) << exporter.error();
}

TEST_F(LokiTls, BearerTokenAndTenantArriveOverTls) {
  FakeLokiOptions fake_options;
  fake_options.tenant = "team-a";
  fake_options.authorization = "Bearer s3cret";
  auto fake = startFake(fake_options);
  ASSERT_NE(fake, nullptr);
  auto options = optionsFor(*fake);
  options.ca_file = path("ca.pem");
  options.tenant = "team-a";
  options.bearer_token = "s3cret";
  auto exporter = exporterFor(options);
  ASSERT_NE(exporter, nullptr);
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kOk) << result.message;
  const auto requests = fake->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].header("X-Scope-OrgID"), "team-a");
  EXPECT_EQ(requests[0].header("Authorization"), "Bearer s3cret");
  EXPECT_EQ(fake->entryCount(), 2u);
}

// Why a verification failure is kRetry: the same exporter succeeds once the server presents a
// certificate it trusts, with no restart and nothing lost in between.
TEST_F(LokiTls, RenewedServerCertificateHealsTheSameExporter) {
  auto wrong = startFake({}, "elsewhere");
  ASSERT_NE(wrong, nullptr);
  const int port = wrong->port();
  auto options = optionsFor(*wrong);
  options.ca_file = path("ca.pem");
  auto exporter = exporterFor(options);
  ASSERT_NE(exporter, nullptr);
  EXPECT_EQ(exporter->send(sampleBatch()).status, SendStatus::kRetry);
  wrong.reset();
  FakeLokiOptions same_port;
  same_port.port = port;
  auto renewed = startFake(same_port);
  ASSERT_NE(renewed, nullptr);
  const SendResult result = exporter->send(sampleBatch());
  EXPECT_EQ(result.status, SendStatus::kOk) << result.message;
  EXPECT_EQ(renewed->entryCount(), 2u);
}

TEST_F(LokiTls, FakeRefusesACertificateItCannotRead) {
  FakeLokiOptions options;
  options.tls_certificate_file = path("no-such-cert.pem");
  options.tls_key_file = path("server.key");
  const auto fake = FakeLoki::start(options);
  ASSERT_FALSE(fake.has_value());
  EXPECT_NE(fake.error().find("no-such-cert.pem"), std::string::npos) << fake.error();
}

}  // namespace
}  // namespace nodewarden
