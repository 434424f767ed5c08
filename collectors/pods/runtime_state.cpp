// RuntimeStateReader and the OCI bundle config.json annotation parser (see runtime_state.h for
// the layouts and the annotation keys, with their sources).
#include "collectors/pods/runtime_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "collectors/cgroup/cgroup_layout.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

constexpr std::string_view kComponent = "pods";
constexpr std::size_t kContainerIdLength = 64;
constexpr std::size_t kMaxNameLength = 253;    // a DNS subdomain, the longest Kubernetes name
constexpr std::size_t kMaxImageLength = 4096;  // far beyond any real reference; bounds the labels
// A real config.json is 10-100 KiB; anything past this is not one and is not read into memory.
constexpr std::int64_t kMaxConfigBytes = 4 * 1024 * 1024;

// containerd pkg/cri/annotations/annotations.go
namespace containerd {
constexpr std::string_view kContainerType = "io.kubernetes.cri.container-type";
constexpr std::string_view kContainerName = "io.kubernetes.cri.container-name";
constexpr std::string_view kSandboxName = "io.kubernetes.cri.sandbox-name";
constexpr std::string_view kSandboxNamespace = "io.kubernetes.cri.sandbox-namespace";
constexpr std::string_view kSandboxUid = "io.kubernetes.cri.sandbox-uid";
constexpr std::string_view kSandboxId = "io.kubernetes.cri.sandbox-id";
constexpr std::string_view kSandboxLogDir = "io.kubernetes.cri.sandbox-log-directory";
constexpr std::string_view kImageName = "io.kubernetes.cri.image-name";
}  // namespace containerd

// CRI-O pkg/annotations/internal.go
namespace crio {
constexpr std::string_view kContainerType = "io.kubernetes.cri-o.ContainerType";
constexpr std::string_view kSandboxId = "io.kubernetes.cri-o.SandboxID";
constexpr std::string_view kImageName = "io.kubernetes.cri-o.ImageName";
constexpr std::string_view kImage = "io.kubernetes.cri-o.Image";
constexpr std::string_view kLabels = "io.kubernetes.cri-o.Labels";
constexpr std::string_view kNamespace = "io.kubernetes.cri-o.Namespace";
}  // namespace crio

// kubernetes pkg/kubelet/types/labels.go
namespace kubelet {
constexpr std::string_view kPodName = "io.kubernetes.pod.name";
constexpr std::string_view kPodNamespace = "io.kubernetes.pod.namespace";
constexpr std::string_view kPodUid = "io.kubernetes.pod.uid";
constexpr std::string_view kContainerName = "io.kubernetes.container.name";
}  // namespace kubelet

constexpr std::string_view kTypeSandbox = "sandbox";
constexpr std::string_view kTypeContainer = "container";

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool isContainerId(std::string_view id) {
  if (id.size() != kContainerIdLength) return false;
  for (const char c : id) {
    if (!isLowerHex(c)) return false;
  }
  return true;
}

