// libFuzzer target for parseRuntimeConfig, the OCI bundle config.json annotation parser behind
// RuntimeStateReader: every input is parsed as a containerd and as a CRI-O bundle. Seeds are
// tests/fixtures/runtime_state (real-shaped config.json files, a truncated one included).
//
// What a reader gets wrong: this checks more than "no crash". A parse that succeeds must hold
// what the header promises and the collector relies on (a sandbox has its pod's uid, namespace and
// name; a container its name and a way to its pod; every name a Kubernetes name, ids 64 hex);
// anything else traps, because a garbled file must never become a plausible wrong label.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/pods/runtime_state.h"

namespace {

void check(bool invariant) {
  if (!invariant) {
    __builtin_trap();
  }
}

bool isName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return true;
}

bool isId(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void checkMeta(const nodewarden::pods::ContainerMeta& m) {
  const bool has_pod = !m.pod_uid.empty() && !m.namespace_name.empty() && !m.pod_name.empty();
  if (m.is_sandbox) {
    check(has_pod);
    check(m.container_name.empty());
  } else {
    check(isName(m.container_name));
    check(has_pod || !m.sandbox_id.empty());
  }
  if (!m.pod_uid.empty()) {
    check(m.pod_uid.size() == 36);
    for (const std::size_t dash : {8U, 13U, 18U, 23U}) check(m.pod_uid[dash] == '-');
  }
  if (!m.namespace_name.empty()) check(isName(m.namespace_name));
  if (!m.pod_name.empty()) check(isName(m.pod_name));
  if (!m.sandbox_id.empty()) check(isId(m.sandbox_id));
  for (const char c : m.image) {
    check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using nodewarden::pods::parseRuntimeConfig;
  using nodewarden::pods::runtimeConfigErrorReason;
  using nodewarden::pods::RuntimeKind;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const RuntimeKind kind : {RuntimeKind::kContainerd, RuntimeKind::kCrio}) {
    const auto parsed = parseRuntimeConfig(text, kind);
    if (parsed) {
      checkMeta(*parsed);
    } else {
      check(!runtimeConfigErrorReason(parsed.error()).empty());
    }
  }
  return 0;
}
