// Tests for TLS on the agent's listener (agent/http_server, agent/tls_context) with throwaway
// certificates from the openssl command line: the handshake and a request, a certificate rotated on
// disk served to later connections, a bad new pair refused while the old one stays in service,
// plain HTTP to the TLS port failing cleanly, and client-certificate verification.
//
// What a reader gets wrong: the reload interval is 0 here, so every new connection looks at the
// files' stamps; rotation is "write new files, rename them over the old ones" as a secret volume
// or cert-manager does it.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/http_server.h"
#include "pipeline/self_metrics.h"
#include "tests/support/loopback_certificate.h"
#include "tests/unit/agent/raw_http_client.h"

namespace nodewarden {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::RawClient;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class HttpServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nodewarden-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto made = testing::makeLoopbackCertificate(dir_ / "a");
    ASSERT_TRUE(made.has_value()) << made.error();
    fs::create_directories(dir_ / "live");
    fs::copy_file(dir_ / "a/cert.pem", cert());
    fs::copy_file(dir_ / "a/key.pem", key());
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  void start(HttpServerOptions o = {}) {
    o.tls.cert_file = cert().string();
    o.tls.key_file = key().string();
    o.tls_reload_interval = 0ms;
    o.errors = &errors_;
    auto s = HttpServer::start("127.0.0.1:0", o);
    ASSERT_TRUE(s.has_value()) << s.error();
    server_ = std::move(*s);
    server_->handle("/healthz", [](const HttpRequest&) {
      return HttpResponse{200, "text/plain", "ok\n", false};
    });
  }
  // A TLS client trusting `ca` (a self-signed certificate is its own CA).
  RawClient tlsClient(const fs::path& ca, std::string* error = nullptr) {
    RawClient c(server_->port());
    auto e = c.startTls(ca.string());
    if (error != nullptr && e) *error = *e;
    return c;
  }
  fs::path cert() const { return dir_ / "live/cert.pem"; }
  fs::path key() const { return dir_ / "live/key.pem"; }
  // Puts a file in place the way a rotation does: a new file renamed over the old one.
  static void replace(const fs::path& from, const fs::path& to) {
    fs::copy_file(from, to.string() + ".new", fs::copy_options::overwrite_existing);
    fs::rename(to.string() + ".new", to);
  }

