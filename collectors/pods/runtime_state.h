// RuntimeStateReader: pod and container names from the container runtime's own state on the node,
// the OCI bundle config.json that containerd and CRI-O write per container. Needs no API access.
//
//   containerd: <root>/io.containerd.runtime.v2.task/k8s.io/<id>/config.json (root /run/containerd)
//   CRI-O:      <root>/overlay-containers/<id>/userdata/config.json (root /run/containers/storage)
//
// Annotation keys read (checked against the runtimes' sources):
//   containerd pkg/cri/annotations/annotations.go: io.kubernetes.cri.container-type (sandbox |
//     container), .container-name, .sandbox-name, .sandbox-namespace, .sandbox-uid, .image-name,
//     .sandbox-id, .sandbox-log-directory (sandboxes only: /var/log/pods/<ns>_<pod>_<uid>).
//   CRI-O pkg/annotations/internal.go: io.kubernetes.cri-o.ContainerType (sandbox | container),
//     .SandboxID, .ImageName (may be ""), .Image (the image the pod spec asked for), .Labels (the
//     CRI labels as a JSON string), .Namespace.
//   kubelet's CRI labels, kubernetes pkg/kubelet/types/labels.go: io.kubernetes.pod.name,
//     io.kubernetes.pod.namespace, io.kubernetes.pod.uid, io.kubernetes.container.name. CRI-O
//     copies a container's labels into its annotations (internal/factory/container/container.go,
//     SpecAddAnnotations) but a sandbox's only into .Labels, hence the fallback to that string.
//
// What a reader gets wrong: a container id missing here is normal, not an error. A bundle exists
// only while the runtime has a task for it (an exited container's is deleted), and its directory
// appears before its config.json is written; so rescan() skips a directory without a config.json
// without counting it and looks again next time. Also, the sandbox-* annotations were added to
// containerd over several releases (the CRI plugin vendored by older k3s has no sandbox-name,
// -namespace or -uid), and older ones put some pod fields only on the sandbox: a container's
// missing pod fields are taken from its sandbox's file through the sandbox id, and stay empty until
// that file has been read. Names are never guessed.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pipeline/self_metrics.h"

namespace nodewarden::pods {

enum class RuntimeKind : std::uint8_t { kContainerd, kCrio };

struct ContainerMeta {
  std::string pod_uid;  // with dashes, as the API writes it
  std::string namespace_name;
  std::string pod_name;
  std::string container_name;  // empty for sandboxes
  std::string image;       // empty when the runtime did not record one (sandboxes, old runtimes)
  std::string sandbox_id;  // the pod sandbox's container id; a sandbox's own id
  bool is_sandbox = false;

  bool operator==(const ContainerMeta&) const = default;
};

enum class RuntimeConfigError : std::uint8_t {
  kMalformedJson,  // not JSON, or not an object
  kNotKubernetes,  // a container some other client made (podman, `ctr run`): no CRI annotations
  kMissingField,   // a CRI container without the annotations that name it
  kBadValue,       // an annotation that is not a string, or not a valid name / uid / id
};

// The ErrorReporter reason for an error: bad_json, not_cri, missing_annotations, bad_annotation.
[[nodiscard]] std::string_view runtimeConfigErrorReason(RuntimeConfigError error);

// Parses one bundle config.json. On success a sandbox has pod_uid, namespace_name and pod_name; a
// container has container_name and either all three pod fields or a sandbox_id to take the
// missing ones from. Every name present is a Kubernetes name ([a-z0-9.-], at most 253 bytes), the
// uid is 36 characters with dashes, ids are 64 lowercase hex. Throws nothing.
[[nodiscard]] std::expected<ContainerMeta, RuntimeConfigError> parseRuntimeConfig(
    std::string_view json, RuntimeKind kind);

// Scans state roots for both layouts and keeps ContainerMeta by container id. Not thread-safe:
// rescan() and the lookups belong to one thread (the collector's).
class RuntimeStateReader {
 public:
  // /run/containerd and /run/containers/storage.
  static std::vector<std::filesystem::path> defaultRoots();

  // Each root is looked at for both layouts; a root or layout that does not exist is skipped.
  RuntimeStateReader(std::vector<std::filesystem::path> roots, ErrorReporter& errors);

  // Lists the state directories: reads the config.json of ids not seen before (or whose file
  // changed since it failed to parse), forgets ids whose directory is gone. A known, parsed id
  // costs nothing but its directory entry. Outside-world failures are counted under "pods".
  void rescan();

  // The container's metadata, or nullptr when unknown or its file could not be used.
  [[nodiscard]] const ContainerMeta* find(std::string_view container_id) const;
  // The sandbox of a pod (it carries the pod's names), or nullptr.
  [[nodiscard]] const ContainerMeta* findSandboxOfPod(std::string_view pod_uid) const;
  // Ids with usable metadata (sandboxes included).
  [[nodiscard]] std::size_t size() const;
  // Pods known: their usable sandboxes.
  [[nodiscard]] std::size_t podCount() const;

  struct RescanStats {
    std::size_t layouts_found = 0;  // state directories that exist (0 on a node without either)
    std::size_t listed = 0;         // container directories seen
    std::size_t parsed = 0;         // config.json files parsed this rescan
    std::size_t failed = 0;         // unreadable or unusable files (counted in ErrorReporter)
    std::size_t foreign = 0;        // containers without CRI annotations (podman, ctr): skipped
    std::size_t pending = 0;        // directories without a config.json yet
    std::size_t forgotten = 0;      // ids dropped because their directory is gone
  };
  [[nodiscard]] const RescanStats& lastRescan() const { return stats_; }

 private:
  // What a config.json looked like when it was last read: a change means read it again.
  struct FileStamp {
    std::uint64_t inode = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t size = 0;
    int error = 0;  // errno of the stat, when it failed
    bool operator==(const FileStamp&) const = default;
  };
  struct Entry {
    ContainerMeta meta;
    FileStamp stamp;
    std::uint64_t dir_inode = 0;
    std::uint64_t seen_generation = 0;
    std::size_t layout = 0;
    bool usable = false;
    bool inherits = false;  // pod fields still to be taken from the sandbox
  };
  struct Layout {
    std::filesystem::path dir;  // the directory holding one subdirectory per container id
    RuntimeKind kind;
    const char* config_rel;  // config.json relative to an id's directory
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using EntryMap = std::unordered_map<std::string, Entry, StringHash, std::equal_to<>>;

  // Returns false when the layout's directory could not be listed (it is then kept as it was).
  bool scanLayout(std::size_t index, int dir_fd);
  void visit(std::size_t layout, int dir_fd, std::string_view id, std::uint64_t dir_inode);
  void readConfig(const Layout& layout, int dir_fd, std::string_view id, Entry& entry);
  void inheritFromSandboxes();

  std::vector<Layout> layouts_;
  ErrorReporter& errors_;
  EntryMap entries_;
  std::string buffer_;  // config.json text, reused across reads
  std::string path_;    // "<id>/<config_rel>", reused
  std::uint64_t generation_ = 0;
  RescanStats stats_;
};

}  // namespace nodewarden::pods
