// FileLogExporter: a batch of entries and the same batch spooled as a Loki push body (before a
// restart with the file as destination) give the same JSON lines, read back with the decoder the
// agent hands it; without a decoder a body is dropped (kDrop), never written as garbage.
//
// What a reader gets wrong: the file exporter knows no Loki format. The body is read only through
// the LogBatchEncoder it is given, here Loki's, as the agent wires it.
#include "exporters/file/file_log_exporter.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "exporters/loki/loki_push_body.h"
#include "tests/support/temp_dir.h"

namespace nodewarden {
namespace {

LogBatch twoLines() {
  LogBatch batch;
  LogBatch::Stream s{{{"app", "web"}, {"namespace", "default"}}, {}};
  s.entries.push_back(LogEntry{1'700'000'000'000'000'001, "first", {{"pod_uid", "u1"}}});
  s.entries.push_back(LogEntry{1'700'000'000'000'000'002, "second \"quoted\"", {}});
  batch.lines = 2;
  batch.bytes = s.entries[0].line.size() + s.entries[1].line.size();
  batch.streams.push_back(std::move(s));
  return batch;
}

std::string readAll(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FileLogExporter, ASpooledLokiBodyIsWrittenAsTheSameLinesAsItsEntries) {
  test_support::TempDir dir("nodewarden-file-exporter");
  const auto plain_file = dir.path() / "plain.jsonl";
  const auto body_file = dir.path() / "body.jsonl";
  FileLogExporter plain(plain_file, 1 << 20);
  FileLogExporter from_body(body_file, 1 << 20, std::make_shared<LokiBatchEncoder>());

  ASSERT_EQ(plain.send(twoLines()).status, SendStatus::kOk);
  LogBatch spooled = twoLines();
  LokiPushWriter().body(spooled, spooled.encoded_body);
  spooled.streams.clear();
  ASSERT_EQ(from_body.send(spooled).status, SendStatus::kOk);

  const std::string expected = readAll(plain_file);
  EXPECT_NE(expected.find("second \\\"quoted\\\""), std::string::npos) << expected;
  EXPECT_EQ(readAll(body_file), expected);
}

TEST(FileLogExporter, ABodyWithoutADecoderIsDroppedAndNothingIsWritten) {
  test_support::TempDir dir("nodewarden-file-exporter");
  const auto file = dir.path() / "out.jsonl";
  FileLogExporter exporter(file, 1 << 20);
  LogBatch spooled = twoLines();
  LokiPushWriter().body(spooled, spooled.encoded_body);
  spooled.streams.clear();
  const SendResult r = exporter.send(spooled);
  EXPECT_EQ(r.status, SendStatus::kDrop);
  EXPECT_NE(r.message.find("undecodable"), std::string::npos) << r.message;
  EXPECT_EQ(readAll(file), "");
}

TEST(FileLogExporter, AGarbledBodyIsDroppedWithTheDecodersReason) {
  test_support::TempDir dir("nodewarden-file-exporter");
  FileLogExporter exporter(dir.path() / "out.jsonl", 1 << 20, std::make_shared<LokiBatchEncoder>());
  LogBatch spooled;
  spooled.lines = 1;
  spooled.encoded_body = "not snappy at all";
  const SendResult r = exporter.send(spooled);
  EXPECT_EQ(r.status, SendStatus::kDrop);
  EXPECT_NE(r.message.find("snappy"), std::string::npos) << r.message;
}

}  // namespace
}  // namespace nodewarden
