// PodNetworkReader: net/dev parsing and the per-pod process that is read; see pod_network.h.
#include "collectors/cgroup/pod_network.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

#include "collectors/common/line_reader.h"

namespace nodewarden::cgroup {
namespace {

constexpr const char* kComponent = "cgroup";
constexpr std::size_t kNetDevCounters = 16;

std::string_view trimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// What dev_valid_name lets through, less the control bytes no kernel prints (a NUL would end
// the stored name early).
// Bytes past ASCII are refused too: the kernel takes them, but a label value that is not UTF-8
// makes Prometheus reject the whole scrape, so one pod renaming its interface would blank the
// node's every series.
bool validNameChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > ' ' && u < 0x7f && c != '/' && c != ':';
}

bool parseCounter(std::string_view field, std::uint64_t& v) {
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  return ec == std::errc() && end == field.data() + field.size();
}

std::string errnoText(int err) { return std::strerror(err); }

}  // namespace

bool isIgnoredNetInterface(std::string_view name) {
  for (std::string_view prefix :
       {std::string_view("lo"), std::string_view("veth"), std::string_view("docker")}) {
    if (name.size() < prefix.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < prefix.size() && match; ++i) {
      const char c = name[i];
      match = (c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) == prefix[i];
    }
    if (match) return true;
  }
  return false;
}

NetDevResult parseNetDev(std::string_view text, std::span<NetInterfaceStat> out) {
  NetDevResult r;
  LineReader lines(text);
  std::string_view line;
  while (lines.next(line)) {
    if (trimBlanks(line).empty()) continue;
    // The two header lines are the only ones with a '|' before any ':' (an interface name holds
    // neither ':' nor blanks: dev_valid_name).
    const std::size_t colon = line.find(':');
    const std::size_t bar = line.find('|');
    if (bar != std::string_view::npos && (colon == std::string_view::npos || bar < colon)) {
      continue;
    }
    if (colon == std::string_view::npos) {
      ++r.garbled;
      continue;
    }
    const std::string_view name = trimBlanks(line.substr(0, colon));
    std::array<std::uint64_t, kNetDevCounters> c{};
    std::size_t n = 0;
    bool ok = !name.empty() && name.size() < NetInterfaceStat{}.name.size() &&
              std::ranges::all_of(name, validNameChar);
    FieldReader fields(line.substr(colon + 1));
    std::string_view field;
    while (ok && fields.next(field)) {
      ok = n < c.size() && parseCounter(field, c[n]);
      ++n;
    }
    if (!ok || n != kNetDevCounters) {
      ++r.garbled;
      continue;
    }
    if (isIgnoredNetInterface(name)) {
      ++r.ignored;
      continue;
    }
    if (r.interfaces >= out.size()) {
      ++r.over_bound;
      continue;
    }
    NetInterfaceStat& st = out[r.interfaces++];
    st.name.fill('\0');
    std::memcpy(st.name.data(), name.data(), name.size());
    st.rx_bytes = c[0];
    st.rx_packets = c[1];
    st.rx_errors = c[2];
    st.rx_dropped = c[3];
    st.tx_bytes = c[8];
    st.tx_packets = c[9];
    st.tx_errors = c[10];
    st.tx_dropped = c[11];
  }
  return r;
}

void PodNetwork::close() {
  dev.close();
  if (pid_dir_fd >= 0) ::close(pid_dir_fd);
  pid_dir_fd = -1;
  pid = 0;
  ino = 0;
}

PodNetworkReader::PodNetworkReader(std::filesystem::path proc_root, DescriptorBudget& budget,
                                   ErrorReporter& errors)
    : proc_root_(std::move(proc_root)), budget_(budget), errors_(errors) {}

void PodNetworkReader::release(PodNetwork& pod) {
  budget_.open -= std::min(budget_.open, pod.keptDescriptors());
  pod.close();
}

std::expected<std::string_view, int> PodNetworkReader::readByPid(PodNetwork& pod,
                                                                 std::span<char> buf) {
  std::array<char, 32> name{};
  std::snprintf(name.data(), name.size(), "%d/net/dev", static_cast<int>(pod.pid));
  PreadFile dev;
  if (auto r = dev.openAt(proc_fd_, name.data()); !r) return std::unexpected(r.error());
  struct stat st {};
  // The pid may have been reused: the same namespace still has the same entry, another not.
  if (::fstatat(proc_fd_, name.data(), &st, 0) != 0 || st.st_ino != pod.ino) {
    return std::unexpected(ESRCH);
  }
  return dev.read(buf);
}

PodNetworkReader::~PodNetworkReader() {
  if (proc_fd_ >= 0) ::close(proc_fd_);
}

bool PodNetworkReader::available() {
  if (proc_fd_ == -1) {
    proc_fd_ = ::open(proc_root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd_ < 0) {
      proc_fd_ = -2;
      errors_.report(kComponent, "net_no_proc", proc_root_.string() + ": " + errnoText(errno));
      return false;
    }
    // The node's network namespace, as the host's init sees it.
    struct stat st {};
    if (::fstatat(proc_fd_, "1/net/dev", &st, 0) == 0) {
      host_known_ = true;
      host_dev_ = st.st_dev;
      host_ino_ = st.st_ino;
    } else {
      // Without it a host-network pod cannot be told apart; its series would carry the node's
      // counters, so no pod is read rather than some read wrongly.
      errors_.report(kComponent, "net_no_host_namespace",
                     (proc_root_ / "1/net/dev").string() + ": " + errnoText(errno));
    }
  }
  return proc_fd_ >= 0 && host_known_;
}

