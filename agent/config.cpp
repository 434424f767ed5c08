// Config loading: YAML (yaml-cpp) over the embedded defaults, strict about keys, types and units.
//
// What a reader gets wrong: yaml-cpp reports problems by throwing and is lenient where we must not
// be (duplicate keys are kept, quoted "8" converts to an int, a missing value is null). So the file
// is walked against one schema table below, every key checked, every value's YAML kind checked,
// and yaml-cpp exceptions are caught here and turned into ConfigErrors; none leaves this file.
#include "agent/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "agent/json_log.h"
#include "pipeline/pod_labels.h"

namespace nodewarden {
namespace {

using Duration = std::chrono::milliseconds;

constexpr Duration kMinInterval = std::chrono::seconds(1);
constexpr Duration kMaxInterval = std::chrono::hours(1);
constexpr Duration kMinRootSearchInterval = std::chrono::seconds(1);
constexpr int kMinMaxDepth = 1;
constexpr int kMaxMaxDepth = 32;
constexpr std::size_t kMaxConfigBytes = 1
                                        << 20;  // a config is a few hundred bytes; refuse /dev/zero
constexpr std::size_t kMaxSuggestionDistance = 2;

// --- Schema
// ---------------------------------------------------------------------------------------

struct Field;
using Section = std::span<const Field>;
struct ByteSize {
  std::uint64_t Config::*member;
};
using Target = std::variant<std::string Config::*, std::filesystem::path Config::*,
                            Duration Config::*, bool Config::*, int Config::*, double Config::*,
                            ByteSize, std::vector<std::string> Config::*, Section>;

struct Field {
  std::string_view key;
  Target target;
};

constexpr Field kPathsFields[] = {
    {"cgroup_root", &Config::cgroup_root},
    {"proc_root", &Config::proc_root},
    {"log_root", &Config::log_root},
    {"state_dir", &Config::state_dir},
    {"runtime_state_dirs", &Config::runtime_state_dirs},
};
constexpr Field kCgroupFields[] = {
    {"enabled", &Config::cgroup_enabled},
    {"max_depth", &Config::cgroup_max_depth},
    {"root_search_interval", &Config::cgroup_root_search_interval},
    {"run_delay", &Config::cgroup_run_delay},
};
constexpr Field kNodeFields[] = {
    {"enabled", &Config::node_enabled},
};
constexpr Field kLogsFields[] = {
    {"enabled", &Config::logs_enabled},
    {"max_line_bytes", ByteSize{&Config::logs_max_line_bytes}},
    {"max_open_files", &Config::logs_max_open_files},
    {"rescan_interval", &Config::logs_rescan_interval},
    {"read_compressed", &Config::logs_read_compressed},
    {"max_streams", &Config::logs_max_streams},
    {"batch_bytes", ByteSize{&Config::logs_batch_bytes}},
    {"batch_wait", &Config::logs_batch_wait},
};
constexpr Field kJournalFields[] = {
    {"enabled", &Config::journal_enabled},
    {"dir", &Config::journal_dir},
    {"units", &Config::journal_units},
};
constexpr Field kJobsFields[] = {
    {"enabled", &Config::jobs_enabled},         {"poll_interval", &Config::jobs_poll_interval},
    {"status_wait", &Config::jobs_status_wait}, {"retention", &Config::jobs_retention},
    {"max_recent", &Config::jobs_max_recent},
};
constexpr Field kPodsFields[] = {
    {"runtime_state", &Config::pods_runtime_state},
    {"kubelet", &Config::pods_kubelet},
    {"kubelet_refresh_interval", &Config::pods_kubelet_refresh_interval},
    {"apiserver", &Config::pods_apiserver},
};
constexpr Field kKubernetesFields[] = {
    {"kubelet_url", &Config::kubelet_url},
    {"apiserver_url", &Config::apiserver_url},
    {"token_file", &Config::token_file},
    {"ca_file", &Config::ca_file},
    {"kubelet_insecure_skip_verify", &Config::kubelet_insecure_skip_verify},
    {"pod_labels", &Config::pod_labels},
};
constexpr Field kCollectorsFields[] = {
    {"cgroup", Section(kCgroupFields)},   {"node", Section(kNodeFields)},
    {"pods", Section(kPodsFields)},       {"logs", Section(kLogsFields)},
    {"journal", Section(kJournalFields)}, {"jobs", Section(kJobsFields)},
};
constexpr Field kLokiFields[] = {
    {"url", &Config::loki_url},
    {"tenant", &Config::loki_tenant},
    {"encoding", &Config::loki_encoding},
    {"bearer_token_file", &Config::loki_bearer_token_file},
    {"username", &Config::loki_username},
    {"password_file", &Config::loki_password_file},
    {"ca_file", &Config::loki_ca_file},
    {"insecure_skip_verify", &Config::loki_insecure_skip_verify},
    {"timeout", &Config::loki_timeout},
    {"local_file_max_bytes", ByteSize{&Config::local_log_file_max_bytes}},
};
constexpr Field kRemoteWriteFields[] = {
    {"url", &Config::remote_write_url},
    {"bearer_token_file", &Config::remote_write_bearer_token_file},
    {"username", &Config::remote_write_username},
    {"password_file", &Config::remote_write_password_file},
    {"ca_file", &Config::remote_write_ca_file},
    {"insecure_skip_verify", &Config::remote_write_insecure_skip_verify},
    {"timeout", &Config::remote_write_timeout},
    {"headers", &Config::remote_write_headers},
    {"max_samples_per_send", &Config::remote_write_max_samples_per_send},
    {"spool_max_bytes", ByteSize{&Config::remote_write_spool_max_bytes}},
};
constexpr Field kSpoolFields[] = {
    {"max_bytes", ByteSize{&Config::spool_max_bytes}},
    {"segment_bytes", ByteSize{&Config::spool_segment_bytes}},
};
constexpr Field kDetectorWindowFields[] = {
    {"short", &Config::detector_short_window},
    {"mid", &Config::detector_mid_window},
    {"long", &Config::detector_long_window},
};
constexpr Field kRecommendationFields[] = {
    {"half_life", &Config::detector_half_life},
    {"memory_peak_interval", &Config::detector_memory_peak_interval},
    {"cpu_percentile", &Config::detector_cpu_percentile},
    {"memory_percentile", &Config::detector_memory_percentile},
    {"margin", &Config::detector_margin},
};
constexpr Field kOnsetMinStallFields[] = {
    {"cpu", &Config::detector_onset_min_stall_cpu},
    {"memory", &Config::detector_onset_min_stall_memory},
    {"io", &Config::detector_onset_min_stall_io},
};
constexpr Field kNoisyNeighborFields[] = {
    {"baseline_half_life", &Config::detector_baseline_half_life},
    {"victim_z", &Config::detector_victim_z},
    {"victim_min_stall", &Config::detector_victim_min_stall},
    {"memory_victim_min_stall", &Config::detector_memory_victim_min_stall},
    {"self_throttle_ratio", &Config::detector_self_throttle_ratio},
    {"victim_k", &Config::detector_victim_k},
    {"victim_n", &Config::detector_victim_n},
    {"onset_min_stall", Section(kOnsetMinStallFields)},
    {"correlation_window", &Config::detector_correlation_window},
    {"episode_lead", &Config::detector_episode_lead},
    {"antagonist_threshold", &Config::detector_antagonist_threshold},
};
constexpr Field kDetectorFields[] = {
    {"enabled", &Config::detector_enabled},
    {"windows", Section(kDetectorWindowFields)},
    {"metrics_windows", &Config::detector_metrics_windows},
    {"max_containers", &Config::detector_max_containers},
    {"recommendation", Section(kRecommendationFields)},
    {"noisy_neighbor", Section(kNoisyNeighborFields)},
};
constexpr Field kPlacementFields[] = {
    {"enabled", &Config::placement_enabled},
    {"dry_run", &Config::placement_dry_run},
    {"condition_type", &Config::placement_condition_type},
    {"annotation_key", &Config::placement_annotation_key},
    {"taint_key", &Config::placement_taint_key},
    {"on_score", &Config::placement_on_score},
    {"off_score", &Config::placement_off_score},
    {"on_hold", &Config::placement_on_hold},
    {"off_hold", &Config::placement_off_hold},
    {"min_taint_duration", &Config::placement_min_taint_duration},
    {"max_backoff", &Config::placement_max_backoff},
    {"timeout", &Config::placement_timeout},
};
constexpr Field kTlsFields[] = {
    {"cert_file", &Config::tls_cert_file},
    {"key_file", &Config::tls_key_file},
    {"client_ca_file", &Config::tls_client_ca_file},
};
constexpr Field kRootFields[] = {
    {"listen", &Config::listen},
    {"tls", Section(kTlsFields)},
    {"node_name", &Config::node_name},
    {"interval", &Config::interval},
    {"log_level", &Config::log_level},
    {"paths", Section(kPathsFields)},
    {"collectors", Section(kCollectorsFields)},
    {"loki", Section(kLokiFields)},
    {"remote_write", Section(kRemoteWriteFields)},
    {"spool", Section(kSpoolFields)},
    {"kubernetes", Section(kKubernetesFields)},
    {"detector", Section(kDetectorFields)},
    {"placement", Section(kPlacementFields)},
};

std::string joinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out(parent);
  out += '.';
  out += key;
  return out;
}

void collectPaths(Section section, const std::string& parent, std::vector<std::string>& out) {
  for (const Field& field : section) {
    std::string path = joinPath(parent, field.key);
    out.push_back(path);
    if (const auto* child = std::get_if<Section>(&field.target)) collectPaths(*child, path, out);
  }
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "unknown key" plus the most useful hint: a near miss in the same section, else the same name in
// another section (a key indented at the wrong level), else the list of keys that are allowed.
std::string unknownKeyReason(std::string_view key, Section section) {
  std::string reason = "unknown key \"" + std::string(key) + "\"";
  const Field* closest = nullptr;
  std::size_t best = kMaxSuggestionDistance + 1;
  for (const Field& field : section) {
    const std::size_t distance = editDistance(key, field.key);
    if (distance < best) {
      best = distance;
      closest = &field;
    }
  }
  if (closest != nullptr) return reason + " (did you mean \"" + std::string(closest->key) + "\"?)";

  std::vector<std::string> all;
  collectPaths(kRootFields, "", all);
  for (const std::string& path : all) {
    const std::size_t dot = path.rfind('.');
    const std::string_view last =
        dot == std::string::npos ? std::string_view(path) : std::string_view(path).substr(dot + 1);
    if (last == key) {
      return reason + " (did you mean \"" + path + "\"?)";
    }
  }

  reason += " (known keys:";
  for (std::size_t i = 0; i < section.size(); ++i) {
    reason += i == 0 ? " " : ", ";
    reason += section[i].key;
  }
  return reason + ")";
}

// --- Walking the document
// -------------------------------------------------------------------------

std::string_view kindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

int lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// yaml-cpp gives quoted scalars the non-specific tag "!" (YAML 1.2 section 6.9.1): "8" is a string.
bool isQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string inQuotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

// Walks one document into a Config. The first error wins: once error_ is set, later reads do
// nothing, so nested reads need not pass results back up.
class ConfigParser {
 public:
  explicit ConfigParser(const std::string& file) : file_(file) {}

  void parseSection(const YAML::Node& node, int line, const std::string& path, Section section,
                    Config& config) {
    if (node.IsNull()) return;  // "collectors:" with everything below commented out
    if (!node.IsMap()) {
      fail(line, path,
           "expected a mapping of settings, found " + std::string(kindName(node)) +
               (node.IsScalar() ? " " + inQuotes(node.Scalar()) : ""));
      return;
    }
    std::map<std::string, int, std::less<>> seen;  // key -> line where it was first set
    // Range-for keeps each dereferenced entry alive for the body; with an explicit iterator,
    // it->first refers into a temporary proxy and dangles (GCC's -Wdangling-pointer catches it).
    for (const auto& entry : node) {
      if (error_) return;
      const YAML::Node& key = entry.first;
      const int key_line = lineOf(key);
      if (!key.IsScalar()) {
        fail(key_line, path, "keys must be plain names, found " + std::string(kindName(key)));
        return;
      }
      const std::string field_path = joinPath(path, key.Scalar());
      if (const auto first = seen.find(key.Scalar()); first != seen.end()) {
        fail(key_line, field_path,
             "duplicate key (first set on line " + std::to_string(first->second) + ")");
        return;
      }
      seen.emplace(key.Scalar(), key_line);
      const auto field = std::ranges::find(section, std::string_view(key.Scalar()), &Field::key);
      if (field == section.end()) {
        fail(key_line, field_path, unknownKeyReason(key.Scalar(), section));
        return;
      }
      lines_[field_path] = key_line;
      // Errors about a value point at its key's line: for a missing value yaml-cpp marks the next
      // token, which may be lines further down.
      std::visit(
          [&](const auto& target) { read(entry.second, key_line, field_path, target, config); },
          field->target);
    }
  }

  [[nodiscard]] const std::optional<ConfigError>& error() const { return error_; }

  // Line of the key that set a field, 0 if the document did not set it.
  [[nodiscard]] int lineOfField(const std::string& field) const {
    const auto it = lines_.find(field);
    return it == lines_.end() ? 0 : it->second;
  }

 private:
  void fail(int line, const std::string& field, std::string reason) {
    if (!error_) error_ = ConfigError{file_, line, field, std::move(reason)};
  }

  void read(const YAML::Node& node, int line, const std::string& path, Section section,
            Config& config) {
    parseSection(node, line, path, section, config);
  }

  void read(const YAML::Node& node, int line, const std::string& path, std::string Config::*target,
            Config& config) {
    if (auto text = scalarText(node, line, path, "a string")) config.*target = std::move(*text);
  }

  void read(const YAML::Node& node, int line, const std::string& path,
            std::filesystem::path Config::*target, Config& config) {
    if (auto text = scalarText(node, line, path, "a path")) config.*target = std::move(*text);
  }

  void read(const YAML::Node& node, int line, const std::string& path, Duration Config::*target,
            Config& config) {
    const auto text = scalarText(node, line, path, "a duration such as \"10s\"");
    if (!text) return;
    if (const auto duration = parseDuration(*text)) {
      config.*target = *duration;
    } else {
      fail(line, path, duration.error());
    }
  }

  void read(const YAML::Node& node, int line, const std::string& path, bool Config::*target,
            Config& config) {
    bool value = false;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<bool>::decode(node, value)) {
      fail(line, path, "expected true or false, found " + describe(node));
      return;
    }
    config.*target = value;
  }

  void read(const YAML::Node& node, int line, const std::string& path, ByteSize target,
            Config& config) {
    const auto text = scalarText(node, line, path, "a size such as \"1MiB\"");
    if (!text) return;
    if (isQuoted(node)) {
      fail(line, path, "expected a size such as 1MiB, found " + describe(node));
      return;
    }
    if (const auto size = parseByteSize(*text)) {
      config.*(target.member) = *size;
    } else {
      fail(line, path, size.error());
    }
  }

  void read(const YAML::Node& node, int line, const std::string& path,
            std::vector<std::string> Config::*target, Config& config) {
    if (!node.IsSequence()) {
      fail(line, path, "expected a list of strings, found " + describe(node));
      return;
    }
    std::vector<std::string> out;
    for (const auto& item : node) {
      if (!item.IsScalar()) {
        fail(lineOf(item), path,
             "expected a list of strings, found an item that is " + std::string(kindName(item)));
        return;
      }
      // validateConfig names a bad item "<path>[<index>]": its own line, not the key's.
      lines_[path + "[" + std::to_string(out.size()) + "]"] = lineOf(item);
      out.push_back(item.Scalar());
    }
    config.*target = std::move(out);
  }

  void read(const YAML::Node& node, int line, const std::string& path, int Config::*target,
            Config& config) {
    int value = 0;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<int>::decode(node, value)) {
      fail(line, path, "expected an integer, found " + describe(node));
      return;
    }
    config.*target = value;
  }

