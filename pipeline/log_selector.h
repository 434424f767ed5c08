// LogSelector: which streams a log rule applies to (a filter, a multiline rule, a rate limit, a
// tenant), by namespace, pod name, container, stream (stdout/stderr) and pod labels. Every listed
// field must match; an empty field matches anything; values are exact (no patterns: a selector is
// decided once per stream, not per line).
//
// What a reader gets wrong: pod labels are not in a line's stream labels (only those the user
// promotes are). LogStreamResolver finds them through the pod's uid (the entry's `pod_uid`
// metadata) in the ContainerMetadata, and a stream whose pod the metadata does not know yet
// matches no selector with pod_labels until it does: stages keep their per-stream decisions in a
// StreamMemo, which forgets them whenever the metadata's generation moves.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/container_metadata.h"
#include "pipeline/log_record.h"

namespace nodewarden {

// A label's value in a sorted label list (stream labels or structured metadata); "" when absent.
std::string_view labelValue(const Labels& labels, std::string_view name);

// What selectors look at, for one entry's stream. Views into the labels and the resolver's cache:
// valid until the next resolve().
struct LogStreamInfo {
  std::string_view namespace_name;
  std::string_view pod;
  std::string_view container;
  std::string_view stream;  // stdout, stderr; "" for the journal
  // The pod's labels; null when the metadata does not know the pod (or the entry has no pod).
  const std::map<std::string, std::string>* pod_labels = nullptr;
};

struct LogSelector {
  std::vector<std::string> namespaces;
  std::vector<std::string> pods;
  std::vector<std::string> containers;
  std::vector<std::string> streams;
  std::map<std::string, std::string> pod_labels;  // every one must be present with this value
  [[nodiscard]] bool matchesEverything() const;
  [[nodiscard]] bool matches(const LogStreamInfo& info) const;
  bool operator==(const LogSelector&) const = default;
};

// Builds a LogStreamInfo from an entry's labels and metadata, with the pod's labels from the
// ContainerMetadata (null: no pod labels ever). Same thread as the readers (the log tick).
class LogStreamResolver {
 public:
  explicit LogStreamResolver(const ContainerMetadata* metadata) : metadata_(metadata) {}
  LogStreamInfo resolve(const Labels& labels, const LogEntry& entry);
  // Moves when the metadata may answer differently (ContainerMetadata::generation()).
  [[nodiscard]] std::uint64_t generation() const {
    return metadata_ != nullptr ? metadata_->generation() : 0;
  }

 private:
  const ContainerMetadata* metadata_;
  std::uint64_t cached_generation_ = 0;
  // pod uid -> its labels (nullopt: not known to the metadata at cached_generation_).
  std::unordered_map<std::string, std::optional<std::map<std::string, std::string>>> pods_;
};

// What a stage decided for each stream, by the stream numbers of LogSink::acceptStream (0: not
// numbered, never memoised). Forgets everything when the resolver's generation moves (late pod
// labels) and when it holds max_entries (streams come and go; numbers are never reused).
template <class T>
class StreamMemo {
 public:
  explicit StreamMemo(std::size_t max_entries = 65536) : max_entries_(max_entries) {}
  // The memo of stream_id, or null (compute it and put() it).
  T* find(std::uint64_t stream_id, std::uint64_t generation) {
    if (generation != generation_) {
      entries_.clear();
      generation_ = generation;
    }
    if (stream_id == 0) return nullptr;
    const auto it = entries_.find(stream_id);
    return it == entries_.end() ? nullptr : &it->second;
  }
  T& put(std::uint64_t stream_id, T value) {
    if (stream_id == 0) {
      scratch_ = std::move(value);
      return scratch_;
    }
    if (entries_.size() >= max_entries_) entries_.clear();
    return entries_.insert_or_assign(stream_id, std::move(value)).first->second;
  }

 private:
  std::size_t max_entries_;
  std::uint64_t generation_ = 0;
  std::unordered_map<std::uint64_t, T> entries_;
  T scratch_{};
};

}  // namespace nodewarden
