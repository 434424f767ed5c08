// FakeLoki: civetweb serves POST /loki/api/v1/push; decoding follows Loki's push handler.
// In TLS mode a TlsFront (tls_front.h) terminates TLS and relays each connection to the plain
// civetweb server, because Debian 12's civetweb crashes doing HTTPS with OpenSSL 3.
#include "tests/fakes/fake_loki.h"

#include <civetweb.h>
#include <netdb.h>
#include <snappy.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "exporters/loki/push.pb.h"
#include "exporters/remote_write/remote.pb.h"
#include "tests/fakes/civetweb_stop.h"
#include "tests/fakes/tls_front.h"

namespace nodewarden::testing {
namespace {

constexpr std::size_t kMaxBody = 64 << 20;
constexpr std::chrono::milliseconds kMaxHang{30'000};

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

void appendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// A Go interpreted string literal starting at s[i] == '"' (strconv.Unquote's escapes).
std::expected<std::string, std::string> unquote(std::string_view s, std::size_t& i) {
  std::string out;
  ++i;
  const auto hexDigits = [&](std::size_t n, int base) -> std::expected<std::uint32_t, std::string> {
    if (i + n > s.size()) return std::unexpected("short escape");
    std::uint32_t v = 0;
    const auto r = std::from_chars(s.data() + i, s.data() + i + n, v, base);
    if (r.ec != std::errc() || r.ptr != s.data() + i + n) return std::unexpected("bad escape");
    i += n;
    return v;
  };
  while (i < s.size()) {
    const char c = s[i++];
    if (c == '"') return out;
    if (c == '\n') return std::unexpected("newline in string");
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (i >= s.size()) break;
    const char e = s[i++];
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'x': {
        auto v = hexDigits(2, 16);
        if (!v) return std::unexpected(v.error());
        out.push_back(static_cast<char>(*v));
        break;
      }
      case 'u':
      case 'U': {
        auto v = hexDigits(e == 'u' ? 4 : 8, 16);
        if (!v) return std::unexpected(v.error());
        appendUtf8(out, *v);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          --i;
          auto v = hexDigits(3, 8);
          if (!v || *v > 255) return std::unexpected("bad octal escape");
          out.push_back(static_cast<char>(*v));
          break;
        }
        return std::unexpected(std::string("unknown escape \\") + e);
    }
  }
  return std::unexpected("unterminated string");
}

bool isNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (!first && c >= '0' && c <= '9');
}

std::expected<DecodedPush, std::string> decodeProtobuf(std::string_view body) {
  std::string raw;
  if (!snappy::Uncompress(body.data(), body.size(), &raw)) {
    return std::unexpected("body is not snappy-compressed");
  }
  logproto::PushRequest request;
  if (!request.ParseFromString(raw)) return std::unexpected("body is not a PushRequest");
  DecodedPush out;
  for (const auto& stream : request.streams()) {
    auto labels = parseLokiLabels(stream.labels());
    if (!labels) return std::unexpected("labels " + stream.labels() + ": " + labels.error());
    std::vector<LogEntry> entries;
    for (const auto& e : stream.entries()) {
      LogEntry entry;
      entry.timestamp_ns = e.timestamp().seconds() * 1'000'000'000 + e.timestamp().nanos();
      entry.line = e.line();
      for (const auto& pair : e.structuredmetadata()) {
        entry.metadata.emplace_back(pair.name(), pair.value());
      }
      entries.push_back(std::move(entry));
    }
    out.emplace_back(std::move(*labels), std::move(entries));
  }
  return out;
}

std::expected<DecodedPush, std::string> decodeJson(std::string_view body) {
  using nlohmann::json;
  const json doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return std::unexpected("body is not a JSON object");
  const auto streams = doc.find("streams");
  if (streams == doc.end() || !streams->is_array()) return std::unexpected("no streams array");
  DecodedPush out;
  for (const json& stream : *streams) {
    if (!stream.is_object()) return std::unexpected("a stream is not an object");
    const auto labels = stream.find("stream");
    const auto values = stream.find("values");
    if (labels == stream.end() || !labels->is_object() || values == stream.end() ||
        !values->is_array()) {
      return std::unexpected("a stream lacks its stream object or values array");
    }
    Labels parsed;
    for (const auto& [name, value] : labels->items()) {
      if (!value.is_string()) return std::unexpected("label " + name + " is not a string");
      parsed.emplace_back(name, value.get<std::string>());
    }
    std::vector<LogEntry> entries;
    for (const json& v : *values) {
      if (!v.is_array() || v.size() < 2 || v.size() > 3 || !v[0].is_string() || !v[1].is_string()) {
        return std::unexpected("a value is not [\"<ns>\", \"<line>\", {metadata}?]");
      }
      LogEntry entry;
      const auto& ts = v[0].get_ref<const std::string&>();
      const auto r = std::from_chars(ts.data(), ts.data() + ts.size(), entry.timestamp_ns);
      if (r.ec != std::errc() || r.ptr != ts.data() + ts.size()) {
        return std::unexpected("timestamp '" + ts + "' is not nanoseconds");
      }
      entry.line = v[1].get<std::string>();
      if (v.size() == 3) {
        if (!v[2].is_object()) return std::unexpected("structured metadata is not an object");
        for (const auto& [name, value] : v[2].items()) {
          if (!value.is_string()) return std::unexpected("metadata " + name + " is not a string");
          entry.metadata.emplace_back(name, value.get<std::string>());
        }
      }
      entries.push_back(std::move(entry));
    }
    out.emplace_back(std::move(parsed), std::move(entries));  // nlohmann objects iterate sorted
  }
  return out;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

void reply(mg_connection* conn, int status, std::string_view body,
           std::chrono::seconds retry_after = std::chrono::seconds(0)) {
  std::string head =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reasonPhrase(status)) + "\r\n";
  if (retry_after.count() > 0)
    head += "Retry-After: " + std::to_string(retry_after.count()) + "\r\n";
  if (status == 204) {
    body = {};
  } else {
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n";
  }
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  if (!body.empty()) mg_write(conn, body.data(), body.size());
}

std::once_flag g_civetweb_init;

}  // namespace

