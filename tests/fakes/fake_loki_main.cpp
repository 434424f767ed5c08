// fake-loki: a FakeLoki on 127.0.0.1 for trying the agent by hand. Prints every accepted entry
// as one JSON line on stdout ({"stream":{...},"ts":"<ns>","line":"...","metadata":{...}}) until
// SIGINT or SIGTERM.
//
// What a reader gets wrong: it binds 127.0.0.1 only, never a public address, and always answers
// 204; point the agent at http://127.0.0.1:<port>/loki/api/v1/push.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tests/fakes/fake_loki.h"

namespace {

nlohmann::json labelObject(const nodewarden::Labels& labels) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : labels) out[name] = value;
  return out;
}

int usage() {
  std::cerr << "usage: fake-loki [PORT] [--tenant ID]   (PORT defaults to 3100, 0 picks one)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  nodewarden::testing::FakeLokiOptions options;
  options.port = 3100;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--tenant" && i + 1 < argc) {
      options.tenant = argv[++i];
    } else if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string_view::npos &&
               arg.size() <= 5) {
      options.port = std::atoi(argv[i]);
    } else {
      return usage();
    }
  }
  std::mutex out;
  options.on_entry = [&out](const nodewarden::Labels& stream, const nodewarden::LogEntry& entry) {
    const nlohmann::json line = {{"stream", labelObject(stream)},
                                 {"ts", std::to_string(entry.timestamp_ns)},
                                 {"line", entry.line},
                                 {"metadata", labelObject(entry.metadata)}};
    const std::scoped_lock lock(out);
    std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  };

  // Block the signals before the server's threads start, so only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto fake = nodewarden::testing::FakeLoki::start(options);
  if (!fake) {
    std::cerr << fake.error() << "\n";
    return 1;
  }
  std::cerr << "fake-loki: listening on " << (*fake)->pushUrl() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "fake-loki: " << (*fake)->entryCount() << " entries received" << std::endl;
  return 0;
}
