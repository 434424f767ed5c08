// The one Pod decoder (see pod.h): nlohmann::json without exceptions, every field read by one
// FieldReader that notes what it had to leave empty.
#include "collectors/pods/pod.h"

#include <nlohmann/json.hpp>

#include "collectors/common/rfc3339.h"

namespace nodewarden::pods {
namespace {

using nlohmann::json;

std::string cut(std::string text) {
  if (text.size() > ContainerState::kMaxMessageBytes) text.resize(ContainerState::kMaxMessageBytes);
  return text;
}

// Reads one field; any JSON type problem is noted in the list and leaves the default.
class FieldReader {
 public:
  explicit FieldReader(PodFieldProblems& problems) : problems_(problems) {}

  void bad(std::string what, PodFieldProblem kind = PodFieldProblem::kBadValue) {
    problems_.add(kind, std::move(what));
  }

  // obj[key] if obj is an object holding key with a non-null value, else nullptr.
  static const json* member(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::string string(const json& obj, const char* key) {
    const json* v = member(obj, key);
    if (v == nullptr) return {};
    if (!v->is_string()) {
      bad(std::string(key) + " is not a string");
      return {};
    }
    return v->get<std::string>();
  }

  int integer(const json& obj, const char* key) {
    const json* v = member(obj, key);
    if (v == nullptr) return 0;
    if (!v->is_number_integer() || v->get<std::int64_t>() < INT32_MIN ||
        v->get<std::int64_t>() > INT32_MAX) {
      bad(std::string(key) + " is not a 32-bit integer");
      return 0;
    }
    return static_cast<int>(v->get<std::int64_t>());
  }

  const json* object(const json& obj, const char* key) {
    const json* v = member(obj, key);
    if (v != nullptr && !v->is_object()) {
      bad(std::string(key) + " is not an object");
      return nullptr;
    }
    return v;
  }

  const json* array(const json& obj, const char* key) {
    const json* v = member(obj, key);
    if (v != nullptr && !v->is_array()) {
      bad(std::string(key) + " is not an array");
      return nullptr;
    }
    return v;
  }

  std::optional<Timestamp> time(const json& obj, const char* key) {
    const std::string text = string(obj, key);
    if (text.empty()) return std::nullopt;
    auto t = parseRfc3339(text);
    if (!t) bad(std::string(key) + " '" + text + "' is not an RFC 3339 time");
    return t;
  }

 private:
  PodFieldProblems& problems_;
};

ContainerState parseState(FieldReader& in, const json* state) {
  ContainerState out;
  if (state == nullptr) return out;
  const json* running = in.object(*state, "running");
  const json* waiting = in.object(*state, "waiting");
  const json* terminated = in.object(*state, "terminated");
  if (terminated != nullptr) {
    out.kind = ContainerStateKind::kTerminated;
    out.reason = in.string(*terminated, "reason");
    out.message = cut(in.string(*terminated, "message"));
    out.exit_code = in.integer(*terminated, "exitCode");
    out.signal = in.integer(*terminated, "signal");
    if (out.signal == 0 && out.exit_code > 128 && out.exit_code <= 128 + 64) {
      out.signal = out.exit_code - 128;
    }
    out.started_at = in.time(*terminated, "startedAt");
    out.finished_at = in.time(*terminated, "finishedAt");
  } else if (running != nullptr) {
    out.kind = ContainerStateKind::kRunning;
    out.started_at = in.time(*running, "startedAt");
  } else if (waiting != nullptr) {
    out.kind = ContainerStateKind::kWaiting;
    out.reason = in.string(*waiting, "reason");
    out.message = cut(in.string(*waiting, "message"));
  }
  return out;
}

void parseStatuses(FieldReader& in, const json& status, const char* key,
                   std::vector<ContainerStatus>& out) {
  const json* statuses = in.array(status, key);
  if (statuses == nullptr) return;
  for (const json& s : *statuses) {
    if (!s.is_object()) {
      in.bad(std::string(key) + ": a status that is not an object");
      continue;
    }
    ContainerStatus c;
    c.name = in.string(s, "name");
    if (c.name.empty()) {
      in.bad(std::string(key) + ": a status without a name", PodFieldProblem::kMissingName);
      continue;
    }
    // "containerd://<id>", "cri-o://<id>", "docker://<id>" (kubelet's kubecontainer.ContainerID).
    const std::string id = in.string(s, "containerID");
    c.container_id = std::string(stripContainerIdScheme(id));
    if (c.container_id.size() != id.size())
      c.runtime = id.substr(0, id.size() - c.container_id.size() - 3);
    c.image = in.string(s, "image");
    c.restart_count = in.integer(s, "restartCount");
    c.state = parseState(in, in.object(s, "state"));
    c.last_state = parseState(in, in.object(s, "lastState"));
    out.push_back(std::move(c));
  }
}

PodPhase parsePhase(std::string_view s) {
  if (s == "Pending") return PodPhase::kPending;
  if (s == "Running") return PodPhase::kRunning;
  if (s == "Succeeded") return PodPhase::kSucceeded;
  if (s == "Failed") return PodPhase::kFailed;
  return PodPhase::kUnknown;
}

QosClass parseQos(std::string_view s) {
  if (s == "Guaranteed") return QosClass::kGuaranteed;
  if (s == "Burstable") return QosClass::kBurstable;
  if (s == "BestEffort") return QosClass::kBestEffort;
  return QosClass::kUnknown;
}

}  // namespace

void PodFieldProblems::add(PodFieldProblem kind, std::string what) {
  if (count == 0) {
    first = std::move(what);
    first_kind = kind;
  }
  ++count;
}

std::expected<PodInfo, PodRejection> decodePod(const json& item, PodFieldProblems& problems) {
  using Kind = PodRejection::Kind;
  const auto reject = [](Kind kind, std::string why) {
    return std::unexpected(PodRejection{kind, std::move(why)});
  };
  if (!item.is_object()) return reject(Kind::kNotObject, "an item is not an object");
  const json* meta = FieldReader::member(item, "metadata");
  if (meta == nullptr) return reject(Kind::kMissingField, "an item has no metadata");
  if (!meta->is_object()) return reject(Kind::kBadValue, "an item has no metadata");
  PodInfo pod;
  bool wrong_type = false;
  const auto required = [&](const char* key) -> std::string {
    const json* v = FieldReader::member(*meta, key);
    if (v == nullptr) return {};
    if (!v->is_string()) {
      wrong_type = true;
      return {};
    }
    return v->get<std::string>();
  };
  pod.uid = required("uid");
  pod.namespace_name = required("namespace");
  pod.name = required("name");
  if (wrong_type) {
    return reject(Kind::kBadValue, "an item lacks metadata.uid, .namespace or .name");
  }
  if (pod.uid.empty() || pod.namespace_name.empty() || pod.name.empty()) {
    return reject(Kind::kMissingField, "an item lacks metadata.uid, .namespace or .name");
  }
  FieldReader in(problems);
  pod.resource_version = in.string(*meta, "resourceVersion");
  if (const json* labels = in.object(*meta, "labels")) {
    for (const auto& [key, value] : labels->items()) {
      if (value.is_string()) {
        pod.labels.emplace(key, value.get<std::string>());
      } else {
        in.bad("label " + key + " is not a string");
      }
    }
  }
  // The controller only (pod.h): metav1.GetControllerOf.
  if (const json* owners = in.array(*meta, "ownerReferences")) {
    for (const json& owner : *owners) {
      if (!owner.is_object()) {
        in.bad("an ownerReference is not an object");
        continue;
      }
      const json* controller = FieldReader::member(owner, "controller");
      if (controller == nullptr || !controller->is_boolean() || !controller->get<bool>()) continue;
      pod.owner = {in.string(owner, "kind"), in.string(owner, "name")};
      break;
    }
  }
  if (const json* spec = in.object(item, "spec")) pod.node_name = in.string(*spec, "nodeName");
  if (const json* status = in.object(item, "status")) {
    pod.phase = parsePhase(in.string(*status, "phase"));
    pod.qos_class = parseQos(in.string(*status, "qosClass"));
    pod.reason = in.string(*status, "reason");
    pod.message = cut(in.string(*status, "message"));
    pod.start_time = in.time(*status, "startTime");
    parseStatuses(in, *status, "initContainerStatuses", pod.init_containers);
    parseStatuses(in, *status, "containerStatuses", pod.containers);
  }
  return pod;
}

std::string_view podPhaseName(PodPhase phase) {
  switch (phase) {
    case PodPhase::kPending:
      return "Pending";
    case PodPhase::kRunning:
      return "Running";
    case PodPhase::kSucceeded:
      return "Succeeded";
    case PodPhase::kFailed:
      return "Failed";
    case PodPhase::kUnknown:
      break;
  }
  return "Unknown";
}

std::string_view qosClassName(QosClass qos) {
  switch (qos) {
    case QosClass::kGuaranteed:
      return "Guaranteed";
    case QosClass::kBurstable:
      return "Burstable";
    case QosClass::kBestEffort:
      return "BestEffort";
    case QosClass::kUnknown:
      break;
  }
  return "";
}

std::string_view stripContainerIdScheme(std::string_view id) {
  const auto at = id.find("://");
  return at == std::string_view::npos ? id : id.substr(at + 3);
}

std::optional<Timestamp> parseRfc3339(std::string_view text) {
  const std::optional<rfc3339::Fields> fields = rfc3339::parse(text);
  if (!fields) return std::nullopt;
  return Timestamp(std::chrono::seconds(fields->local_seconds - fields->offset_seconds));
}

PodIdentity podIdentity(const PodInfo& pod) {
  PodIdentity id;
  id.namespace_name = pod.namespace_name;
  id.pod_name = pod.name;
  id.owner_kind = pod.owner.kind;
  id.owner_name = pod.owner.name;
  id.qos_class = std::string(qosClassName(pod.qos_class));
  id.labels = pod.labels;
  return id;
}

const ContainerStatus* findContainer(const PodInfo& pod, std::string_view id) {
  for (const auto* list : {&pod.init_containers, &pod.containers}) {
    for (const ContainerStatus& c : *list) {
      if (c.container_id == id) return &c;
    }
  }
  return nullptr;
}

}  // namespace nodewarden::pods