// Namespaces and container names are DNS labels, pod names DNS subdomains: [a-z0-9.-].
bool isKubernetesName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool isImageReference(std::string_view image) {
  if (image.empty() || image.size() > kMaxImageLength) return false;
  for (const char c : image) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// String members of one JSON object. Empty strings read as absent (CRI-O writes ImageName ""
// for an image referenced by id); a member that is not a string marks the object bad.
class StringMembers {
 public:
  explicit StringMembers(const json* object) : object_(object) {}
  std::string_view get(std::string_view key) {
    if (object_ == nullptr) return {};
    const auto it = object_->find(key);
    if (it == object_->end()) return {};
    if (!it->is_string()) {
      bad_ = true;
      return {};
    }
    return it->get_ref<const std::string&>();
  }
  [[nodiscard]] bool bad() const { return bad_; }

 private:
  const json* object_;
  bool bad_ = false;
};

// The raw values one runtime's annotations give, before validation.
struct RawFields {
  std::string_view type;
  std::string_view container;
  std::string_view pod;
  std::string_view namespace_name;
  std::string_view uid;
  std::string_view image;
  std::string_view sandbox_id;
};

// /var/log/pods/<namespace>_<pod>_<uid>: names cannot hold '_', so the uid follows the last one.
std::string_view uidFromLogDirectory(std::string_view dir) {
  while (dir.ends_with('/')) dir.remove_suffix(1);
  const auto slash = dir.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? dir : dir.substr(slash + 1);
  const auto underscore = base.rfind('_');
  if (underscore == std::string_view::npos) return {};
  return base.substr(underscore + 1);
}

std::expected<ContainerMeta, RuntimeConfigError> validate(const RawFields& raw) {
  ContainerMeta meta;
  if (raw.type == kTypeSandbox) {
    meta.is_sandbox = true;
  } else if (raw.type != kTypeContainer) {
    return std::unexpected(RuntimeConfigError::kBadValue);
  }
  // Absent fields are checked before present ones are validated, so that which error a file
  // gets does not depend on the order below.
  const bool has_pod = !raw.uid.empty() && !raw.namespace_name.empty() && !raw.pod.empty();
  if (meta.is_sandbox ? !has_pod : (raw.container.empty() || (!has_pod && raw.sandbox_id.empty())))
    return std::unexpected(RuntimeConfigError::kMissingField);

  if (!raw.uid.empty() && !cgroup::normalizePodUid(raw.uid, meta.pod_uid))
    return std::unexpected(RuntimeConfigError::kBadValue);
  for (const auto& [value, out] :
       {std::pair{raw.namespace_name, &meta.namespace_name}, std::pair{raw.pod, &meta.pod_name}}) {
    if (value.empty()) continue;
    if (!isKubernetesName(value)) return std::unexpected(RuntimeConfigError::kBadValue);
    out->assign(value);
  }
  // A sandbox's container name is kubelet's placeholder ("POD" in CRI-O's labels), not a name.
  if (!meta.is_sandbox) {
    if (!isKubernetesName(raw.container)) return std::unexpected(RuntimeConfigError::kBadValue);
    meta.container_name.assign(raw.container);
  }
  if (!raw.image.empty()) {
    if (!isImageReference(raw.image)) return std::unexpected(RuntimeConfigError::kBadValue);
    meta.image.assign(raw.image);
  }
  if (!raw.sandbox_id.empty()) {
    if (!isContainerId(raw.sandbox_id)) return std::unexpected(RuntimeConfigError::kBadValue);
    meta.sandbox_id.assign(raw.sandbox_id);
  }
  return meta;
}

std::expected<ContainerMeta, RuntimeConfigError> parseContainerd(StringMembers& annotations) {
  RawFields raw;
  raw.type = annotations.get(containerd::kContainerType);
  if (raw.type.empty()) {
    return std::unexpected(annotations.bad() ? RuntimeConfigError::kBadValue
                                             : RuntimeConfigError::kNotKubernetes);
  }
  raw.container = annotations.get(containerd::kContainerName);
  raw.pod = annotations.get(containerd::kSandboxName);
  raw.namespace_name = annotations.get(containerd::kSandboxNamespace);
  raw.uid = annotations.get(containerd::kSandboxUid);
  raw.image = annotations.get(containerd::kImageName);
  raw.sandbox_id = annotations.get(containerd::kSandboxId);
  if (raw.uid.empty() && raw.type == kTypeSandbox) {
    raw.uid = uidFromLogDirectory(annotations.get(containerd::kSandboxLogDir));
  }
  if (annotations.bad()) return std::unexpected(RuntimeConfigError::kBadValue);
  return validate(raw);
}

std::expected<ContainerMeta, RuntimeConfigError> parseCrio(StringMembers& annotations) {
  RawFields raw;
  raw.type = annotations.get(crio::kContainerType);
  if (raw.type.empty()) {
    return std::unexpected(annotations.bad() ? RuntimeConfigError::kBadValue
                                             : RuntimeConfigError::kNotKubernetes);
  }
  raw.container = annotations.get(kubelet::kContainerName);
  raw.pod = annotations.get(kubelet::kPodName);
  raw.namespace_name = annotations.get(kubelet::kPodNamespace);
  raw.uid = annotations.get(kubelet::kPodUid);
  raw.image = annotations.get(crio::kImageName);
  if (raw.image.empty()) raw.image = annotations.get(crio::kImage);
  raw.sandbox_id = annotations.get(crio::kSandboxId);
  const std::string_view labels_text = annotations.get(crio::kLabels);
  if (annotations.bad()) return std::unexpected(RuntimeConfigError::kBadValue);

  // A sandbox carries kubelet's labels only inside the Labels string; parse it only when needed.
  // Views in `raw` may point into `labels`, which therefore lives until validate() has copied them.
  json labels;
  const bool need_labels = (raw.container.empty() && raw.type != kTypeSandbox) || raw.pod.empty() ||
                           raw.namespace_name.empty() || raw.uid.empty();
  if (need_labels && !labels_text.empty()) {
    labels = json::parse(labels_text.begin(), labels_text.end(), nullptr, false);
    if (labels.is_discarded() || !labels.is_object()) {
      return std::unexpected(RuntimeConfigError::kBadValue);
    }
    StringMembers from_labels(&labels);
    if (raw.container.empty()) raw.container = from_labels.get(kubelet::kContainerName);
    if (raw.pod.empty()) raw.pod = from_labels.get(kubelet::kPodName);
    if (raw.namespace_name.empty()) raw.namespace_name = from_labels.get(kubelet::kPodNamespace);
    if (raw.uid.empty()) raw.uid = from_labels.get(kubelet::kPodUid);
    if (from_labels.bad()) return std::unexpected(RuntimeConfigError::kBadValue);
  }
  if (raw.namespace_name.empty()) raw.namespace_name = annotations.get(crio::kNamespace);
  if (annotations.bad()) return std::unexpected(RuntimeConfigError::kBadValue);
  return validate(raw);
}

std::string errnoText(int err) { return std::strerror(err); }

std::string_view describe(RuntimeConfigError error) {
  switch (error) {
    case RuntimeConfigError::kMalformedJson:
      return "not a JSON object with an annotations object";
    case RuntimeConfigError::kNotKubernetes:
      return "no CRI container-type annotation";
    case RuntimeConfigError::kMissingField:
      return "the annotations naming the container or its pod are missing";
    case RuntimeConfigError::kBadValue:
      return "an annotation is not a string or not a valid name, uid or id";
  }
  return "unusable";
}

}  // namespace

