#include "exporters/file/file_log_exporter.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <system_error>

namespace nodewarden {

FileLogExporter::FileLogExporter(std::filesystem::path file, std::uint64_t max_bytes,
                                 std::shared_ptr<const LogBatchEncoder> body_decoder)
    : file_(std::move(file)), max_bytes_(max_bytes), body_decoder_(std::move(body_decoder)) {}

SendResult FileLogExporter::send(const LogBatch& batch) {
  std::lock_guard lock(mu_);
  std::error_code ec;
  if (!out_.is_open()) {
    std::filesystem::create_directories(file_.parent_path(), ec);
    out_.open(file_, std::ios::app | std::ios::binary);
    if (!out_) return {SendStatus::kRetry, 0, file_.string() + ": " + std::strerror(errno), {}};
    size_ = std::filesystem::file_size(file_, ec);
    if (ec) size_ = 0;
  }
  // A batch spooled for Loki (before a restart with another destination) carries a push body.
  LogBatch expanded;
  if (!batch.encoded_body.empty()) {
    if (!body_decoder_) return {SendStatus::kDrop, 0, "undecodable push body: no decoder", {}};
    expanded.encoded_body = batch.encoded_body;
    if (auto ok = expandEncodedBody(expanded, *body_decoder_); !ok) {
      return {SendStatus::kDrop, 0, "undecodable push body: " + ok.error(), {}};
    }
  }
  std::string text;
  for (const auto& stream : batch.encoded_body.empty() ? batch.streams : expanded.streams) {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [k, v] : stream.labels) labels[k] = v;
    for (const auto& e : stream.entries) {
      nlohmann::json j{{"ts_ns", e.timestamp_ns}, {"labels", labels}};
      // Lines are bytes; replace what is not UTF-8 so that every line of the file stays JSON.
      j["line"] = e.line;
      if (!e.metadata.empty()) {
        nlohmann::json md = nlohmann::json::object();
        for (const auto& [k, v] : e.metadata) md[k] = v;
        j["metadata"] = std::move(md);
      }
      text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      text += '\n';
    }
  }
  if (size_ + text.size() > max_bytes_ && size_ > 0) {
    out_.close();
    std::filesystem::rename(file_, file_.string() + ".1", ec);
    out_.open(file_, std::ios::trunc | std::ios::binary);
    size_ = 0;
    if (!out_) return {SendStatus::kRetry, 0, file_.string() + ": " + std::strerror(errno), {}};
  }
  out_.write(text.data(), static_cast<std::streamsize>(text.size()));
  out_.flush();
  if (!out_) {
    out_.close();
    return {SendStatus::kRetry, 0, file_.string() + ": write failed", {}};
  }
  size_ += text.size();
  return {SendStatus::kOk, 0, {}, {}};
}

}  // namespace nodewarden
