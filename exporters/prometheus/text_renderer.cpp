#include "exporters/prometheus/text_renderer.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>
#include <string_view>

#include "exporters/prometheus/node_text.h"

namespace nodewarden {
namespace {

using F = CgroupField;

enum class Scale : std::uint8_t { kNone, kNsToSeconds, kUsToSeconds };

struct Family {
  const char* name;
  const char* type;
  const char* help;
  F field;
  Scale scale;
};

// cAdvisor's names and help texts (cadvisor/metrics/prometheus.go).
constexpr std::array kFamilies = {
    Family{"container_cpu_usage_seconds_total", "counter",
           "Cumulative cpu time consumed in seconds.", F::kCpuUsageNs, Scale::kNsToSeconds},
    Family{"container_cpu_user_seconds_total", "counter",
           "Cumulative user cpu time consumed in seconds.", F::kCpuUserNs, Scale::kNsToSeconds},
    Family{"container_cpu_system_seconds_total", "counter",
           "Cumulative system cpu time consumed in seconds.", F::kCpuSystemNs, Scale::kNsToSeconds},
    Family{"container_cpu_cfs_periods_total", "counter",
           "Number of elapsed enforcement period intervals.", F::kCfsPeriods, Scale::kNone},
    Family{"container_cpu_cfs_throttled_periods_total", "counter",
           "Number of throttled period intervals.", F::kCfsThrottledPeriods, Scale::kNone},
    Family{"container_cpu_cfs_throttled_seconds_total", "counter",
           "Total time duration the container has been throttled.", F::kCfsThrottledNs,
           Scale::kNsToSeconds},
    Family{"container_spec_cpu_quota", "gauge", "CPU quota of the container.", F::kCpuQuotaUs,
           Scale::kNone},
    Family{"container_spec_cpu_period", "gauge", "CPU period of the container.", F::kCpuPeriodUs,
           Scale::kNone},
    Family{"container_spec_cpu_shares", "gauge", "CPU share of the container.", F::kCpuShares,
           Scale::kNone},
    Family{"container_memory_usage_bytes", "gauge",
           "Current memory usage in bytes, including all memory regardless of when it was "
           "accessed",
           F::kMemUsageBytes, Scale::kNone},
    Family{"container_memory_working_set_bytes", "gauge", "Current working set in bytes.",
           F::kMemWorkingSetBytes, Scale::kNone},
    Family{"container_memory_rss", "gauge", "Size of RSS in bytes.", F::kMemRssBytes, Scale::kNone},
    Family{"container_memory_cache", "gauge", "Number of bytes of page cache memory.",
           F::kMemCacheBytes, Scale::kNone},
    Family{"container_memory_swap", "gauge", "Container swap usage in bytes.", F::kMemSwapBytes,
           Scale::kNone},
    Family{"container_memory_mapped_file", "gauge", "Size of memory mapped files in bytes.",
           F::kMemMappedFileBytes, Scale::kNone},
    Family{"container_spec_memory_limit_bytes", "gauge", "Memory limit for the container.",
           F::kMemLimitBytes, Scale::kNone},
    Family{"container_memory_max_usage_bytes", "gauge", "Maximum memory usage recorded in bytes",
           F::kMemMaxUsageBytes, Scale::kNone},
    Family{"container_oom_events_total", "counter",
           "Count of out of memory events observed for the container", F::kOomKills, Scale::kNone},
    Family{"container_cpu_schedstat_runqueue_seconds_total", "counter",
           "Time duration processes of the container have been waiting on a runqueue.",
           F::kRunDelayNs, Scale::kNsToSeconds},
    Family{"container_pressure_cpu_waiting_seconds_total", "counter",
           "Total time duration tasks in the container have waited due to CPU congestion.",
           F::kPsiCpuSomeUs, Scale::kUsToSeconds},
    Family{"container_pressure_cpu_stalled_seconds_total", "counter",
           "Total time duration no tasks in the container could make progress due to CPU "
           "congestion.",
           F::kPsiCpuFullUs, Scale::kUsToSeconds},
    Family{"container_pressure_memory_waiting_seconds_total", "counter",
           "Total time duration tasks in the container have waited due to memory congestion.",
           F::kPsiMemSomeUs, Scale::kUsToSeconds},
    Family{"container_pressure_memory_stalled_seconds_total", "counter",
           "Total time duration no tasks in the container could make progress due to memory "
           "congestion.",
           F::kPsiMemFullUs, Scale::kUsToSeconds},
    Family{"container_pressure_io_waiting_seconds_total", "counter",
           "Total time duration tasks in the container have waited due to IO congestion.",
           F::kPsiIoSomeUs, Scale::kUsToSeconds},
    Family{"container_pressure_io_stalled_seconds_total", "counter",
           "Total time duration no tasks in the container could make progress due to IO "
           "congestion.",
           F::kPsiIoFullUs, Scale::kUsToSeconds},
    Family{"container_memory_failcnt", "counter", "Number of memory usage hits limits",
           F::kMemFailcnt, Scale::kNone},
    Family{"container_spec_memory_reservation_limit_bytes", "gauge",
           "Memory reservation limit for the container.", F::kMemReservationBytes, Scale::kNone},
    Family{"container_spec_memory_swap_limit_bytes", "gauge",
           "Memory swap limit for the container.", F::kMemSwapLimitBytes, Scale::kNone},
    Family{"container_start_time_seconds", "gauge",
           "Start time of the container since unix epoch in seconds.", F::kStartTimeS,
           Scale::kNone},
    Family{"container_last_seen", "gauge", "Last time a container was seen by the exporter",
           F::kLastSeenS, Scale::kNone},
    Family{"container_threads", "gauge", "Number of threads running inside the container",
           F::kThreads, Scale::kNone},
    Family{"container_threads_max", "gauge",
           "Maximum number of threads allowed inside the container, infinity if value is zero",
           F::kThreadsMax, Scale::kNone},
    Family{"container_processes", "gauge", "Number of processes running inside the container.",
           F::kProcesses, Scale::kNone},
    Family{"container_file_descriptors", "gauge",
           "Number of open file descriptors for the container.", F::kFileDescriptors, Scale::kNone},
    Family{"container_sockets", "gauge", "Number of open sockets for the container.", F::kSockets,
           Scale::kNone},
};

// container_memory_failures_total: one series per (failure_type, scope), as cAdvisor gives them.
struct FailureSeries {
  const char* failure_type;
  const char* scope;
  F field;
};
constexpr std::array kFailureSeries = {
    FailureSeries{"pgfault", "container", F::kMemPgfault},
    FailureSeries{"pgmajfault", "container", F::kMemPgmajfault},
    FailureSeries{"pgfault", "hierarchy", F::kMemHierPgfault},
    FailureSeries{"pgmajfault", "hierarchy", F::kMemHierPgmajfault},
};

enum class IoValue : std::uint8_t { kReadBytes, kWriteBytes, kReads, kWrites };
struct IoFamily {
  const char* name;
  const char* help;
  IoValue value;
};
constexpr std::array kIoFamilies = {
    IoFamily{"container_fs_reads_bytes_total", "Cumulative count of bytes read",
             IoValue::kReadBytes},
    IoFamily{"container_fs_writes_bytes_total", "Cumulative count of bytes written",
             IoValue::kWriteBytes},
    IoFamily{"container_fs_reads_total", "Cumulative count of reads completed", IoValue::kReads},
    IoFamily{"container_fs_writes_total", "Cumulative count of writes completed", IoValue::kWrites},
};

void appendHeader(std::string& out, const char* name, const char* help, const char* type) {
  out.append("# HELP ").append(name).push_back(' ');
  out.append(help).push_back('\n');
  out.append("# TYPE ").append(name).push_back(' ');
  out.append(type).push_back('\n');
}

// A label a family adds to the sample's own five (device, interface, failure_type, scope).
struct ExtraLabel {
  const char* name;
  std::string_view value;
};

// The sample's labels (container, id, image, namespace, pod) with a family's extra ones, all in
// sorted order as client_golang writes them; `extra` is sorted by name.
void appendLabels(std::string& out, const CgroupSample& s, std::span<const ExtraLabel> extra = {}) {
  const std::array<ExtraLabel, 5> own = {{{"container", s.container_name},
                                          {"id", s.id},
                                          {"image", s.image},
                                          {"namespace", s.namespace_name},
                                          {"pod", s.pod_name}}};
  char sep = '{';
  const auto put = [&](const ExtraLabel& l) {
    out.push_back(sep);
    sep = ',';
    out.append(l.name).append("=\"");
    appendLabelValue(out, l.value);
    out.push_back('"');
  };
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < own.size() || j < extra.size()) {
    if (j < extra.size() && (i == own.size() || std::strcmp(extra[j].name, own[i].name) < 0)) {
      put(extra[j++]);
    } else {
      put(own[i++]);
    }
  }
  out.append("} ");
}

// Network per pod: cAdvisor's eight families (metrics/prometheus.go), one series per interface.
using NetCounter = std::uint64_t NetInterfaceStat::*;
struct NetFamily {
  const char* name;
  const char* help;
  NetCounter value;
};
constexpr std::array kNetFamilies = {
    NetFamily{"container_network_receive_bytes_total", "Cumulative count of bytes received",
              &NetInterfaceStat::rx_bytes},
    NetFamily{"container_network_receive_packets_total", "Cumulative count of packets received",
              &NetInterfaceStat::rx_packets},
    NetFamily{"container_network_receive_packets_dropped_total",
              "Cumulative count of packets dropped while receiving", &NetInterfaceStat::rx_dropped},
    NetFamily{"container_network_receive_errors_total",
              "Cumulative count of errors encountered while receiving",
              &NetInterfaceStat::rx_errors},
    NetFamily{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted",
              &NetInterfaceStat::tx_bytes},
    NetFamily{"container_network_transmit_packets_total", "Cumulative count of packets transmitted",
              &NetInterfaceStat::tx_packets},
    NetFamily{"container_network_transmit_packets_dropped_total",
              "Cumulative count of packets dropped while transmitting",
              &NetInterfaceStat::tx_dropped},
    NetFamily{"container_network_transmit_errors_total",
              "Cumulative count of errors encountered while transmitting",
              &NetInterfaceStat::tx_errors},
};

// The samples of a family in exposition order: pods and containers, then the cgroups above them
// (Snapshot::aggregates: id "/", the kubepods root, the QoS cgroups), whose series belong to the
// same families and so must follow in the same block.
class AllSamples {
 public:
  explicit AllSamples(const Snapshot& s) : a_(s.cgroups), b_(s.aggregates) {}
  class Iter {
   public:
    Iter(const AllSamples* all, std::size_t i) : all_(all), i_(i) {}
    const CgroupSample* operator*() const {
      return i_ < all_->a_.size() ? all_->a_[i_] : all_->b_[i_ - all_->a_.size()];
    }
    Iter& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const Iter& o) const { return i_ != o.i_; }