bool PodNetworkReader::read(PodNetwork& pod, CgroupSample& s, std::span<char> buf) {
  s.net_interfaces = 0;
  s.net_present = false;
  if (pod.host_network) return true;
  if (!pod.open()) return false;
  std::expected<std::string_view, int> text;
  if (pod.dev.isOpen()) {
    // The process still there? Its directory answers ESRCH (procfs) or ENOENT once it is gone.
    struct stat st {};
    if (::fstatat(pod.pid_dir_fd, "net/dev", &st, 0) != 0) {
      release(pod);
      return false;
    }
    text = pod.dev.read(buf);
  } else {
    text = readByPid(pod, buf);
  }
  if (!text || text->empty()) {
    // Gone (ESRCH, ENOENT) is the normal end of a process; anything else (a file past the
    // buffer, EIO) is said before the pod looks for another.
    if (!text && text.error() != ESRCH && text.error() != ENOENT) {
      errors_.report(kComponent, "read_error",
                     "net/dev of pod " + s.pod_uid + ": " + errnoText(text.error()));
    }
    release(pod);
    return false;
  }
  const NetDevResult r = parseNetDev(*text, s.net);
  if (r.garbled > 0) {
    errors_.report(kComponent, "net_dev_parse_error",
                   "net/dev of pod " + s.pod_uid + ": " + std::to_string(r.garbled) +
                       " lines not in the kernel's format");
  }
  if (r.over_bound > 0) {
    errors_.report(kComponent, "net_too_many_interfaces",
                   "pod " + s.pod_uid + ": " + std::to_string(r.over_bound) + " interfaces past " +
                       std::to_string(kMaxNetInterfaces) + " not read");
  }
  s.net_interfaces = r.interfaces;
  s.net_present = true;
  return true;
}

bool PodNetworkReader::wantsProcess(const PodNetwork& pod, std::uint64_t cycle) {
  return !pod.open() && cycle >= pod.next_attempt;
}

bool PodNetworkReader::find(PodNetwork& pod, const Hierarchy& h, const std::string& dir,
                            std::uint64_t cycle, std::span<char> buf) {
  pod.tried_cycle = cycle;
  const int dir_fd = ::openat(h.fd, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return false;  // gone: the next listing notices
  const auto procs = readFileAt(dir_fd, "cgroup.procs", buf);
  ::close(dir_fd);
  if (!procs) {
    if (procs.error() != ENOENT && procs.error() != ENODEV) {
      errors_.report(kComponent, "read_error",
                     h.path + "/" + dir + "/cgroup.procs: " + errnoText(procs.error()));
    }
    return false;
  }
  LineReader lines(*procs);
  std::string_view line;
  bool hidden = false;
  bool host = false;
  while (lines.next(line)) {
    pid_t pid = 0;
    if (std::from_chars(line.data(), line.data() + line.size(), pid).ec != std::errc()) continue;
    if (pid <= 0) {
      // cgroup.procs lists a process of another PID namespace as 0 (v2) or not at all (v1):
      // the agent does not share the host's PID namespace.
      hidden = true;
      continue;
    }
    if (!available()) return false;
    if (!adopt(pod, pid)) continue;
    if (!pod.host_network) {
      pod.attempts = 0;
      pod.next_attempt = 0;
      return true;
    }
    // A process in the node's namespace: the pod's may be host network, or this one has not
    // joined the sandbox's namespace yet (runc's first stage, an exec on its way in). Another
    // process of the cgroup decides; failing one, the verdict is looked at again after a backoff.
    pod.host_network = false;
    host = true;
  }
  if (host) {
    pod.host_network = true;
    ++pod.attempts;
    pod.next_attempt = cycle + (std::uint64_t{1} << std::min<std::uint32_t>(pod.attempts, 6));
    return true;
  }
  if (hidden) {
    errors_.report(kComponent, "net_pids_hidden",
                   h.path + "/" + dir +
                       "/cgroup.procs lists processes of another PID namespace as 0: pod "
                       "network needs the host's PID namespace");
  }
  return false;
}

bool PodNetworkReader::adopt(PodNetwork& pod, pid_t pid) {
  std::array<char, 32> name{};
  std::snprintf(name.data(), name.size(), "%d", static_cast<int>(pid));
  const int pid_dir = ::openat(proc_fd_, name.data(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pid_dir < 0) return false;  // exited since the list was read
  PreadFile dev;
  struct stat st {};
  if (!dev.openAt(pid_dir, "net/dev") || ::fstatat(pid_dir, "net/dev", &st, 0) != 0) {
    ::close(pid_dir);
    return false;
  }
  if (st.st_dev == host_dev_ && st.st_ino == host_ino_) {
    pod.host_network = true;
    ::close(pid_dir);
    return true;
  }
  release(pod);
  pod.host_network = false;
  if (budget_.open + 2 <= budget_.limit) {
    budget_.open += 2;
    pod.pid_dir_fd = pid_dir;
    pod.dev = std::move(dev);
  } else {
    ::close(pid_dir);
    pod.pid = pid;
    pod.ino = st.st_ino;
  }
  return true;
}

void PodNetworkReader::backOff(PodNetwork& pod, std::uint64_t cycle) {
  if (pod.host_network || pod.open() || pod.tried_cycle != cycle) return;
  ++pod.attempts;
  pod.next_attempt = cycle + (std::uint64_t{1} << std::min<std::uint32_t>(pod.attempts, 6));
}

}  // namespace nodewarden::cgroup
