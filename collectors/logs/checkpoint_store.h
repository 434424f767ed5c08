// CheckpointStore: the container-log positions that the pipeline has declared durable, kept in
// one JSON file and replaced atomically (write <file>.tmp, fsync, rename).
//
// What a reader gets wrong: the key is the file's identity ("file:<dev>:<ino>"), not its path.
// kubelet renames files on rotation, so a path names different files over time; the path is
// stored next to the position only so that a human reading the file knows what it is.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <string>

#include "pipeline/log_record.h"

namespace nodewarden::logs {

struct StoredPosition {
  std::string path;  // where the file was when the position was stored; informational
  FileIdentity file;
  std::uint64_t offset = 0;
  bool operator==(const StoredPosition&) const = default;
};

// "file:<dev>:<ino>": the checkpoint source of a followed file.
std::string fileKey(std::uint64_t device, std::uint64_t inode);

class CheckpointStore {
 public:
  explicit CheckpointStore(std::filesystem::path file) : file_(std::move(file)) {}

  // Reads the file. A missing file is an empty store; an unreadable or malformed one is an error
  // (the store is then empty, so the caller may continue and report it).
  std::expected<void, std::string> load();
  // Writes every position atomically. Creates the parent directory when missing.
  [[nodiscard]] std::expected<void, std::string> save() const;

  [[nodiscard]] const StoredPosition* find(const std::string& key) const;
  void put(const std::string& key, StoredPosition position);
  void erase(const std::string& key) { positions_.erase(key); }
  [[nodiscard]] const std::map<std::string, StoredPosition>& positions() const {
    return positions_;
  }
  [[nodiscard]] const std::filesystem::path& path() const { return file_; }

 private:
  std::filesystem::path file_;
  std::map<std::string, StoredPosition> positions_;
};

}  // namespace nodewarden::logs
