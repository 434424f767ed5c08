// Pod labels the user allow-lists (kubernetes.pod_labels): checking that a key is a Kubernetes
// label key, and turning it into a label name that Prometheus and Loki accept. The log tailer puts
// them on Loki streams; the agent puts them on nodewarden_pod_labels, kube-state-metrics style.
//
// What a reader gets wrong: sanitizing is not one-to-one. "app.kubernetes.io/name" and
// "app_kubernetes_io/name" both become app_kubernetes_io_name, so the config refuses a list with
// two such keys rather than letting one pod label silently shadow the other. A label key is
// checked the way the API server checks it (apimachinery validation IsQualifiedName): an
// optional DNS-1123 subdomain prefix and "/", then a name of at most 63 characters.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace nodewarden {

// Whether key is a valid Kubernetes label key; the error says what is wrong with it.
[[nodiscard]] std::expected<void, std::string> checkPodLabelKey(std::string_view key);

// A label name matching [a-zA-Z_][a-zA-Z0-9_]*: every other character becomes '_', and a name that
// would start with a digit gets a leading '_'. app.kubernetes.io/name -> app_kubernetes_io_name.
[[nodiscard]] std::string sanitizeLabelName(std::string_view key);

// The label of nodewarden_pod_labels for a pod label key, spelled as kube-state-metrics spells
// kube_pod_labels': "label_" + the key with every character outside [a-zA-Z0-9_] as '_'.
[[nodiscard]] std::string podLabelMetricName(std::string_view key);

}  // namespace nodewarden
