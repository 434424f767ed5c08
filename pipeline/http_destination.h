// HttpDestinationConfig: what the agent's two HTTP push destinations (loki.*, remote_write.*)
// share in their config sections: where, and how to authenticate. Both exporters' config structs
// (LokiConfig in agent/log_pipeline.h, RemoteWriteConfig in agent/remote_write_pipeline.h) derive
// from it, so each of these members and its default is written once.
//
// What a reader gets wrong: these are config values, not the exporters' runtime options. The
// password is a file here and the password itself in CurlPostOptions and LokiExporterOptions; the
// pipelines read the file when they turn a config into options. The timeout is not here: the two
// destinations' defaults differ.
#pragma once

#include <filesystem>
#include <string>

namespace nodewarden {

struct HttpDestinationConfig {
  std::string url;
  std::filesystem::path bearer_token_file;
  std::string username;  // basic auth, with password_file
  std::filesystem::path password_file;
  std::filesystem::path ca_file;
  bool insecure_skip_verify = false;
};

}  // namespace nodewarden
