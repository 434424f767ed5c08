// CheckpointStore: JSON load and atomic save of container-log positions.
//
// What a reader gets wrong: the temp file is fsync'ed before the rename (or a power loss could
// leave an empty file under the real name), but the directory is not fsync'ed after it, on
// purpose. A position is saved only after its lines are durably in the spool, so a rename that a
// power loss takes back leaves the previous, older positions: lines read again and sent again
// (the same timestamps and lines, which Loki drops as duplicates), never lines skipped. That
// holds because a file without a saved position is read from its start (LogTailerOptions::
// start_at_end_for_new_files is off in the agent); with it on, a lost first save would skip. A
// killed process loses nothing either way (the kernel has the rename). The save runs once per
// spooled batch; the directory fsync was a third of its cost.
#include "collectors/logs/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>
#include <system_error>

namespace nodewarden::logs {
namespace {

constexpr int kFormatVersion = 1;

std::string errnoText(std::string_view what, const std::filesystem::path& p, int err) {
  return std::string(what) + " " + p.string() + ": " + std::strerror(err);
}

std::string hex(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kDigits[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::expected<std::uint64_t, std::string> unhex(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::unexpected("bad fingerprint");
  std::uint64_t v = 0;
  for (const char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<std::uint64_t>(c - 'a' + 10);
    } else {
      return std::unexpected("bad fingerprint");
    }
  }
  return v;
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string fileKey(std::uint64_t device, std::uint64_t inode) {
  return "file:" + std::to_string(device) + ":" + std::to_string(inode);
}

std::expected<void, std::string> CheckpointStore::load() {
  positions_.clear();
  const int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return std::unexpected(errnoText("open", file_, errno));
  }
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return std::unexpected(errnoText("read", file_, err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);

  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return std::unexpected(file_.string() + ": not a JSON object");
  }
  const auto files = doc.find("files");
  if (files == doc.end() || !files->is_array()) {
    return std::unexpected(file_.string() + ": missing \"files\" array");
  }
  for (const auto& f : *files) {
    const auto key = f.find("key");
    const auto dev = f.find("device");
    const auto ino = f.find("inode");
    const auto fp = f.find("fingerprint");
    const auto fp_bytes = f.find("fingerprint_bytes");
    const auto offset = f.find("offset");
    if (!f.is_object() || key == f.end() || !key->is_string() || dev == f.end() ||
        !dev->is_number_unsigned() || ino == f.end() || !ino->is_number_unsigned() ||
        fp == f.end() || !fp->is_string() || fp_bytes == f.end() ||
        !fp_bytes->is_number_unsigned() || offset == f.end() || !offset->is_number_unsigned()) {
      positions_.clear();
      return std::unexpected(file_.string() + ": malformed entry in \"files\"");
    }
    const auto fingerprint = unhex(fp->get<std::string>());
    if (!fingerprint) {
      positions_.clear();
      return std::unexpected(file_.string() + ": " + fingerprint.error());
    }
    StoredPosition pos;
    pos.file.device = dev->get<std::uint64_t>();
    pos.file.inode = ino->get<std::uint64_t>();
    pos.file.fingerprint = *fingerprint;
    pos.file.fingerprint_bytes = fp_bytes->get<std::uint32_t>();
    pos.offset = offset->get<std::uint64_t>();
    if (const auto path = f.find("path"); path != f.end() && path->is_string()) {
      pos.path = path->get<std::string>();
    }
    positions_[key->get<std::string>()] = std::move(pos);
  }
  return {};
}

std::expected<void, std::string> CheckpointStore::save() const {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& [key, pos] : positions_) {
    files.push_back({{"key", key},
                     {"path", pos.path},
                     {"device", pos.file.device},
                     {"inode", pos.file.inode},
                     {"fingerprint", hex(pos.file.fingerprint)},
                     {"fingerprint_bytes", pos.file.fingerprint_bytes},
                     {"offset", pos.offset}});
  }
  const nlohmann::json doc = {{"version", kFormatVersion}, {"files", std::move(files)}};
  // The strings come from paths, which need not be UTF-8: replace rather than throw.
  const std::string text = doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";

  auto tmp = file_;
  tmp += ".tmp";
  constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  int fd = ::open(tmp.c_str(), kFlags, 0644);
  if (fd < 0 && errno == ENOENT) {
    // The directory is missing (the first save, or it was removed): create it and try again.
    const auto dir = file_.has_parent_path() ? file_.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return std::unexpected("create " + dir.string() + ": " + ec.message());
    fd = ::open(tmp.c_str(), kFlags, 0644);
  }
  if (fd < 0) return std::unexpected(errnoText("create", tmp, errno));
  if (!writeAll(fd, text) || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return std::unexpected(errnoText("write", tmp, err));
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errnoText("close", tmp, err));
  }
  if (::rename(tmp.c_str(), file_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errnoText("rename", tmp, err));
  }
  return {};  // no fsync of the directory: see the comment at the top
}

const StoredPosition* CheckpointStore::find(const std::string& key) const {
  const auto it = positions_.find(key);
  return it == positions_.end() ? nullptr : &it->second;
}

void CheckpointStore::put(const std::string& key, StoredPosition position) {
  positions_[key] = std::move(position);
}

}  // namespace nodewarden::logs
