// TempDir: a fresh directory under the system's temp dir for one test, removed with everything in
// it when the object goes. Header-only so any test target can use it without linking more.
//
// What a reader gets wrong: a failed mkdtemp is a test failure (ADD_FAILURE), not an exception;
// path() is then empty and the test's own assertions fail next.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace nodewarden::test_support {

class TempDir {
 public:
  // prefix names the directory (prefix-XXXXXX) so a leftover tells which test made it.
  explicit TempDir(std::string_view prefix) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return;
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace nodewarden::test_support