std::string FakeLokiRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equalsIgnoreCase(n, name)) return v;
  }
  return {};
}

std::expected<std::string, std::string> gunzip(std::string_view data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return std::unexpected("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  std::vector<char> chunk(64 * 1024);  // heap: civetweb's worker stacks are small
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
    zs.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(chunk.data(), chunk.size() - zs.avail_out);
    if (out.size() > kMaxBody) rc = Z_MEM_ERROR;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // truncated input
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::unexpected("body is not complete gzip");
  return out;
}

std::expected<Labels, std::string> parseLokiLabels(std::string_view s) {
  std::size_t i = 0;
  const auto skipSpace = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  };
  skipSpace();
  if (i >= s.size() || s[i] != '{') return std::unexpected("no '{'");
  ++i;
  Labels labels;
  skipSpace();
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    while (true) {
      skipSpace();
      const std::size_t start = i;
      while (i < s.size() && isNameChar(s[i], i == start)) ++i;
      if (i == start) return std::unexpected("no label name at " + std::to_string(start));
      std::string name(s.substr(start, i - start));
      skipSpace();
      if (i >= s.size() || s[i] != '=') return std::unexpected("no '=' after " + name);
      ++i;
      skipSpace();
      if (i >= s.size() || s[i] != '"') return std::unexpected("no '\"' after " + name + "=");
      auto value = unquote(s, i);
      if (!value) return std::unexpected(name + ": " + value.error());
      labels.emplace_back(std::move(name), std::move(*value));
      skipSpace();
      if (i < s.size() && s[i] == ',') {
        ++i;
        continue;
      }
      if (i < s.size() && s[i] == '}') {
        ++i;
        break;
      }
      return std::unexpected("no ',' or '}' at " + std::to_string(i));
    }
  }
  skipSpace();
  if (i != s.size()) return std::unexpected("text after '}'");
  std::sort(labels.begin(), labels.end());
  for (std::size_t k = 1; k < labels.size(); ++k) {
    if (labels[k].first == labels[k - 1].first) {
      return std::unexpected("label " + labels[k].first + " twice");
    }
  }
  return labels;
}

