#include "tests/support/loopback_certificate.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace nodewarden::testing {

std::expected<CertificateFiles, std::string> makeLoopbackCertificate(
    const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string d = dir.string();
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
      "-keyout " +
      d + "/key.pem -out " + d +
      "/cert.pem -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 > " +
      d + "/openssl.log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream in(dir / "openssl.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return std::unexpected("openssl failed: " + ss.str());
  }
  return CertificateFiles{d + "/cert.pem", d + "/key.pem"};
}

}  // namespace nodewarden::testing
