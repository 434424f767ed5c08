// TextRenderer: turns a Snapshot into the Prometheus text exposition format (0.0.4) under
// cAdvisor's metric names, units and label keys, so kubelet/cAdvisor dashboards and alert rules
// work unchanged.
//
// What a reader gets wrong: the exposition is streamed, per scrape, in chunks of about 64 KiB
// through a flush callback, never built whole: 1,000 containers make ~7 MB of text, which would
// triple the agent's memory if it were held (and copied) per cycle. The caller keeps the Snapshot
// still while rendering. A field the collector could not read is left out, never written as 0,
// and so is a sample whose names are still pending (CgroupSample::names_pending): its series
// appear once, named, instead of anonymous first and renamed after. Exposition::kCadvisor is the
// same text without the node_exporter part: what /metrics/cadvisor serves, scraped as the kubelet's
// cAdvisor endpoint (job="kubelet"), where node_* series would be misfiled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pipeline/snapshot.h"

namespace nodewarden {

// Which series render() writes. Every container_* and machine_* family is cAdvisor's and goes into
// both: a family added to the renderer shows on /metrics/cadvisor by itself.
enum class Exposition : std::uint8_t {
  kFull,      // /metrics and remote write: cAdvisor's series and node_exporter's node_* series
  kCadvisor,  // /metrics/cadvisor: cAdvisor's series only
};

class TextRenderer {
 public:
  using Flush = std::function<void(std::string_view chunk)>;
  static constexpr std::size_t kChunkBytes = 64 * 1024;

  // proc_root is where /proc/partitions names block devices for the `device` label.
  explicit TextRenderer(std::filesystem::path proc_root);

  // Renders the snapshot, calling flush with each chunk (and the last, shorter one). Returns the
  // number of series. Thread-safe; concurrent scrapes render independently.
  std::size_t render(const Snapshot& snapshot, const Flush& flush,
                     Exposition exposition = Exposition::kFull);

  // Renders into one string: for tests and small trees.
  std::size_t renderToString(const Snapshot& snapshot, std::string& out);

 private:
  void appendDevice(std::uint32_t major, std::uint32_t minor, std::string& out);
  void loadDeviceNamesLocked();

  std::filesystem::path proc_root_;
  std::mutex device_mu_;  // guards the device-name cache shared by concurrent scrapes
  std::unordered_map<std::uint64_t, std::string> device_names_;
  std::int64_t device_names_loaded_ms_ = -1;
};

// Appends `value` in the exposition format's float syntax (shortest round trip).
void appendDouble(std::string& out, double value);
void appendU64(std::string& out, std::uint64_t value);
// Appends a label value escaped per the text format (backslash, double quote, newline).
void appendLabelValue(std::string& out, std::string_view value);

}  // namespace nodewarden
