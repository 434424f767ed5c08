// NodeBuilder: a small real Kubernetes node on the running kernel, without Kubernetes. It creates
// pod and container cgroups in kubelet's layout (either cgroup driver, any of the three runtimes'
// names), in every mounted hierarchy the agent reads, runs real processes inside them, and writes
// the /var/log/pods and /var/log/containers layout the agent takes names from.
//
// What a reader gets wrong: the builder never creates anything at a hierarchy's root. Each
// hierarchy's base is the cgroup /proc/self/cgroup names for it (in the memory hierarchy that is a
// private cgroup such as /process_api/<hex> on shared machines), plus a unique parent directory
// (e.g. "nodewarden-test-<pid>-<n>"), so concurrent builders and other users never collide. The
// destructor kills every process it started (and everything that joined the cgroups since) and
// removes every directory it created; a crashed test's leftovers are swept by the next builder.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nodewarden::testing {

enum class CgroupDriver { kCgroupfs, kSystemd };
enum class ContainerRuntime { kContainerd, kCrio, kDocker };
enum class PodQos { kGuaranteed, kBurstable, kBestEffort };

const char* driverName(CgroupDriver driver);
const char* runtimeName(ContainerRuntime runtime);
const char* qosName(PodQos qos);

struct NodeBuilderOptions {
  CgroupDriver driver = CgroupDriver::kCgroupfs;
  ContainerRuntime runtime = ContainerRuntime::kContainerd;
  // Directory below each hierarchy's base; empty: "nodewarden-test-<pid>-<n>". Must be unique.
  std::string parent;
  // Where var/log/pods, var/log/containers and process output go; empty: a fresh directory under
  // $TMPDIR that the builder removes at the end. A given directory is kept (only the files the
  // builder wrote are removed), so two builders may share one log root.
  std::filesystem::path temp_dir;
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::filesystem::path proc_root = "/proc";
  // Sweep "nodewarden-test-<pid>-*" parents whose process is gone (a test killed by a timeout).
  bool sweep_stale = true;
};

// One mounted cgroup hierarchy the builder works in.
struct Hierarchy {
  std::filesystem::path mount;  // e.g. /sys/fs/cgroup/cpuacct
  std::filesystem::path base;   // mount + our own cgroup in it, e.g. .../memory/process_api/<hex>
  std::vector<std::string> controllers;  // v1 controllers of the mount; empty for v2
  bool v2 = false;
  bool pure_v2 = false;  // the only hierarchy: v2 carries every controller
  // "cpu", "cpuacct", "memory", "blkio", "pids", or "unified" for the v2 tree.
  [[nodiscard]] bool has(std::string_view controller) const;
};

struct ContainerSpec {
  std::string name;
  std::string id;                  // 64 hex; empty: generated
  std::int64_t cpu_quota_us = -1;  // -1: no CPU limit
  std::int64_t cpu_period_us = 100000;
  std::int64_t memory_limit_bytes = -1;  // -1: no memory limit
};
// GCC 12 warns about designated initializers that skip members; this spells the common case.
ContainerSpec containerSpec(std::string name, std::int64_t cpu_quota_us = -1,
                            std::int64_t memory_limit_bytes = -1);

class NodeBuilder;
class Pod;

class Container {
 public:
  Container(Pod& pod, ContainerSpec spec, std::filesystem::path relative);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  [[nodiscard]] const std::string& name() const { return spec_.name; }
  [[nodiscard]] const std::string& id() const { return spec_.id; }
  [[nodiscard]] const ContainerSpec& spec() const { return spec_; }
  [[nodiscard]] Pod& pod() const { return pod_; }
  // Below the node's parent, e.g. "kubepods/burstable/pod<uid>/<id>".
  [[nodiscard]] const std::filesystem::path& relativePath() const { return relative_; }
  // The container's directory in the hierarchy that has the controller ("cpuacct", "memory",
  // "unified", ...); nullopt when no such hierarchy is mounted.
  [[nodiscard]] std::optional<std::filesystem::path> cgroupDir(std::string_view controller) const;
  [[nodiscard]] std::vector<std::filesystem::path> cgroupDirs() const;
  // Reads one number from a file of the container's cgroup, e.g. ("cpuacct", "cpuacct.usage").
  [[nodiscard]] std::expected<std::uint64_t, std::string> readUint(std::string_view controller,
                                                                   std::string_view file) const;
  // Reads "key value" from a flat-keyed file such as cpu.stat or memory.stat.
  [[nodiscard]] std::expected<std::uint64_t, std::string> readKey(std::string_view controller,
                                                                  std::string_view file,
                                                                  std::string_view key) const;
  [[nodiscard]] const std::filesystem::path& logFile() const { return log_file_; }

  // Forks a process that joins this container's cgroup in every hierarchy, then execs argv
  // (looked up in PATH). Its output goes to <temp>/run/<pod>_<container>.out. Whatever it forks
  // stays in the container.
  std::expected<pid_t, std::string> run(const std::vector<std::string>& argv);
  // Every process now in the container's cgroups.
  [[nodiscard]] std::vector<pid_t> pids() const;
  // SIGKILLs every process in the cgroups until they are empty; false when that took too long.
  bool kill(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // SIGTERM, up to grace for them to leave, then kill().
  bool stop(std::chrono::milliseconds grace = std::chrono::seconds(2));

 private:
  friend class Pod;
  friend class NodeBuilder;
  void reapStarted();

  Pod& pod_;
  ContainerSpec spec_;
  std::filesystem::path relative_;
  std::filesystem::path log_file_;
  std::filesystem::path log_link_;
  std::vector<pid_t> started_;  // direct children still to reap
};

class Pod {
 public:
  Pod(NodeBuilder& node, std::string ns, std::string name, std::string uid, PodQos qos,
      std::filesystem::path relative);
  Pod(const Pod&) = delete;
  Pod& operator=(const Pod&) = delete;