std::expected<DecodedPush, std::string> decodeLokiPush(std::string_view content_type,
                                                       std::string_view content_encoding,
                                                       std::string_view body) {
  std::string inflated;
  if (equalsIgnoreCase(content_encoding, "gzip")) {
    auto plain = gunzip(body);
    if (!plain) return std::unexpected(plain.error());
    inflated = std::move(*plain);
    body = inflated;
  } else if (!content_encoding.empty()) {
    return std::unexpected("unsupported Content-Encoding " + std::string(content_encoding));
  }
  if (content_type.starts_with("application/json")) return decodeJson(body);
  return decodeProtobuf(body);
}

namespace {}  // namespace

FakeLoki::FakeLoki(FakeLokiOptions options) : options_(std::move(options)) {}

std::expected<std::unique_ptr<FakeLoki>, std::string> FakeLoki::start(FakeLokiOptions options) {
  std::call_once(g_civetweb_init, [] { mg_init_library(0); });
  if (!options.tls_key_file.empty() && options.tls_certificate_file.empty()) {
    return std::unexpected("fake loki: tls_key_file is set without tls_certificate_file");
  }
  std::unique_ptr<FakeLoki> fake(new FakeLoki(std::move(options)));
  // With TLS the requested port is the front's; civetweb takes any free one behind it.
  const int civet_port = fake->tls() ? 0 : fake->options_.port;
  const std::string ports = "127.0.0.1:" + std::to_string(civet_port);
  const char* civet_options[] = {"listening_ports",
                                 ports.c_str(),
                                 "num_threads",
                                 "8",
                                 "request_timeout_ms",
                                 "30000",
                                 "enable_keep_alive",
                                 "yes",
                                 "keep_alive_timeout_ms",
                                 "5000",
                                 nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  callbacks.init_connection = &FakeLoki::countConnection;
  fake->ctx_ = mg_start(&callbacks, fake.get(), civet_options);
  if (fake->ctx_ == nullptr) return std::unexpected("fake loki: cannot listen on " + ports);
  std::array<mg_server_port, 2> info{};
  if (mg_get_server_ports(fake->ctx_, static_cast<int>(info.size()), info.data()) < 1) {
    return std::unexpected("fake loki: no listening port");
  }
  fake->civet_port_ = info[0].port;
  fake->port_ = fake->civet_port_;
  mg_set_request_handler(fake->ctx_, "/loki/api/v1/push", &FakeLoki::handlePush, fake.get());
  mg_set_request_handler(fake->ctx_, "/api/v1/write", &FakeLoki::handlePush, fake.get());
  if (fake->tls()) {
    auto front = TlsFront::start(
        {fake->options_.tls_certificate_file, fake->options_.tls_key_file, fake->options_.port},
        fake->civet_port_);
    if (!front) return std::unexpected("fake loki: " + front.error());
    fake->tls_front_ = std::move(*front);
    fake->port_ = fake->tls_front_->port();
  }
  return fake;
}

FakeLoki::~FakeLoki() {
  tls_front_.reset();  // its relays hold connections to civetweb; they end first
  if (ctx_ == nullptr) return;
  {
    const std::scoped_lock lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();  // ends hangs at once
  stopCivetweb(ctx_, civet_port_);
}

std::string FakeLoki::remoteWriteUrl() const {
  return std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) +
         "/api/v1/write";
}

std::string FakeLoki::pushUrl() const {
  return std::string(tls() ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) +
         "/loki/api/v1/push";
}

void FakeLoki::answer(FakeLokiAnswer answer, int times) {
  const std::scoped_lock lock(mutex_);
  answer.hang = std::min(answer.hang, kMaxHang);
  answer_ = answer;
  answer_times_ = times;
}

void FakeLoki::answerTenant(const std::string& tenant, FakeLokiAnswer answer, int times) {
  const std::scoped_lock lock(mutex_);
  answer.hang = std::min(answer.hang, kMaxHang);
  tenant_answers_[tenant] = TenantAnswer{answer, times};
}

std::map<Labels, std::vector<LogEntry>> FakeLoki::tenantStreams(const std::string& tenant) const {
  const std::scoped_lock lock(mutex_);
  const auto it = tenant_streams_.find(tenant);
  return it == tenant_streams_.end() ? std::map<Labels, std::vector<LogEntry>>{} : it->second;
}

std::size_t FakeLoki::tenantEntryCount(const std::string& tenant) const {
  const std::scoped_lock lock(mutex_);
  const auto it = tenant_entry_counts_.find(tenant);
  return it == tenant_entry_counts_.end() ? 0 : it->second;
}

bool FakeLoki::waitForTenantEntries(const std::string& tenant, std::size_t count,
                                    std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    const auto it = tenant_entry_counts_.find(tenant);
    return it != tenant_entry_counts_.end() && it->second >= count;
  });
}

