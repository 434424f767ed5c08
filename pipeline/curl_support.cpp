#include "pipeline/curl_support.h"

#include <mutex>

namespace nodewarden {

void initCurlOnce() {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool appendHeader(CurlHeaders& list, const std::string& header) {
  curl_slist* next = curl_slist_append(list.get(), header.c_str());
  if (next == nullptr) return false;
  (void)list.release();  // curl_slist_append returned the same list, now longer
  list.reset(next);
  return true;
}

int abortWhenCancelled(void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancelled)->load() ? 1 : 0;
}

}  // namespace nodewarden