  [[nodiscard]] const std::string& ns() const { return namespace_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& uid() const { return uid_; }
  [[nodiscard]] PodQos qos() const { return qos_; }
  [[nodiscard]] NodeBuilder& node() const { return node_; }
  [[nodiscard]] const std::filesystem::path& relativePath() const { return relative_; }
  [[nodiscard]] std::optional<std::filesystem::path> cgroupDir(std::string_view controller) const;
  // As Container::readKey, for the pod's own cgroup.
  [[nodiscard]] std::expected<std::uint64_t, std::string> readKey(std::string_view controller,
                                                                  std::string_view file,
                                                                  std::string_view key) const;
  // <temp>/var/log/pods/<namespace>_<name>_<uid>
  [[nodiscard]] std::filesystem::path logDir() const;

  // Creates the container's cgroup in every hierarchy, sets its limits (and the pod's: the sum
  // over containers when every container has one, as kubelet does), and writes its log files.
  std::expected<Container*, std::string> addContainer(ContainerSpec spec);
  [[nodiscard]] Container* container(std::string_view name) const;
  [[nodiscard]] const std::vector<std::unique_ptr<Container>>& containers() const {
    return containers_;
  }

 private:
  friend class NodeBuilder;
  std::expected<void, std::string> updatePodLimits();

  NodeBuilder& node_;
  std::string namespace_;
  std::string name_;
  std::string uid_;
  PodQos qos_;
  std::filesystem::path relative_;
  std::vector<std::unique_ptr<Container>> containers_;
};

class NodeBuilder {
 public:
  static std::expected<std::unique_ptr<NodeBuilder>, std::string> create(
      NodeBuilderOptions options = {});
  ~NodeBuilder();
  NodeBuilder(const NodeBuilder&) = delete;
  NodeBuilder& operator=(const NodeBuilder&) = delete;

  // uid empty: a generated one. Creates the QoS-class parents on first use.
  std::expected<Pod*, std::string> addPod(std::string ns, std::string name, std::string uid,
                                          PodQos qos);
  // Kills the pod's processes, removes its cgroups (bottom-up, retrying while the kernel is still
  // letting go of them) and its log files. The Pod and its Containers are gone afterwards.
  std::expected<void, std::string> removePod(Pod& pod);
  // Removes every pod and every directory this builder created. Idempotent; the destructor calls
  // it.
  std::expected<void, std::string> cleanup();

  [[nodiscard]] const NodeBuilderOptions& options() const { return options_; }
  [[nodiscard]] const std::string& parent() const { return options_.parent; }
  [[nodiscard]] const std::filesystem::path& tempDir() const { return options_.temp_dir; }
  [[nodiscard]] std::filesystem::path logRoot() const;          // <temp>/var/log/pods
  [[nodiscard]] std::filesystem::path containerLogDir() const;  // <temp>/var/log/containers
  [[nodiscard]] const std::vector<Hierarchy>& hierarchies() const { return hierarchies_; }
  // <base>/<parent> in every hierarchy: what must be gone after cleanup().
  [[nodiscard]] std::vector<std::filesystem::path> parentDirs() const;
  [[nodiscard]] const std::vector<std::unique_ptr<Pod>>& pods() const { return pods_; }
  [[nodiscard]] Pod* pod(std::string_view name) const;

  // Directory names kubelet would use under the parent.
  [[nodiscard]] std::filesystem::path podRelativePath(const std::string& uid, PodQos qos) const;
  [[nodiscard]] std::string containerDirName(const std::string& id) const;

  // The hierarchies below cgroup_root that carry cpu, cpuacct, memory, blkio or pids, and the v2
  // tree; each with our own cgroup in it as its base.
  static std::expected<std::vector<Hierarchy>, std::string> discoverHierarchies(
      const std::filesystem::path& cgroup_root, const std::filesystem::path& proc_root);
  // Removes leftover "nodewarden-test-<pid>-*" trees whose <pid> no longer runs; returns how many.
  static std::size_t sweepStaleParents(const std::vector<Hierarchy>& hierarchies);

 private:
  friend class Pod;
  friend class Container;
  explicit NodeBuilder(NodeBuilderOptions options);
  // mkdir -p of relative below <base>/<parent> in every hierarchy, remembering what it created.
  std::expected<void, std::string> makeCgroup(const std::filesystem::path& relative);
  // rmdir of relative in every hierarchy (it must have no children left), with retries.
  std::expected<void, std::string> removeCgroup(const std::filesystem::path& relative);
  std::expected<void, std::string> removeLogs(Pod& pod);

  NodeBuilderOptions options_;
  bool own_temp_dir_ = false;
  std::vector<Hierarchy> hierarchies_;
  std::vector<std::filesystem::path> created_;  // relative paths, in creation order ("" = parent)
  std::vector<std::unique_ptr<Pod>> pods_;
};

// Deterministic-looking but unique identifiers: a pod uid (8-4-4-4-12 hex) and a 64-hex id.
std::string makePodUid();
std::string makeContainerId();

// CPU seconds (utime + stime, plus cutime + cstime of children each has reaped) of the given
// processes, from /proc/<pid>/stat. A process that is gone counts 0.
double processesCpuSeconds(const std::vector<pid_t>& pids,
                           const std::filesystem::path& proc_root = "/proc");
// The same over root and all its living descendants.
double processTreeCpuSeconds(pid_t root, const std::filesystem::path& proc_root = "/proc");

}  // namespace nodewarden::testing