void FakeLoki::setMaxEntriesPerRequest(std::size_t max_entries) {
  const std::scoped_lock lock(mutex_);
  options_.max_entries_per_request = max_entries;
}

bool FakeLoki::waitForEntries(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return entry_count_ >= count; });
}

bool FakeLoki::waitForRequests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

bool FakeLoki::waitForHangs(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return hangs_begun_ >= count; });
}

std::size_t FakeLoki::entryCount() const {
  const std::scoped_lock lock(mutex_);
  return entry_count_;
}

std::vector<LogEntry> FakeLoki::entries(const Labels& stream) const {
  const std::scoped_lock lock(mutex_);
  const auto it = streams_.find(stream);
  return it == streams_.end() ? std::vector<LogEntry>{} : it->second;
}

std::map<Labels, std::vector<LogEntry>> FakeLoki::streams() const {
  const std::scoped_lock lock(mutex_);
  return streams_;
}

std::vector<FakeLokiRequest> FakeLoki::requests() const {
  const std::scoped_lock lock(mutex_);
  return requests_;
}

std::size_t FakeLoki::connections() const {
  const std::scoped_lock lock(mutex_);
  return connections_;
}

void FakeLoki::clear() {
  const std::scoped_lock lock(mutex_);
  streams_.clear();
  entry_count_ = 0;
  tenant_streams_.clear();
  tenant_entry_counts_.clear();
  requests_.clear();
  connections_ = 0;
  hangs_begun_ = 0;
}

int FakeLoki::countConnection(const mg_connection* conn, void** conn_data) {
  *conn_data = nullptr;
  auto* self = static_cast<FakeLoki*>(mg_get_user_data(mg_get_context(conn)));
  if (self != nullptr) {
    const std::scoped_lock lock(self->mutex_);
    ++self->connections_;
  }
  return 0;
}

int FakeLoki::handlePush(mg_connection* conn, void* self) {
  try {
    return static_cast<FakeLoki*>(self)->handle(conn);
  } catch (const std::exception& e) {  // nothing may unwind into civetweb's C
    reply(conn, 500, std::string("fake loki: ") + e.what());
    return 500;
  }
}

namespace {

// A remote write 1.0 request as Prometheus' receiver checks it: snappy block, protobuf
// application/x-protobuf, version header 0.1.0. Returns its samples.
std::expected<std::size_t, std::string> decodeRemoteWrite(const FakeLokiRequest& request,
                                                          std::string_view body) {
  if (request.content_encoding != "snappy") return std::unexpected("Content-Encoding not snappy");
  if (request.content_type != "application/x-protobuf") {
    return std::unexpected("Content-Type not application/x-protobuf");
  }
  if (request.header("X-Prometheus-Remote-Write-Version") != "0.1.0") {
    return std::unexpected("no X-Prometheus-Remote-Write-Version: 0.1.0");
  }
  std::string raw;
  if (!snappy::Uncompress(body.data(), body.size(), &raw)) return std::unexpected("bad snappy");
  prometheus::WriteRequest write;
  if (!write.ParseFromString(raw)) return std::unexpected("not a prometheus.WriteRequest");
  std::size_t samples = 0;
  for (const auto& ts : write.timeseries()) samples += static_cast<std::size_t>(ts.samples_size());
  return samples;
}

}  // namespace