   private:
    const AllSamples* all_;
    std::size_t i_;
  };
  [[nodiscard]] Iter begin() const { return {this, 0}; }
  [[nodiscard]] Iter end() const { return {this, a_.size() + b_.size()}; }

 private:
  const std::vector<const CgroupSample*>& a_;
  const std::vector<const CgroupSample*>& b_;
};

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void appendDouble(std::string& out, double value) {
  if (std::isnan(value)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(value)) {
    out.append(value > 0 ? "+Inf" : "-Inf");
    return;
  }
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), ec == std::errc{} ? end : buf.data());
}

void appendU64(std::string& out, std::uint64_t value) {
  std::array<char, 24> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), ec == std::errc{} ? end : buf.data());
}

void appendLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out.append("\\\\");
        break;
      case '"':
        out.append("\\\"");
        break;
      case '\n':
        out.append("\\n");
        break;
      default:
        out.push_back(c);
    }
  }
}

TextRenderer::TextRenderer(std::filesystem::path proc_root) : proc_root_(std::move(proc_root)) {}

void TextRenderer::loadDeviceNamesLocked() {
  // /proc/partitions: "major minor  #blocks  name" after a header line.
  device_names_.clear();
  std::ifstream in(proc_root_ / "partitions");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::uint64_t major = 0, minor = 0, blocks = 0;
    std::string name;
    if (fields >> major >> minor >> blocks >> name) {
      device_names_[(major << 32) | minor] = "/dev/" + name;
    }
  }
  device_names_loaded_ms_ = nowMs();
}

