// libFuzzer target: a tenant's spool directory name read back at start (tenantFromDirName) and
// Loki's tenant id rule (validateLokiTenant), on arbitrary bytes. Anything under
// spool/logs/tenants/ can be there (a stray file, a damaged name); a name that is accepted must
// be a valid tenant and must be exactly the name the agent writes for it, so no two names open one
// tenant's spool twice.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pipeline/log_tenant_router.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto tenant = nodewarden::tenantFromDirName(in)) {
    if (!nodewarden::validateLokiTenant(*tenant)) __builtin_trap();
    if (nodewarden::tenantDirName(*tenant) != in) __builtin_trap();
  }
  if (nodewarden::validateLokiTenant(in)) {
    const auto back = nodewarden::tenantFromDirName(nodewarden::tenantDirName(in));
    if (!back || *back != in) __builtin_trap();
  }
  return 0;
}