int FakeLoki::handle(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  FakeLokiRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers.emplace_back(info->http_headers[i].name, info->http_headers[i].value);
  }
  request.content_type = request.header("Content-Type");
  request.content_encoding = request.header("Content-Encoding");

  std::string body;
  std::vector<char> chunk(64 * 1024);  // heap: civetweb's worker stacks are small
  bool too_big = false;
  while (true) {
    const int n = mg_read(conn, chunk.data(), chunk.size());
    if (n <= 0) break;
    if (body.size() + static_cast<std::size_t>(n) > kMaxBody) too_big = true;
    if (!too_big) body.append(chunk.data(), static_cast<std::size_t>(n));
  }
  request.body_bytes = body.size();

  const auto finish = [&](int status, std::string text, std::chrono::seconds retry_after = {}) {
    request.status = status;
    if (status >= 300) request.error = text;
    {  // recorded before the answer goes out, so a client that has its answer sees the record
      const std::scoped_lock lock(mutex_);
      requests_.push_back(std::move(request));
    }
    changed_.notify_all();
    reply(conn, status, text, retry_after);
    return status;
  };

  if (request.method != "POST") return finish(405, "push wants POST");
  if (too_big) return finish(413, "body over 64 MiB");
  // Options set at start are read without the lock; only the entry limit changes later.
  if (!options_.tenant.empty() && request.header("X-Scope-OrgID") != options_.tenant) {
    return finish(401, "no org id");  // Loki's own words for a missing tenant
  }
  if (!options_.authorization.empty() &&
      request.header("Authorization") != options_.authorization) {
    return finish(401, "unauthorized");
  }
  FakeLokiAnswer answer;
  std::size_t max_entries = 0;
  {
    const std::scoped_lock lock(mutex_);
    max_entries = options_.max_entries_per_request;
    const auto by_tenant = tenant_answers_.find(request.header("X-Scope-OrgID"));
    if (by_tenant != tenant_answers_.end() && by_tenant->second.times != 0) {
      answer = by_tenant->second.answer;
      if (by_tenant->second.times > 0) --by_tenant->second.times;
    } else if (answer_times_ != 0) {
      answer = answer_;
      if (answer_times_ > 0) --answer_times_;
    }
  }
  // Prometheus remote write on /api/v1/write: decoded (its samples count as entries) and
  // answered like a push, but nothing is stored as a stream.
  const char* uri = mg_get_request_info(conn)->local_uri;
  if (uri != nullptr && std::string_view(uri) == "/api/v1/write") {
    auto samples = decodeRemoteWrite(request, body);
    if (!samples) return finish(400, "fake remote write: " + samples.error());
    request.entries = *samples;
    if (answer.status < 200 || answer.status >= 300) {
      return finish(answer.status, "fake answers " + std::to_string(answer.status),
                    answer.retry_after);
    }
    return finish(answer.status, "");
  }
  auto decoded = decodeLokiPush(request.content_type, request.content_encoding, body);
  if (!decoded) return finish(400, "fake loki: " + decoded.error());
  for (const auto& stream : *decoded) request.entries += stream.second.size();
  if (max_entries > 0 && request.entries > max_entries) {
    return finish(413, "request has " + std::to_string(request.entries) + " entries, limit " +
                           std::to_string(max_entries));
  }
  if (answer.hang.count() > 0) {
    std::unique_lock lock(mutex_);
    ++hangs_begun_;
    changed_.notify_all();
    changed_.wait_for(lock, answer.hang, [&] { return stopping_; });
  }
  if (answer.status < 200 || answer.status >= 300) {
    return finish(
        answer.status,
        answer.body.empty() ? "fake loki answers " + std::to_string(answer.status) : answer.body,
        answer.retry_after);
  }
  {
    const std::scoped_lock lock(mutex_);
    const std::string tenant = request.header("X-Scope-OrgID");
    for (const auto& [labels, entries] : *decoded) {
      auto& stored = streams_[labels];
      stored.insert(stored.end(), entries.begin(), entries.end());
      entry_count_ += entries.size();
      auto& of_tenant = tenant_streams_[tenant][labels];
      of_tenant.insert(of_tenant.end(), entries.begin(), entries.end());
      tenant_entry_counts_[tenant] += entries.size();
    }
  }
  if (options_.on_entry) {
    for (const auto& [labels, entries] : *decoded) {
      for (const auto& entry : entries) options_.on_entry(labels, entry);
    }
  }
  return finish(answer.status, "");
}

}  // namespace nodewarden::testing
