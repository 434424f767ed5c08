// TextRenderer: turns a Snapshot into the Prometheus text exposition format (0.0.4) under
// cAdvisor's metric names, units and label keys, so kubelet/cAdvisor dashboards and alert rules
// work unchanged. It renders once per collection cycle; scrapes copy the last rendering.
//
// What a reader gets wrong: the exposition is built on the collection thread, not per scrape, so
// a scrape costs a copy and never races the collector; and a field the collector could not read
// is left out, never written as 0 (a 0 would be a real reading to every rule that uses it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>

#include "pipeline/interfaces.h"

namespace nodewarden {

class TextRenderer final : public SnapshotConsumer {
 public:
  // proc_root is where /proc/partitions names block devices for the `device` label.
  explicit TextRenderer(std::filesystem::path proc_root);

  void consume(const Snapshot& snapshot) override;

  // Appends the latest rendering to out. Thread-safe.
  void appendLatest(std::string& out) const;
  [[nodiscard]] std::size_t lastSeriesCount() const;

  // Renders into out (no publishing); used by consume() and by tests.
  std::size_t render(const Snapshot& snapshot, std::string& out);

 private:
  void appendDevice(std::uint32_t major, std::uint32_t minor, std::string& out);
  void loadDeviceNames();

  std::filesystem::path proc_root_;
  std::unordered_map<std::uint64_t, std::string> device_names_;
  std::int64_t device_names_loaded_ms_ = -1;

  std::string back_;       // rendered by the collection thread only
  mutable std::mutex mu_;  // guards front_ and series_
  std::string front_;
  std::size_t series_ = 0;
};

// Appends `value` in the exposition format's float syntax (shortest round trip).
void appendDouble(std::string& out, double value);
void appendU64(std::string& out, std::uint64_t value);
// Appends a label value escaped per the text format (backslash, double quote, newline).
void appendLabelValue(std::string& out, std::string_view value);

}  // namespace nodewarden
