#include "pipeline/curl_support.h"

#include <array>
#include <fstream>
#include <mutex>
#include <string_view>

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

std::optional<std::string> readBearerToken(const std::string& path) {
  constexpr std::size_t kMaxTokenBytes = std::size_t{1} << 20U;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  std::array<char, 4096> chunk{};
  while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
    text.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxTokenBytes) return std::nullopt;
  }
  constexpr std::string_view kSpace = " \t\r\n";
  const auto begin = text.find_first_not_of(kSpace);
  if (begin == std::string::npos) return std::nullopt;
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

}  // namespace nodewarden