  fs::path dir_;
  prometheus::Registry registry_;
  ErrorReporter errors_{registry_};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTlsTest, HandshakeAndRequestWithTheConfiguredCertificate) {
  start();
  std::string error;
  RawClient c = tlsClient(cert(), &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(c.peerCertificatePem(), slurp(dir_ / "a/cert.pem"));
  auto r = c.request("GET", "/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
}

// A TLS 1.2 client could renegotiate at will, each a full handshake on the io thread outside the
// handshake deadline.
TEST_F(HttpServerTlsTest, ATls12ClientCannotRenegotiate) {
  start();
  RawClient c(server_->port());
  ASSERT_FALSE(c.startTls(cert().string(), {}, {}, TLS1_2_VERSION).has_value());
  ASSERT_EQ(SSL_version(c.ssl()), TLS1_2_VERSION);
  auto r = c.request("GET", "/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(SSL_renegotiate(c.ssl()), 1);
  EXPECT_NE(SSL_do_handshake(c.ssl()), 1) << "the server renegotiated";
  // The listener goes on serving.
  RawClient next = tlsClient(cert());
  auto h = next.request("GET", "/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST_F(HttpServerTlsTest, ARotatedCertificateIsServedOnLaterConnections) {
  start();
  RawClient before = tlsClient(cert());
  ASSERT_EQ(before.peerCertificatePem(), slurp(dir_ / "a/cert.pem"));
  auto made = testing::makeLoopbackCertificate(dir_ / "b");
  ASSERT_TRUE(made.has_value()) << made.error();
  replace(dir_ / "b/cert.pem", cert());
  replace(dir_ / "b/key.pem", key());
  std::string error;
  RawClient after = tlsClient(dir_ / "b/cert.pem", &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(after.peerCertificatePem(), slurp(dir_ / "b/cert.pem"));
  auto r = after.request("GET", "/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // The connection made before keeps working on the old certificate.
  auto old = before.request("GET", "/healthz");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->status, 200);
  EXPECT_EQ(errors_.count("http", "tls_reload"), 0);
}

TEST_F(HttpServerTlsTest, ABadNewPairIsCountedAndTheOldOneKeptUntilAGoodPairArrives) {
  start();
  auto made = testing::makeLoopbackCertificate(dir_ / "b");
  ASSERT_TRUE(made.has_value()) << made.error();
  // Half a rotation: the new certificate with the old key.
  replace(dir_ / "b/cert.pem", cert());
  std::string error;
  RawClient c = tlsClient(dir_ / "a/cert.pem", &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(c.peerCertificatePem(), slurp(dir_ / "a/cert.pem"));
  EXPECT_EQ(errors_.count("http", "tls_reload"), 1);
  // Not retried (nor counted again) while the files stay the same.
  RawClient c2 = tlsClient(dir_ / "a/cert.pem", &error);
  EXPECT_EQ(errors_.count("http", "tls_reload"), 1);
  // The key arrives: the new pair is served.
  replace(dir_ / "b/key.pem", key());
  RawClient c3 = tlsClient(dir_ / "b/cert.pem", &error);
  ASSERT_TRUE(error.empty()) << error;
  EXPECT_EQ(c3.peerCertificatePem(), slurp(dir_ / "b/cert.pem"));
}

TEST_F(HttpServerTlsTest, PlainHttpToTheTlsPortFailsCleanly) {
  start();
  RawClient plain(server_->port());
  ASSERT_TRUE(plain.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(plain.waitClosed(5s));
  EXPECT_EQ(plain.pending().find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(errors_.count("http", "tls_handshake"), 1);
  std::string error;
  RawClient c = tlsClient(cert(), &error);
  ASSERT_TRUE(error.empty()) << error;
  auto r = c.request("GET", "/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTlsTest, WithAClientCaOnlyClientsWithACertificateGetIn) {
  // The client's certificate is self-signed: it is its own CA.
  auto client = testing::makeLoopbackCertificate(dir_ / "client");
  ASSERT_TRUE(client.has_value()) << client.error();
  HttpServerOptions o;
  o.tls.client_ca_file = (dir_ / "client/cert.pem").string();
  start(o);
  RawClient with(server_->port());
  auto e = with.startTls(cert().string(), client->certificate, client->key);
  ASSERT_FALSE(e.has_value()) << *e;
  auto r = with.request("GET", "/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  RawClient without(server_->port());
  // TLS 1.3 reports the server's refusal only at the first read, so try a request too.
  const bool refused = without.startTls(cert().string()).has_value() ||
                       !without.request("GET", "/healthz", {}, 5s).has_value();
  EXPECT_TRUE(refused);
}

TEST_F(HttpServerTlsTest, UnreadableHalfOrMismatchedFilesFailAtStartWithTheFileNamed) {
  HttpServerOptions o;
  o.tls.cert_file = "/nonexistent/cert.pem";
  o.tls.key_file = "/nonexistent/key.pem";
  auto missing = HttpServer::start("127.0.0.1:0", o);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().find("/nonexistent/cert.pem"), std::string::npos) << missing.error();

  o.tls.key_file.clear();
  EXPECT_FALSE(HttpServer::start("127.0.0.1:0", o).has_value());

  auto other = testing::makeLoopbackCertificate(dir_ / "b");
  ASSERT_TRUE(other.has_value()) << other.error();
  o.tls.cert_file = cert().string();
  o.tls.key_file = other->key;
  auto mismatched = HttpServer::start("127.0.0.1:0", o);
  ASSERT_FALSE(mismatched.has_value());
  EXPECT_NE(mismatched.error().find("does not match"), std::string::npos) << mismatched.error();
}

}  // namespace
}  // namespace nodewarden