  void read(const YAML::Node& node, int line, const std::string& path, double Config::*target,
            Config& config) {
    double value = 0;
    if (!node.IsScalar() || isQuoted(node) || !YAML::convert<double>::decode(node, value) ||
        !std::isfinite(value)) {
      fail(line, path, "expected a number, found " + describe(node));
      return;
    }
    config.*target = value;
  }

  std::optional<std::string> scalarText(const YAML::Node& node, int line, const std::string& path,
                                        std::string_view expected) {
    if (!node.IsScalar()) {
      fail(line, path, "expected " + std::string(expected) + ", found " + describe(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  static std::string describe(const YAML::Node& node) {
    if (!node.IsScalar()) return std::string(kindName(node));
    return (isQuoted(node) ? "the quoted string " : "") + inQuotes(node.Scalar());
  }

  std::string file_;
  std::optional<ConfigError> error_;
  std::map<std::string, int, std::less<>> lines_;
};

// --- Validation helpers
// ---------------------------------------------------------------------------

std::string formatDuration(Duration duration) {
  std::int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  constexpr std::pair<std::int64_t, std::string_view> kUnits[] = {
      {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  for (const auto& [size, name] : kUnits) {
    if (ms >= size) {
      out += std::to_string(ms / size);
      out += name;
      ms %= size;
    }
  }
  return out;
}

// host:port, host:port with an IPv6 host in brackets ([::1]:9465). Returns the reason it is not.
std::optional<std::string> checkListen(std::string_view listen) {
  constexpr std::string_view kExample = " (expected host:port, e.g. 0.0.0.0:9465 or [::1]:9465)";
  std::string_view host;
  std::string_view port;
  if (listen.starts_with('[')) {
    const std::size_t close = listen.find(']');
    if (close == std::string_view::npos) return "unterminated \"[\" in " + inQuotes(listen);
    host = listen.substr(1, close - 1);
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return "missing port in " + inQuotes(listen) + std::string(kExample);
    }
    port = listen.substr(close + 2);
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      return "missing port in " + inQuotes(listen) + std::string(kExample);
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "an IPv6 address must be in brackets, e.g. [::1]:9465, got " + inQuotes(listen);
    }
  }
  if (host.empty()) {
    return "missing host in " + inQuotes(listen) + " (use 0.0.0.0 for all interfaces)";
  }
  if (std::ranges::any_of(host, [](char c) { return c == ' ' || c == '\t' || c == '/'; })) {
    return "invalid host in " + inQuotes(listen);
  }
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::ranges::all_of(port, [](char c) { return c >= '0' && c <= '9'; });
  int number = 0;
  for (const char c : port) number = number * 10 + (c - '0');
  if (!digits || number < 1 || number > 65535) {
    return "port must be a number from 1 to 65535, got " + inQuotes(port);
  }
  return std::nullopt;
}

std::optional<std::string> checkDurationRange(Duration value, Duration min,
                                              std::optional<Duration> max) {
  if (value >= min && (!max || value <= *max)) return std::nullopt;
  if (max) {
    return "must be between " + formatDuration(min) + " and " + formatDuration(*max) + ", got " +
           formatDuration(value);
  }
  return "must be at least " + formatDuration(min) + ", got " + formatDuration(value);
}

// kubernetes.pod_labels: valid label keys, each once, no two with the same sanitized name.
std::optional<ConfigError> checkPodLabels(const std::vector<std::string>& keys) {
  const auto fail = [](std::size_t index, std::string reason) {
    return ConfigError{"", 0, "kubernetes.pod_labels[" + std::to_string(index) + "]",
                       std::move(reason)};
  };
  std::map<std::string, std::size_t, std::less<>> names;  // metric label name -> index
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    if (auto valid = checkPodLabelKey(key); !valid) {
      return fail(i, inQuotes(key) + " is not a Kubernetes label key: " + valid.error());
    }
    const auto [it, added] = names.emplace(podLabelMetricName(key), i);
    if (added) continue;
    const std::string& first = keys[it->second];
    if (first == key) return fail(i, inQuotes(key) + " is listed twice");
    return fail(i, inQuotes(key) + " and " + inQuotes(first) + " both become the label name " +
                       sanitizeLabelName(key) + "; list only one of them");
  }
  return std::nullopt;
}

// detector.* and placement.*: windows in order, fractions in range, k of n possible, on above off.
// remote_write.*: a usable URL, one kind of credentials, well-formed extra headers.
std::optional<ConfigError> checkRemoteWrite(const Config& config) {
  const auto error = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  const std::string& url = config.remote_write_url;
  if (!url.empty() && !url.starts_with("http://") && !url.starts_with("https://")) {
    return error("remote_write.url", "must start with http:// or https://, got " + inQuotes(url));
  }
  if (auto reason = checkDurationRange(config.remote_write_timeout, std::chrono::milliseconds(100),
                                       std::chrono::minutes(10))) {
    return error("remote_write.timeout", *reason);
  }
  if (!config.remote_write_username.empty() && !config.remote_write_bearer_token_file.empty()) {
    return error("remote_write.username", "basic auth and a bearer token cannot both be set");
  }
  if (config.remote_write_username.empty() != config.remote_write_password_file.empty()) {
    return error(config.remote_write_username.empty() ? "remote_write.username"
                                                      : "remote_write.password_file",
                 "username and password_file go together");
  }
  for (const auto& header : config.remote_write_headers) {
    const auto colon = header.find(':');
    const bool bad_name =
        colon == 0 || colon == std::string::npos || header.find_first_of(" \t") < colon;
    if (bad_name || header.find_first_of("\r\n") != std::string::npos) {
      return error("remote_write.headers",
                   "each entry must be \"Name: value\" on one line, got " + inQuotes(header));
    }
  }
  return std::nullopt;
}

std::optional<ConfigError> checkDetector(const Config& c) {
  const auto fail = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  const auto number = [](double v) {
    std::string s = std::to_string(v);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  for (const auto& [field, value, lo, hi] :
       {std::tuple{"detector.windows.short", c.detector_short_window, Duration(1000),
                   Duration(3'600'000)},
        std::tuple{"detector.windows.mid", c.detector_mid_window, Duration(1000),
                   Duration(3'600'000)},
        std::tuple{"detector.windows.long", c.detector_long_window, Duration(1000),
                   Duration(3'600'000)},
        std::tuple{"detector.recommendation.half_life", c.detector_half_life, Duration(60'000),
                   Duration(30LL * 86'400'000)},
        std::tuple{"detector.recommendation.memory_peak_interval", c.detector_memory_peak_interval,
                   Duration(1000), Duration(7LL * 86'400'000)},
        std::tuple{"detector.noisy_neighbor.baseline_half_life", c.detector_baseline_half_life,
                   Duration(1000), Duration(86'400'000)},
        std::tuple{"detector.noisy_neighbor.correlation_window", c.detector_correlation_window,
                   Duration(1000), Duration(3'600'000)},
        std::tuple{"detector.noisy_neighbor.episode_lead", c.detector_episode_lead, Duration(1000),
                   Duration(3'600'000)},
        std::tuple{"placement.on_hold", c.placement_on_hold, Duration(0), Duration(86'400'000)},
        std::tuple{"placement.off_hold", c.placement_off_hold, Duration(0), Duration(86'400'000)},
        std::tuple{"placement.min_taint_duration", c.placement_min_taint_duration, Duration(0),
                   Duration(86'400'000)},
        std::tuple{"placement.max_backoff", c.placement_max_backoff, Duration(100),
                   Duration(3'600'000)},
        std::tuple{"placement.timeout", c.placement_timeout, Duration(100), Duration(600'000)}}) {
    if (auto reason = checkDurationRange(value, lo, hi)) return fail(field, *reason);
  }
  if (c.detector_short_window > c.detector_mid_window ||
      c.detector_mid_window > c.detector_long_window) {
    return fail("detector.windows", "must be in order short <= mid <= long, got " +
                                        formatDuration(c.detector_short_window) + ", " +
                                        formatDuration(c.detector_mid_window) + ", " +
                                        formatDuration(c.detector_long_window));
  }
  if (c.detector_long_window / c.interval > 3600) {
    return fail("detector.windows.long", "holds at most 3600 intervals of " +
                                             formatDuration(c.interval) + ", got " +
                                             formatDuration(c.detector_long_window));
  }
  for (std::size_t i = 0; i < c.detector_metrics_windows.size(); ++i) {
    const std::string& w = c.detector_metrics_windows[i];
    if (w != "short" && w != "mid" && w != "long") {
      return fail("detector.metrics_windows[" + std::to_string(i) + "]",
                  "must be short, mid or long, got " + inQuotes(w));
    }
  }
  if (c.detector_max_containers < 1 || c.detector_max_containers > 100000) {
    return fail("detector.max_containers",
                "must be between 1 and 100000, got " + std::to_string(c.detector_max_containers));
  }
  for (const auto& [field, value, lo, hi] :
       {std::tuple{"detector.recommendation.cpu_percentile", c.detector_cpu_percentile, 0.01, 1.0},
        std::tuple{"detector.recommendation.memory_percentile", c.detector_memory_percentile, 0.01,
                   1.0},
        std::tuple{"detector.recommendation.margin", c.detector_margin, 0.0, 10.0},
        std::tuple{"detector.noisy_neighbor.victim_z", c.detector_victim_z, 0.0, 100.0},
        std::tuple{"detector.noisy_neighbor.victim_min_stall", c.detector_victim_min_stall, 0.0,
                   1.0},
        std::tuple{"detector.noisy_neighbor.memory_victim_min_stall",
                   c.detector_memory_victim_min_stall, 0.0, 1.0},
        std::tuple{"detector.noisy_neighbor.self_throttle_ratio", c.detector_self_throttle_ratio,
                   0.0, 1.0},
        std::tuple{"detector.noisy_neighbor.onset_min_stall.cpu", c.detector_onset_min_stall_cpu,
                   0.0, 1.0},
        std::tuple{"detector.noisy_neighbor.onset_min_stall.memory",
                   c.detector_onset_min_stall_memory, 0.0, 1.0},
        std::tuple{"detector.noisy_neighbor.onset_min_stall.io", c.detector_onset_min_stall_io, 0.0,
                   1.0},
        std::tuple{"detector.noisy_neighbor.antagonist_threshold", c.detector_antagonist_threshold,
                   -1.0, 1.0},
        std::tuple{"placement.on_score", c.placement_on_score, 0.0, 1.0},
        std::tuple{"placement.off_score", c.placement_off_score, 0.0, 1.0}}) {
    if (value < lo || value > hi) {
      return fail(
          field, "must be between " + number(lo) + " and " + number(hi) + ", got " + number(value));
    }
  }
  if (c.detector_victim_n < 1 || c.detector_victim_n > 64) {
    return fail("detector.noisy_neighbor.victim_n",
                "must be between 1 and 64, got " + std::to_string(c.detector_victim_n));
  }
  if (c.detector_victim_k < 1 || c.detector_victim_k > c.detector_victim_n) {
    return fail("detector.noisy_neighbor.victim_k",
                "must be between 1 and victim_n (" + std::to_string(c.detector_victim_n) +
                    "), got " + std::to_string(c.detector_victim_k));
  }
  if (c.placement_enabled && !c.detector_enabled) {
    return fail("placement.enabled", "needs detector.enabled: the feed publishes its verdicts");
  }
  if (c.placement_off_score > c.placement_on_score) {
    return fail("placement.off_score", "must not be above placement.on_score (" +
                                           number(c.placement_on_score) + "), got " +
                                           number(c.placement_off_score));
  }
  for (const auto& [field, value] :
       {std::pair{"placement.condition_type", &c.placement_condition_type},
        std::pair{"placement.annotation_key", &c.placement_annotation_key},
        std::pair{"placement.taint_key", &c.placement_taint_key}}) {
    if (value->empty()) return fail(field, "must not be empty");
    if (std::string_view(field) != "placement.condition_type") {
      if (auto valid = checkPodLabelKey(*value); !valid) {
        return fail(field, inQuotes(*value) + " is not a Kubernetes key: " + valid.error());
      }
    }
  }
  return std::nullopt;
}

// --- Reading files ----------------------------------------------------------------------------

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::string errnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// tls.*: the certificate and key come together, and every file named is readable now (what is in
// them is checked when the listener loads them).
std::optional<ConfigError> checkTls(const Config& config) {
  const auto error = [](std::string field, std::string reason) {
    return ConfigError{"", 0, std::move(field), std::move(reason)};
  };
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return config.tls_cert_file.empty()
               ? error("tls.cert_file", "must be set when tls.key_file is (both or neither)")
               : error("tls.key_file", "must be set when tls.cert_file is (both or neither)");
  }
  if (!config.tls_client_ca_file.empty() && config.tls_cert_file.empty()) {
    return error("tls.client_ca_file", "needs tls.cert_file and tls.key_file");
  }
  for (const auto& [field, path] : {std::pair{"tls.cert_file", &config.tls_cert_file},
                                    std::pair{"tls.key_file", &config.tls_key_file},
                                    std::pair{"tls.client_ca_file", &config.tls_client_ca_file}}) {
    if (path->empty()) continue;
    const FileDescriptor fd(::open(path->c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      return error(field, "cannot read " + inQuotes(path->string()) + ": " + errnoText(errno));
    }
  }
  return std::nullopt;
}

}  // namespace

std::string ConfigError::message() const {
  std::string out;
  if (!file.empty()) {
    out = file;
    if (line > 0) out += ":" + std::to_string(line);
    out += ": ";
  } else if (line > 0) {
    out = "line " + std::to_string(line) + ": ";
  }
  if (!field.empty()) out += field + ": ";
  return out + reason;
}

std::expected<std::uint64_t, std::string> parseByteSize(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return std::unexpected("invalid size " + inQuotes(text) + ": " + std::string(why));
  };
  std::size_t pos = 0;
  std::uint64_t value = 0;
  bool overflow = false;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    overflow |= __builtin_mul_overflow(value, std::uint64_t{10}, &value);
    overflow |= __builtin_add_overflow(value, static_cast<std::uint64_t>(text[pos] - '0'), &value);
    ++pos;
  }
  if (pos == 0) return invalid("expected a number, e.g. \"1MiB\" or \"65536\"");
  const std::string_view unit = text.substr(pos);
  struct Unit {
    std::string_view name;
    std::uint64_t factor;
  };
  constexpr Unit kUnits[] = {{"", 1},
                             {"B", 1},
                             {"KiB", 1ULL << 10},
                             {"MiB", 1ULL << 20},
                             {"GiB", 1ULL << 30},
                             {"TiB", 1ULL << 40}};
  const auto u = std::ranges::find(kUnits, unit, &Unit::name);
  if (u == std::end(kUnits)) return invalid("unknown unit (use B, KiB, MiB, GiB or TiB)");
  overflow |= __builtin_mul_overflow(value, u->factor, &value);
  if (overflow) return invalid("too large");
  return value;
}

std::expected<Duration, std::string> parseDuration(std::string_view text) {
  const auto invalid = [&](std::string_view why) {
    return std::unexpected("invalid duration " + inQuotes(text) + ": " + std::string(why));
  };
  if (text.empty()) return invalid("empty (write e.g. \"10s\")");
  if (text.front() == '-') return invalid("must not be negative");

  struct Unit {
    std::string_view name;
    std::int64_t ms;
  };
  // Largest first; "m" is minutes, so "ms" must be matched by exact name, not prefix.
  constexpr Unit kUnits[] = {{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  constexpr std::int64_t kMax = std::numeric_limits<Duration::rep>::max();
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto is_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };

  std::int64_t total = 0;
  std::size_t next_unit = 0;  // index in kUnits of the smallest unit still allowed
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!is_digit(text[pos])) return invalid("expected a number at " + inQuotes(text.substr(pos)));
    std::int64_t whole = 0;
    bool overflow = false;
    for (; pos < text.size() && is_digit(text[pos]); ++pos) {
      overflow |= __builtin_mul_overflow(whole, 10, &whole);
      overflow |= __builtin_add_overflow(whole, text[pos] - '0', &whole);
    }
    std::string_view fraction;
    if (pos < text.size() && text[pos] == '.') {
      const std::size_t start = ++pos;
      while (pos < text.size() && is_digit(text[pos])) ++pos;
      fraction = text.substr(start, pos - start);
      if (fraction.empty()) return invalid("expected digits after \".\"");
    }
    const std::size_t unit_start = pos;
    while (pos < text.size() && is_letter(text[pos])) ++pos;
    const std::string_view unit_name = text.substr(unit_start, pos - unit_start);
    if (unit_name.empty()) {
      return invalid(unit_start == text.size()
                         ? "missing unit (use h, m, s or ms, e.g. \"10s\")"
                         : "expected a unit at " + inQuotes(text.substr(unit_start)));
    }
    const auto unit = std::ranges::find(kUnits, unit_name, &Unit::name);
    if (unit == std::end(kUnits)) {
      return invalid("unknown unit " + inQuotes(unit_name) + " (use h, m, s or ms)");
    }
    const auto unit_index = static_cast<std::size_t>(unit - std::begin(kUnits));
    if (unit_index < next_unit) return invalid("units must go from largest to smallest, each once");
    next_unit = unit_index + 1;

    std::int64_t value = 0;
    overflow |= __builtin_mul_overflow(whole, unit->ms, &value);
    // A fraction of 8+ significant digits can never be a whole number of milliseconds of any of
    // these units (3600000 = 2^7 * 3^2 * 5^5), so bounding it also keeps the arithmetic small.
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.size() > 7) return invalid("finer than a millisecond");
    std::int64_t numerator = 0;
    std::int64_t denominator = 1;
    for (const char c : fraction) {
      numerator = numerator * 10 + (c - '0');
      denominator *= 10;
    }
    numerator *= unit->ms;
    if (numerator % denominator != 0) return invalid("finer than a millisecond");
    overflow |= __builtin_add_overflow(value, numerator / denominator, &value);
    overflow |= __builtin_add_overflow(total, value, &total);
    if (overflow || total > kMax) return invalid("too large");
  }
  return Duration(total);
}

std::expected<Config, ConfigError> parseConfig(const std::string& yaml_text,
                                               const std::string& file) {
  Config config;
  ConfigParser parser(file);
  try {
    const std::vector<YAML::Node> documents = YAML::LoadAll(yaml_text);
    if (documents.size() > 1) {
      return std::unexpected(
          ConfigError{file, lineOf(documents[1]), "",
                      "expected one YAML document, found " + std::to_string(documents.size())});
    }
    if (!documents.empty()) {
      const YAML::Node& root = documents.front();
      if (!root.IsNull() && !root.IsMap()) {
        return std::unexpected(ConfigError{
            file, lineOf(root), "",
            "the top level must be a mapping of settings, found " + std::string(kindName(root))});
      }
      parser.parseSection(root, lineOf(root), "", kRootFields, config);
    }
  } catch (const YAML::Exception& e) {
    return std::unexpected(
        ConfigError{file, e.mark.is_null() ? 0 : e.mark.line + 1, "", "invalid YAML: " + e.msg});
  }
  if (parser.error()) return std::unexpected(*parser.error());

  if (auto valid = validateConfig(config); !valid) {
    ConfigError error = std::move(valid.error());
    error.file = file;
    error.line = parser.lineOfField(error.field);
    return std::unexpected(std::move(error));
  }
  return config;
}

std::expected<Config, ConfigError> loadConfigFile(const std::filesystem::path& path) {
  const std::string file = path.string();
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return std::unexpected(ConfigError{file, 0, "", "cannot open: " + errnoText(errno)});
  }
  std::string text;
  std::array<char, 8192> buffer;
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::unexpected(ConfigError{file, 0, "", "cannot read: " + errnoText(errno)});
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      return std::unexpected(ConfigError{
          file, 0, "", "larger than " + std::to_string(kMaxConfigBytes) + " bytes; not a config"});
    }
  }
  return parseConfig(text, file);
}

