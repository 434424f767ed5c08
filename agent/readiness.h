// Readiness: what /readyz answers. Ready is the first collection done and no component down; each
// component that could not start (the log path on an unusable state dir, remote write's spool,
// the Job outcomes' state) is down with its reason until its retried start succeeds, and /readyz
// then answers 503 with one line per problem, e.g.
//   logs: cannot open the spool: create /var/lib/nodewarden/spool/logs: Not a directory
//
// What a reader gets wrong: this is readiness, not liveness. /healthz stays 200 while a component
// is down: the metrics, the detector and the HTTP server still work, and a restart (what a failed
// liveness probe brings) would not fix a state dir; the component retries on its own.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace nodewarden {

class Readiness {
 public:
  struct Answer {
    bool ready = false;
    std::string body;  // "ready\n", or one line per reason it is not
  };

  void firstCollectionDone();
  // Marks component down with reason (replacing an earlier one), or up again. Any thread.
  void setDown(std::string_view component, std::string reason);
  void setUp(std::string_view component);

  [[nodiscard]] Answer answer() const;  // any thread
  [[nodiscard]] bool isDown(std::string_view component) const;

 private:
  mutable std::mutex mu_;  // guards everything below
  bool collected_ = false;
  std::map<std::string, std::string, std::less<>> down_;  // component -> reason
};

}  // namespace nodewarden