std::string_view runtimeConfigErrorReason(RuntimeConfigError error) {
  switch (error) {
    case RuntimeConfigError::kMalformedJson:
      return "bad_json";
    case RuntimeConfigError::kNotKubernetes:
      return "not_cri";
    case RuntimeConfigError::kMissingField:
      return "missing_annotations";
    case RuntimeConfigError::kBadValue:
      return "bad_annotation";
  }
  return "bad_json";
}

std::expected<ContainerMeta, RuntimeConfigError> parseRuntimeConfig(std::string_view text,
                                                                    RuntimeKind kind) {
  const json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded() || !root.is_object()) {
    return std::unexpected(RuntimeConfigError::kMalformedJson);
  }
  const auto it = root.find("annotations");
  if (it == root.end() || it->is_null()) {
    return std::unexpected(RuntimeConfigError::kNotKubernetes);
  }
  if (!it->is_object()) return std::unexpected(RuntimeConfigError::kMalformedJson);
  StringMembers annotations(&*it);
  return kind == RuntimeKind::kContainerd ? parseContainerd(annotations) : parseCrio(annotations);
}

// ---- RuntimeStateReader ----

std::vector<std::filesystem::path> RuntimeStateReader::defaultRoots() {
  return {"/run/containerd", "/run/containers/storage"};
}

RuntimeStateReader::RuntimeStateReader(std::vector<std::filesystem::path> roots,
                                       ErrorReporter& errors)
    : errors_(errors) {
  for (const auto& root : roots) {
    layouts_.push_back({root / "io.containerd.runtime.v2.task" / "k8s.io", RuntimeKind::kContainerd,
                        "config.json"});
    layouts_.push_back({root / "overlay-containers", RuntimeKind::kCrio, "userdata/config.json"});
  }
}