void TextRenderer::appendDevice(std::uint32_t major, std::uint32_t minor, std::string& out) {
  const std::uint64_t key = (std::uint64_t{major} << 32) | minor;
  std::lock_guard lock(device_mu_);
  auto it = device_names_.find(key);
  if (it == device_names_.end() &&
      (device_names_loaded_ms_ < 0 || nowMs() - device_names_loaded_ms_ > 60000)) {
    loadDeviceNamesLocked();
    it = device_names_.find(key);
  }
  if (it != device_names_.end()) {
    out.append(it->second);
  } else {
    appendU64(out, major);
    out.push_back(':');
    appendU64(out, minor);
  }
}

std::size_t TextRenderer::render(const Snapshot& snapshot, const Flush& flush,
                                 Exposition exposition) {
  std::string out;
  out.reserve(kChunkBytes + 4096);
  auto maybeFlush = [&] {
    if (out.size() >= kChunkBytes) {
      flush(out);
      out.clear();
    }
  };
  std::size_t series = 0;
  for (const auto& fam : kFamilies) {
    // cAdvisor exports the CFS counters only for cgroups with a quota: without one the kernel
    // still counts periods, but "throttled / periods" would be a meaningless 0 to alert rules.
    const bool needs_quota = fam.field == F::kCfsPeriods || fam.field == F::kCfsThrottledPeriods ||
                             fam.field == F::kCfsThrottledNs;
    bool header = false;
    for (const CgroupSample* s : AllSamples(snapshot)) {
      if (s->names_pending || !s->has(fam.field)) continue;
      if (needs_quota && !s->has(F::kCpuQuotaUs)) continue;
      if (!header) {
        appendHeader(out, fam.name, fam.help, fam.type);
        header = true;
      }
      out.append(fam.name);
      appendLabels(out, *s);
      const std::uint64_t v = s->get(fam.field);
      switch (fam.scale) {
        case Scale::kNone:
          appendU64(out, v);
          break;
        case Scale::kNsToSeconds:
          appendDouble(out, static_cast<double>(v) / 1e9);
          break;
        case Scale::kUsToSeconds:
          appendDouble(out, static_cast<double>(v) / 1e6);
          break;
      }
      out.push_back('\n');
      ++series;
      maybeFlush();
    }
  }
  std::string device;
  for (const auto& fam : kIoFamilies) {
    bool header = false;
    for (const CgroupSample* s : AllSamples(snapshot)) {
      if (s->names_pending || !s->io_present) continue;
      for (std::uint8_t i = 0; i < s->io_devices; ++i) {
        const IoDeviceStat& d = s->io[i];
        if (!header) {
          appendHeader(out, fam.name, fam.help, "counter");
          header = true;
        }
        device.clear();
        appendDevice(d.major, d.minor, device);
        out.append(fam.name);
        const ExtraLabel by_device[] = {{"device", device}};
        appendLabels(out, *s, by_device);
        switch (fam.value) {
          case IoValue::kReadBytes:
            appendU64(out, d.read_bytes);
            break;
          case IoValue::kWriteBytes:
            appendU64(out, d.write_bytes);
            break;
          case IoValue::kReads:
            appendU64(out, d.reads);
            break;
          case IoValue::kWrites:
            appendU64(out, d.writes);
            break;
        }
        out.push_back('\n');
        ++series;
        maybeFlush();
      }
    }
  }
  // Network: on the pod-level series only (container="", the pod's id). cAdvisor on containerd
  // reports the namespace's counters on the pod's sandbox container and removes them from every
  // other container (container/containerd/handler.go, needNet), so that they are not multiplied
  // per container; nodewarden exports no sandbox series, and the pod's is where one copy belongs.
  // The root (id "/", Snapshot::aggregates) carries the node's own interfaces, as cAdvisor's
  // root does: host-network pods' traffic is counted there, once.
  for (const auto& fam : kNetFamilies) {
    bool header = false;
    for (const CgroupSample* s : AllSamples(snapshot)) {
      if (s->names_pending || !s->net_present) continue;
      for (std::uint8_t i = 0; i < s->net_interfaces; ++i) {
        if (!header) {
          appendHeader(out, fam.name, fam.help, "counter");
          header = true;
        }
        out.append(fam.name);
        const NetInterfaceStat& iface = s->net[i];
        const ExtraLabel by_interface[] = {
            {"interface",
             std::string_view(iface.name.data(), ::strnlen(iface.name.data(), iface.name.size()))}};
        appendLabels(out, *s, by_interface);
        appendU64(out, s->net[i].*fam.value);
        out.push_back('\n');
        ++series;
        maybeFlush();
      }
    }
  }
  // container_memory_failures_total: labels in cAdvisor's sorted order, failure_type after
  // container and scope after pod.
  {
    bool header = false;
    for (const CgroupSample* s : AllSamples(snapshot)) {
      if (s->names_pending) continue;
      for (const auto& fs : kFailureSeries) {
        if (!s->has(fs.field)) continue;
        if (!header) {
          appendHeader(out, "container_memory_failures_total",
                       "Cumulative count of memory allocation failures.", "counter");
          header = true;
        }
        out.append("container_memory_failures_total");
        const ExtraLabel by_failure[] = {{"failure_type", fs.failure_type}, {"scope", fs.scope}};
        appendLabels(out, *s, by_failure);
        appendU64(out, s->get(fs.field));
        out.push_back('\n');
        ++series;
        maybeFlush();
      }
    }
  }
  appendMachineMetrics(snapshot.node, out);
  if (exposition == Exposition::kFull) appendNodeMetrics(snapshot.node, out);
  if (!out.empty()) flush(out);
  return series;
}

std::size_t TextRenderer::renderToString(const Snapshot& snapshot, std::string& out) {
  return render(snapshot, [&](std::string_view chunk) { out.append(chunk); });
}

}  // namespace nodewarden
