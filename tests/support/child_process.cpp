// fork/exec for tests. Between fork and exec only async-signal-safe calls are made: the parent
// prepares every string before forking because the test binary may have threads (libcurl,
// GoogleTest's death-test machinery).
#include "tests/support/child_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>
#include <utility>

namespace nodewarden::testing {
namespace {

struct ChildFailure {
  int step = 0;  // index into kSteps
  int error = 0;
};
constexpr const char* kSteps[] = {"open output", "join cgroup", "exec", "set parent death signal"};

// Writes a decimal pid without allocating (async-signal-safe).
std::size_t formatPid(pid_t pid, char* buf, std::size_t size) {
  char tmp[24];
  std::size_t n = 0;
  auto v = static_cast<unsigned long>(pid);
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof(tmp));
  std::size_t i = 0;
  while (n > 0 && i < size) buf[i++] = tmp[--n];
  return i;
}

[[noreturn]] void failChild(int fd, int step) {
  ChildFailure failure{step, errno};
  ssize_t unused = ::write(fd, &failure, sizeof(failure));
  (void)unused;
  ::_exit(127);
}

}  // namespace

std::expected<pid_t, std::string> spawnProcess(const std::vector<std::string>& argv,
                                               const SpawnOptions& options) {
  if (argv.empty()) return std::unexpected("empty argv");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string output = options.output.empty() ? "/dev/null" : options.output.string();
  std::vector<std::string> procs;
  for (const auto& p : options.join_cgroup_procs) procs.push_back(p.string());

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return std::unexpected(std::string("pipe2: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return std::unexpected(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::close(report[0]);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) failChild(report[1], 3);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
    if (options.new_process_group) ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // exec keeps ignored signals ignored; libcurl ignores SIGPIPE.
    ::signal(SIGPIPE, SIG_DFL);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::close(devnull);
    }
    const int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0) failChild(report[1], 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (out > 2) ::close(out);
    char pidbuf[24];
    const std::size_t pidlen = formatPid(::getpid(), pidbuf, sizeof(pidbuf));
    for (const auto& path : procs) {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) failChild(report[1], 1);
      if (::write(fd, pidbuf, pidlen) < 0) failChild(report[1], 1);
      ::close(fd);
    }
    ::execvp(args[0], args.data());
    failChild(report[1], 2);
  }
  ::close(report[1]);
  ChildFailure failure;
  ssize_t n;
  do {
    n = ::read(report[0], &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return std::unexpected(std::string(kSteps[failure.step]) + " for " + argv[0] + ": " +
                           std::strerror(failure.error));
  }
  return pid;
}

ChildProcess::~ChildProcess() { stop(std::chrono::seconds(3)); }

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    stop(std::chrono::seconds(3));
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
  }
  return *this;
}

std::expected<ChildProcess, std::string> ChildProcess::start(const std::vector<std::string>& argv,
                                                             const SpawnOptions& options) {
  auto pid = spawnProcess(argv, options);
  if (!pid) return std::unexpected(pid.error());
  return ChildProcess(*pid);
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) status_ = status;
  pid_ = -1;
  return false;
}

std::optional<int> ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) status_ = status;
  pid_ = -1;
  return status_;
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace nodewarden::testing
