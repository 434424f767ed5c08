// The exposition parser follows the Prometheus text format 0.0.4 ("Exposition formats",
// prometheus.io/docs/instrumenting/exposition_formats): metric names [a-zA-Z_:][a-zA-Z0-9_:]*,
// label values with \\, \" and \n escapes, values as Go's ParseFloat takes them (NaN, +Inf, -Inf).
#include "exporters/remote_write/write_request_encoder.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "exporters/remote_write/remote.pb.h"

namespace nodewarden {
namespace {

bool nameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool nameChar(char c) { return nameStart(c) || (c >= '0' && c <= '9'); }

std::string_view readName(std::string_view& s) {
  if (s.empty() || !nameStart(s.front())) return {};
  std::size_t n = 1;
  while (n < s.size() && nameChar(s[n])) ++n;
  const auto name = s.substr(0, n);
  s.remove_prefix(n);
  return name;
}

void skipSpaces(std::string_view& s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
}

bool parseValue(std::string_view text, double& out) {
  if (text == "NaN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (text == "+Inf" || text == "Inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == "-Inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

bool parseExpositionLine(std::string_view s, ExpositionSample& out) {
  out.labels.clear();
  const auto name = readName(s);
  if (name.empty()) return false;
  out.name.assign(name);
  if (!s.empty() && s.front() == '{') {
    s.remove_prefix(1);
    for (;;) {
      skipSpaces(s);
      if (!s.empty() && s.front() == '}') {
        s.remove_prefix(1);
        break;
      }
      const auto key = readName(s);
      if (key.empty() || s.size() < 2 || s[0] != '=' || s[1] != '"') return false;
      s.remove_prefix(2);
      std::string value;
      bool closed = false;
      while (!s.empty()) {
        const char c = s.front();
        s.remove_prefix(1);
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          value.push_back(c);
          continue;
        }
        if (s.empty()) return false;
        const char e = s.front();
        s.remove_prefix(1);
        value.push_back(e == 'n' ? '\n' : e);  // \\ and \" stand for themselves
      }
      if (!closed) return false;
      out.labels.emplace_back(std::string(key), std::move(value));
      skipSpaces(s);
      if (!s.empty() && s.front() == ',') s.remove_prefix(1);
    }
  }
  if (s.empty() || (s.front() != ' ' && s.front() != '\t')) return false;
  skipSpaces(s);
  const auto end = s.find_first_of(" \t");
  // A timestamp after the value is allowed by the format; the cycle's time is used instead.
  return parseValue(s.substr(0, end), out.value);
}

struct WriteRequestEncoder::Request {
  prometheus::WriteRequest message;
  std::uint64_t samples = 0;
};

WriteRequestEncoder::WriteRequestEncoder(std::size_t max_samples_per_send)
    : max_samples_(std::max<std::size_t>(1, max_samples_per_send)),
      request_(std::make_unique<Request>()) {}

WriteRequestEncoder::~WriteRequestEncoder() = default;

void WriteRequestEncoder::begin(std::int64_t timestamp_ms) {
  timestamp_ms_ = timestamp_ms;
  partial_.clear();
  request_->message.Clear();
  request_->samples = 0;
  batches_.clear();
  skipped_ = 0;
  first_skipped_.clear();
}

void WriteRequestEncoder::add(std::string_view chunk) {
  while (!chunk.empty()) {
    const auto nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(chunk);
      return;
    }
    if (partial_.empty()) {
      line(chunk.substr(0, nl));
    } else {
      partial_.append(chunk.substr(0, nl));
      line(partial_);
      partial_.clear();
    }
    chunk.remove_prefix(nl + 1);
  }
}

void WriteRequestEncoder::line(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  std::string_view rest = text;
  skipSpaces(rest);
  if (rest.empty() || rest.front() == '#') return;
  if (!parseExpositionLine(rest, sample_)) {
    if (skipped_++ == 0) first_skipped_.assign(text.substr(0, 200));
    return;
  }
  auto* series = request_->message.add_timeseries();
  auto* name = series->add_labels();
  name->set_name("__name__");
  name->set_value(sample_.name);
  for (auto& [k, v] : sample_.labels) {
    // An empty value is no label at all to Prometheus (a scrape drops it too), and the remote
    // write spec forbids sending one.
    if (v.empty()) continue;
    auto* label = series->add_labels();
    label->set_name(std::move(k));
    label->set_value(std::move(v));
  }
  // Remote write 1.0: labels sorted by name (byte order), so "__name__" goes after capitals.
  std::sort(
      series->mutable_labels()->begin(), series->mutable_labels()->end(),
      [](const prometheus::Label& a, const prometheus::Label& b) { return a.name() < b.name(); });
  auto* s = series->add_samples();
  s->set_value(sample_.value);
  s->set_timestamp(timestamp_ms_);
  if (++request_->samples >= max_samples_) flushRequest();
}

void WriteRequestEncoder::flushRequest() {
  if (request_->samples == 0) return;
  MetricWriteBatch batch;
  batch.samples = request_->samples;
  batch.timestamp_ms = timestamp_ms_;
  request_->message.SerializeToString(&batch.request);
  batches_.push_back(std::move(batch));
  request_->message.Clear();
  request_->samples = 0;
}

std::vector<MetricWriteBatch> WriteRequestEncoder::finish() {
  if (!partial_.empty()) {
    std::string last = std::move(partial_);
    partial_.clear();
    line(last);
  }
  flushRequest();
  return std::move(batches_);
}

}  // namespace nodewarden