void RuntimeStateReader::rescan() {
  ++generation_;
  stats_ = {};
  std::vector<bool> keep(layouts_.size(), false);
  for (std::size_t i = 0; i < layouts_.size(); ++i) {
    const int fd = ::open(layouts_[i].dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      // Absent is normal (a node runs one runtime, and the k8s.io namespace directory appears
      // with the first pod); anything else hides containers, so keep what was known.
      if (errno != ENOENT && errno != ENOTDIR) {
        errors_.report(kComponent, "unreadable_dir",
                       layouts_[i].dir.string() + ": " + errnoText(errno));
        keep[i] = true;
      }
      continue;
    }
    ++stats_.layouts_found;
    keep[i] = !scanLayout(i, fd);  // closes fd
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    if (e.seen_generation == generation_ || keep[e.layout]) {
      ++it;
    } else {
      it = entries_.erase(it);
      ++stats_.forgotten;
    }
  }
  inheritFromSandboxes();
}

bool RuntimeStateReader::scanLayout(std::size_t index, int dir_fd) {
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    errors_.report(kComponent, "unreadable_dir",
                   layouts_[index].dir.string() + ": " + errnoText(errno));
    ::close(dir_fd);
    return false;
  }
  bool ok = true;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(dir);
    if (e == nullptr) {
      if (errno != 0) {
        errors_.report(kComponent, "unreadable_dir",
                       layouts_[index].dir.string() + ": " + errnoText(errno));
        ok = false;
      }
      break;
    }
    const std::string_view name(e->d_name);
    // Ids only: CRI-O keeps lock files here, containerd nothing else, but neither is ours.
    if (!isContainerId(name)) continue;
    visit(index, ::dirfd(dir), name, e->d_ino);
  }
  ::closedir(dir);
  return ok;
}

void RuntimeStateReader::visit(std::size_t layout_index, int dir_fd, std::string_view id,
                               std::uint64_t dir_inode) {
  ++stats_.listed;
  const Layout& layout = layouts_[layout_index];
  auto it = entries_.find(id);
  const bool known = it != entries_.end() && it->second.layout == layout_index &&
                     it->second.dir_inode == dir_inode;
  if (it != entries_.end() && it->second.seen_generation == generation_) return;  // other layout
  // A bundle's config.json is written once, when the container is created, and a new container
  // with the same id gets a new directory: a parsed id whose directory is the same is done.
  if (known && it->second.usable) {
    it->second.seen_generation = generation_;
    return;
  }

  path_.assign(id).append("/").append(layout.config_rel);
  FileStamp stamp;
  struct stat st {};
  if (::fstatat(dir_fd, path_.c_str(), &st, 0) != 0) {
    stamp.error = errno;
  } else {
    stamp.inode = st.st_ino;
    stamp.mtime_ns =
        static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    stamp.size = st.st_size;
  }
  if (stamp.error == ENOENT || stamp.error == ENOTDIR) {
    ++stats_.pending;  // not written yet, or being removed; an entry left unseen is forgotten
    return;
  }
  // A file that failed before is read again only once it has changed, so it is counted once.
  if (known && it->second.stamp == stamp) {
    it->second.seen_generation = generation_;
    return;
  }

  Entry& entry = it != entries_.end() ? it->second : entries_[std::string(id)];
  entry = Entry{};
  entry.stamp = stamp;
  entry.dir_inode = dir_inode;
  entry.layout = layout_index;
  entry.seen_generation = generation_;
  if (stamp.error != 0) {
    ++stats_.failed;
    errors_.report(kComponent, "unreadable_file",
                   (layout.dir / path_).string() + ": " + errnoText(stamp.error));
    return;
  }
  readConfig(layout, dir_fd, id, entry);
}

