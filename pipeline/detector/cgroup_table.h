// CgroupTable: what the detector keeps per pod (NoisyNeighbors) or per container (RightSizing),
// one entry per cgroup, keyed by pod uid or cgroup path. An entry is found or admitted when its
// cgroup is in the cycle's snapshot, and forgotten once it has been missing for
// kForgetAfterCycles cycles (its cgroup is gone).
//
// What a reader gets wrong: the table counts its own cycles (beginCycle()), and "seen this cycle"
// is last_seen == cycle(), so an entry missing from one snapshot keeps its state and history for
// the cycles before it is forgotten; its sample pointer is only valid between see() and
// publish() of the same cycle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pipeline/detector/detector_parts.h"

namespace nodewarden::detector::detail {

// Entry has `std::uint64_t last_seen` and `const CgroupSample* sample`.
template <typename Entry>
class CgroupTable {
 public:
  using Map = std::unordered_map<std::string, std::unique_ptr<Entry>>;

  CgroupTable() = default;
  // Not copyable, nor is a part that holds one: entries are referred to by address.
  CgroupTable(const CgroupTable&) = delete;
  CgroupTable& operator=(const CgroupTable&) = delete;

  void beginCycle() { ++cycle_; }
  [[nodiscard]] std::uint64_t cycle() const { return cycle_; }

  // key's entry, marked seen this cycle with sample s. A new key gets make()'s entry when admit,
  // else nullptr (nothing is tracked).
  template <typename Make>
  Entry* see(const std::string& key, const CgroupSample& s, bool admit, Make&& make) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (!admit) return nullptr;
      it = entries_.emplace(key, make()).first;
    }
    Entry& e = *it->second;
    e.sample = &s;
    e.last_seen = cycle_;
    return &e;
  }

  // key's entry if it was seen this cycle, else nullptr.
  [[nodiscard]] Entry* seen(const std::string& key) {
    const auto it = entries_.find(key);
    return it == entries_.end() || it->second->last_seen != cycle_ ? nullptr : it->second.get();
  }

  void forget() {
    std::erase_if(entries_, [&](const auto& kv) {
      return cycle_ - kv.second->last_seen >= kForgetAfterCycles;
    });
  }

  // fill(entry) -> const Signals& of each entry seen this cycle, into out in the table's order;
  // then no entry holds a sample. Assigned in place: a string keeps its capacity, so a steady
  // node allocates nothing here.
  template <typename Signals, typename Fill>
  void publish(std::vector<Signals>& out, Fill&& fill) {
    std::size_t n = 0;
    for (auto& [key, e] : entries_) {
      if (e->last_seen != cycle_) continue;
      if (n == out.size()) out.emplace_back();
      out[n++] = fill(*e);
    }
    out.resize(n);
    for (auto& [key, e] : entries_) e->sample = nullptr;
  }

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  typename Map::iterator begin() { return entries_.begin(); }
  typename Map::iterator end() { return entries_.end(); }
  typename Map::const_iterator begin() const { return entries_.begin(); }
  typename Map::const_iterator end() const { return entries_.end(); }

 private:
  std::uint64_t cycle_ = 0;
  Map entries_;
};

}  // namespace nodewarden::detector::detail
