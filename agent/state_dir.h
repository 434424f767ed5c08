// State-dir checks: whether a directory under the state dir (or a file's directory there) can be
// used now, asked before a component that keeps durable state starts on it. The answer names the
// path and the system's reason, e.g. "cannot write in /var/lib/nodewarden/checkpoints: Read-only
// file system", for /readyz and the log.
//
// What a reader gets wrong: these are run-time checks of the node's filesystem, not config checks.
// A state dir that is read-only, or where a directory is a file (or the reverse), is a condition
// that an operator fixes on the node while the agent keeps running; the caller retries, it does
// not stop. And root passes permission bits, so "writable" is found out by writing (a probe file
// created and removed), not by access(2).
#pragma once

#include <expected>
#include <filesystem>
#include <string>

namespace nodewarden {

// Creates dir (and its parents) when missing, then creates and removes a probe file in it.
std::expected<void, std::string> checkStateDir(const std::filesystem::path& dir);

// checkStateDir of file's directory, and file itself, when it exists, is a regular file that can
// be opened for reading and writing (a directory or a socket of that name is an error).
std::expected<void, std::string> checkStateFile(const std::filesystem::path& file);

}  // namespace nodewarden
