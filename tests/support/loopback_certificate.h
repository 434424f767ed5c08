// A throwaway self-signed certificate for 127.0.0.1 (EC P-256, valid one day), made with the
// openssl command line, for the fakes that speak TLS (the kubelet, Loki). The agent under test is
// told to skip verification, as many kubelets' serving certificates are self-signed.
//
// What a reader gets wrong: the files are written into `dir` (cert.pem, key.pem, openssl.log) and
// left there; the caller's temporary directory removes them.
#pragma once

#include <expected>
#include <filesystem>
#include <string>

namespace nodewarden::testing {

struct CertificateFiles {
  std::string certificate;  // PEM
  std::string key;          // PEM
};

// Fails with openssl's output when the command fails.
std::expected<CertificateFiles, std::string> makeLoopbackCertificate(
    const std::filesystem::path& dir);

}  // namespace nodewarden::testing