void RuntimeStateReader::readConfig(const Layout& layout, int dir_fd, std::string_view id,
                                    Entry& entry) {
  const auto fail = [&](std::string_view reason, std::string_view why) {
    ++stats_.failed;
    errors_.report(kComponent, reason, (layout.dir / path_).string() + ": " + std::string(why));
  };
  if (entry.stamp.size > kMaxConfigBytes) {
    fail("config_too_large", std::to_string(entry.stamp.size) + " bytes");
    return;
  }
  const int fd = ::openat(dir_fd, path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      ++stats_.pending;
      entry.seen_generation = 0;  // removed since the stat: forget it
      return;
    }
    fail("unreadable_file", errnoText(errno));
    return;
  }
  buffer_.clear();
  // Read to the end rather than trusting the stat's size: the file may have grown since.
  bool read_ok = true;
  for (;;) {
    const std::size_t used = buffer_.size();
    if (used > static_cast<std::size_t>(kMaxConfigBytes)) break;
    buffer_.resize(used + 64 * 1024);
    const ssize_t n = ::read(fd, buffer_.data() + used, buffer_.size() - used);
    if (n < 0) {
      if (errno == EINTR) {
        buffer_.resize(used);
        continue;
      }
      fail("unreadable_file", errnoText(errno));
      read_ok = false;
      break;
    }
    buffer_.resize(used + static_cast<std::size_t>(n));
    if (n == 0) break;
  }
  ::close(fd);
  if (!read_ok) return;
  if (buffer_.size() > static_cast<std::size_t>(kMaxConfigBytes)) {
    fail("config_too_large", std::to_string(buffer_.size()) + " bytes or more");
    return;
  }

  ++stats_.parsed;
  auto meta = parseRuntimeConfig(buffer_, layout.kind);
  if (!meta) {
    // Another client's container in the same state directory (podman shares CRI-O's storage,
    // `ctr -n k8s.io run` containerd's namespace): not ours and not an error.
    if (meta.error() == RuntimeConfigError::kNotKubernetes) {
      ++stats_.foreign;
      return;
    }
    fail(runtimeConfigErrorReason(meta.error()), describe(meta.error()));
    return;
  }
  entry.meta = std::move(*meta);
  if (entry.meta.is_sandbox && entry.meta.sandbox_id.empty()) entry.meta.sandbox_id.assign(id);
  entry.usable = true;
  entry.inherits = entry.meta.pod_uid.empty() || entry.meta.namespace_name.empty() ||
                   entry.meta.pod_name.empty();
}

void RuntimeStateReader::inheritFromSandboxes() {
  for (auto& [id, entry] : entries_) {
    if (!entry.usable || !entry.inherits) continue;
    const auto sandbox = entries_.find(entry.meta.sandbox_id);
    if (sandbox == entries_.end() || !sandbox->second.usable || !sandbox->second.meta.is_sandbox) {
      continue;
    }
    const ContainerMeta& from = sandbox->second.meta;
    ContainerMeta& to = entry.meta;
    if (to.pod_uid.empty()) to.pod_uid = from.pod_uid;
    if (to.namespace_name.empty()) to.namespace_name = from.namespace_name;
    if (to.pod_name.empty()) to.pod_name = from.pod_name;
    entry.inherits = false;
  }
}

const ContainerMeta* RuntimeStateReader::find(std::string_view container_id) const {
  const auto it = entries_.find(container_id);
  if (it == entries_.end() || !it->second.usable) return nullptr;
  return &it->second.meta;
}

const ContainerMeta* RuntimeStateReader::findSandboxOfPod(std::string_view pod_uid) const {
  if (pod_uid.empty()) return nullptr;
  for (const auto& [id, entry] : entries_) {
    if (entry.usable && entry.meta.is_sandbox && entry.meta.pod_uid == pod_uid) return &entry.meta;
  }
  return nullptr;
}

std::size_t RuntimeStateReader::size() const {
  std::size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry.usable ? 1 : 0;
  return n;
}

std::size_t RuntimeStateReader::podCount() const {
  std::size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry.usable && entry.meta.is_sandbox ? 1 : 0;
  return n;
}

}  // namespace nodewarden::pods
