// Test helpers for the node collector tests: fixture paths and whole-file reads.
//
// What a reader gets wrong: tests/fixtures/proc is a snapshot of a real machine's /proc (2 cpus,
// kernel 6.x); the expected numbers in the tests are that snapshot's, so regenerating the fixture
// means updating them.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodewarden::fixtures {

inline std::filesystem::path fixturePath(const std::filesystem::path& relative) {
  return std::filesystem::path(NODEWARDEN_FIXTURES) / relative;
}

inline std::string readFixture(const std::filesystem::path& relative) {
  std::ifstream in(fixturePath(relative), std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

}  // namespace nodewarden::fixtures