std::expected<void, ConfigError> validateConfig(const Config& config) {
  const auto fail = [](std::string field, std::string reason) {
    return std::unexpected(ConfigError{"", 0, std::move(field), std::move(reason)});
  };
  if (auto reason = checkListen(config.listen)) return fail("listen", *reason);
  if (auto error = checkTls(config)) return std::unexpected(std::move(*error));
  if (auto reason = checkDurationRange(config.interval, kMinInterval, kMaxInterval)) {
    return fail("interval", *reason);
  }
  if (auto level = parseLogLevel(config.log_level); !level) return fail("log_level", level.error());

  const std::pair<std::string_view, const std::filesystem::path*> paths[] = {
      {"paths.cgroup_root", &config.cgroup_root},
      {"paths.proc_root", &config.proc_root},
      {"paths.log_root", &config.log_root},
      {"paths.state_dir", &config.state_dir},
  };
  for (const auto& [field, path] : paths) {
    if (path->empty()) return fail(std::string(field), "must not be empty");
  }

  if (config.cgroup_max_depth < kMinMaxDepth || config.cgroup_max_depth > kMaxMaxDepth) {
    return fail("collectors.cgroup.max_depth", "must be between " + std::to_string(kMinMaxDepth) +
                                                   " and " + std::to_string(kMaxMaxDepth) +
                                                   ", got " +
                                                   std::to_string(config.cgroup_max_depth));
  }
  if (auto reason = checkDurationRange(config.cgroup_root_search_interval, kMinRootSearchInterval,
                                       std::nullopt)) {
    return fail("collectors.cgroup.root_search_interval", *reason);
  }
  const auto between = [&](std::string field, std::uint64_t value, std::uint64_t lo,
                           std::uint64_t hi) -> std::optional<ConfigError> {
    if (value >= lo && value <= hi) return std::nullopt;
    return ConfigError{"", 0, std::move(field),
                       "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                           ", got " + std::to_string(value)};
  };
  const std::optional<ConfigError> ranges[] = {
      between("collectors.logs.max_line_bytes", config.logs_max_line_bytes, 1024, 64ULL << 20),
      between("collectors.logs.max_open_files",
              static_cast<std::uint64_t>(std::max(0, config.logs_max_open_files)), 4, 1 << 20),
      between("collectors.logs.max_streams",
              static_cast<std::uint64_t>(std::max(0, config.logs_max_streams)), 1, 1 << 20),
      between("collectors.logs.batch_bytes", config.logs_batch_bytes, 1024, 64ULL << 20),
      between("spool.segment_bytes", config.spool_segment_bytes, 64 * 1024, 1ULL << 30),
      between("spool.max_bytes", config.spool_max_bytes, 4 * config.logs_batch_bytes, 1ULL << 40),
      between("collectors.jobs.max_recent",
              static_cast<std::uint64_t>(std::max(0, config.jobs_max_recent)), 1, 100000),
      between("loki.local_file_max_bytes", config.local_log_file_max_bytes, 1 << 20, 1ULL << 40),
      between("remote_write.max_samples_per_send",
              static_cast<std::uint64_t>(std::max(0, config.remote_write_max_samples_per_send)), 1,
              1000000),
      between("remote_write.spool_max_bytes", config.remote_write_spool_max_bytes, 1 << 20,
              1ULL << 40),
  };
  for (const auto& r : ranges) {
    if (r) return std::unexpected(*r);
  }
  if (auto reason = checkDurationRange(config.logs_batch_wait, std::chrono::milliseconds(10),
                                       std::chrono::minutes(1))) {
    return fail("collectors.logs.batch_wait", *reason);
  }
  if (auto reason = checkDurationRange(config.logs_rescan_interval, std::chrono::milliseconds(100),
                                       std::nullopt)) {
    return fail("collectors.logs.rescan_interval", *reason);
  }
  for (const auto& [field, value, lo, hi] :
       {std::tuple{"collectors.pods.kubelet_refresh_interval", config.pods_kubelet_refresh_interval,
                   std::chrono::milliseconds(1000), std::chrono::milliseconds(600'000)},
        std::tuple{"collectors.jobs.poll_interval", config.jobs_poll_interval,
                   std::chrono::milliseconds(100), std::chrono::milliseconds(60'000)},
        std::tuple{"collectors.jobs.status_wait", config.jobs_status_wait,
                   std::chrono::milliseconds(1000), std::chrono::milliseconds(3'600'000)},
        std::tuple{"collectors.jobs.retention", config.jobs_retention,
                   std::chrono::milliseconds(60'000),
                   std::chrono::milliseconds(30LL * 86'400'000)}}) {
    if (auto reason = checkDurationRange(value, lo, hi)) return fail(field, *reason);
  }
  if (auto reason = checkDurationRange(config.loki_timeout, std::chrono::milliseconds(100),
                                       std::chrono::minutes(10))) {
    return fail("loki.timeout", *reason);
  }
  if (config.loki_encoding != "protobuf" && config.loki_encoding != "json") {
    return fail("loki.encoding", "must be protobuf or json, got " + inQuotes(config.loki_encoding));
  }
  if (!config.loki_url.empty() && !config.loki_url.starts_with("http://") &&
      !config.loki_url.starts_with("https://")) {
    return fail("loki.url",
                "must start with http:// or https://, got " + inQuotes(config.loki_url));
  }
  for (const auto& [field, url] : {std::pair{"kubernetes.kubelet_url", &config.kubelet_url},
                                   std::pair{"kubernetes.apiserver_url", &config.apiserver_url}}) {
    if (!url->empty() && !url->starts_with("https://") && !url->starts_with("http://")) {
      return fail(field, "must start with https:// or http://, got " + inQuotes(*url));
    }
  }
  if (!config.loki_username.empty() && !config.loki_bearer_token_file.empty()) {
    return fail("loki.username", "basic auth and a bearer token cannot both be set");
  }
  if (auto error = checkRemoteWrite(config)) return std::unexpected(std::move(*error));
  if (auto error = checkPodLabels(config.pod_labels)) return std::unexpected(std::move(*error));
  if (auto error = checkDetector(config)) return std::unexpected(std::move(*error));
  return {};
}

std::string defaultConfigYaml() {
  return R"(listen: 0.0.0.0:9465
tls:
  cert_file: ""
  key_file: ""
  client_ca_file: ""
node_name: ""
interval: 10s
log_level: info
paths:
  cgroup_root: /sys/fs/cgroup
  proc_root: /proc
  log_root: /var/log/pods
  state_dir: /var/lib/nodewarden
  runtime_state_dirs: [/run/containerd, /run/containers/storage]
collectors:
  cgroup:
    enabled: true
    max_depth: 8
    root_search_interval: 60s
    run_delay: true
  node:
    enabled: true
  pods:
    runtime_state: true
    kubelet: true
    kubelet_refresh_interval: 10s
    apiserver: true
  logs:
    enabled: true
    max_line_bytes: 256KiB
    max_open_files: 1024
    rescan_interval: 10s
    read_compressed: false
    max_streams: 10000
    batch_bytes: 1MiB
    batch_wait: 1s
  journal:
    enabled: true
    dir: /var/log/journal
    units: [kubelet.service, containerd.service, crio.service, docker.service]
  jobs:
    enabled: true
    poll_interval: 1s
    status_wait: 30s
    retention: 6h
    max_recent: 1000
loki:
  url: ""
  tenant: ""
  encoding: protobuf
  bearer_token_file: ""
  username: ""
  password_file: ""
  ca_file: ""
  insecure_skip_verify: false
  timeout: 10s
  local_file_max_bytes: 64MiB
remote_write:
  url: ""
  bearer_token_file: ""
  username: ""
  password_file: ""
  ca_file: ""
  insecure_skip_verify: false
  timeout: 30s
  headers: []
  max_samples_per_send: 2000
  spool_max_bytes: 256MiB
spool:
  max_bytes: 512MiB
  segment_bytes: 16MiB
kubernetes:
  kubelet_url: ""
  apiserver_url: ""
  token_file: ""
  ca_file: ""
  kubelet_insecure_skip_verify: false
  pod_labels: []
detector:
  enabled: true
  windows:
    short: 10s
    mid: 1m
    long: 5m
  metrics_windows: [mid]
  max_containers: 2000
  recommendation:
    half_life: 24h
    memory_peak_interval: 1h
    cpu_percentile: 0.9
    memory_percentile: 0.95
    margin: 0.15
  noisy_neighbor:
    baseline_half_life: 10m
    victim_z: 3
    victim_min_stall: 0.15
    memory_victim_min_stall: 0.1
    self_throttle_ratio: 0.2
    victim_k: 2
    victim_n: 3
    onset_min_stall:
      cpu: 0.3
      memory: 0.1
      io: 0.3
    correlation_window: 2m
    episode_lead: 30s
    antagonist_threshold: 0.6
placement:
  enabled: false
  dry_run: false
  condition_type: NoisyNeighbor
  annotation_key: nodewarden.io/signals
  taint_key: nodewarden.io/noisy-neighbor
  on_score: 0.3
  off_score: 0.1
  on_hold: 30s
  off_hold: 2m
  min_taint_duration: 5m
  max_backoff: 1m
  timeout: 10s
)";
}

// The schema's leaves whose values differ, by their dotted paths: a reload says by these names what
// it applied and what needs a restart.
namespace {
void collectChanged(Section section, const std::string& parent, const Config& a, const Config& b,
                    std::vector<std::string>& out) {
  for (const Field& field : section) {
    std::string path = joinPath(parent, field.key);
    std::visit(
        [&](const auto& target) {
          using T = std::decay_t<decltype(target)>;
          if constexpr (std::is_same_v<T, Section>) {
            collectChanged(target, path, a, b, out);
          } else if constexpr (std::is_same_v<T, ByteSize>) {
            if (a.*(target.member) != b.*(target.member)) out.push_back(path);
          } else {
            if (a.*target != b.*target) out.push_back(path);
          }
        },
        field.target);
  }
}
}  // namespace

std::vector<std::string> changedConfigKeys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  collectChanged(kRootFields, "", a, b, out);
  return out;
}

}  // namespace nodewarden
