// bench_victim: the "victim" workload of bench_detector_eval. It repeats one fixed unit of work
// in a loop, single-threaded, and every --period seconds appends "<monotonic ms> <units per
// second>" to --out, so the harness can tell how fast it ran in any interval.
//
//   cpu     a unit is 20,000 rounds of integer mixing: only the CPU it gets matters.
//   memory  a unit is reading (summing) one random 4 KiB page of a file-backed working set
//           (--file, --file-mib), mapped with mmap. The file's page cache is charged to the
//           victim's memory cgroup, so when a neighbour fills the node's memory limit the kernel
//           reclaims these pages and the reads fault to the disk. mmap, not pread: a fault reads
//           around (128 KiB), so the cache refills within seconds once the neighbour is gone,
//           where single-page random preads would take tens of seconds to recover.
//   io      a unit is one 4 KiB O_DIRECT pread at a random offset of the same file: every read
//           is a disk read, so it slows down when a neighbour keeps the disk busy.
//
// What a reader gets wrong: on a machine without swap only page cache can be reclaimed, which is
// why the memory mode reads a real file rather than touching anonymous memory. The file is
// created (and filled) when it is missing or shorter than --file-mib; nothing is printed to
// --out before the working set is ready, so the first line marks the start of measurement.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void onSignal(int) { g_stop = true; }

struct Args {
  std::string mode = "cpu";
  std::string out;
  std::string file = "/var/tmp/nodewarden-victim.dat";
  std::uint64_t file_mib = 256;
  double period = 0.5;
};

void usage() {
  std::fprintf(stderr,
               "usage: bench_victim --mode cpu|memory|io --out FILE [--file PATH] [--file-mib N]"
               " [--period SECONDS]\n");
}

bool parseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (arg == "--mode") {
      a.mode = v;
    } else if (arg == "--out") {
      a.out = v;
    } else if (arg == "--file") {
      a.file = v;
    } else if (arg == "--file-mib") {
      a.file_mib = std::strtoull(v, nullptr, 10);
    } else if (arg == "--period") {
      a.period = std::strtod(v, nullptr);
    } else {
      return false;
    }
  }
  return !a.out.empty() && (a.mode == "cpu" || a.mode == "memory" || a.mode == "io") &&
         a.file_mib > 0 && a.period > 0.01;
}

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The file, filled with non-zero data (so no filesystem keeps it sparse), fsync'd.
bool prepareFile(const std::string& path, std::uint64_t bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) >= bytes) {
    return true;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "bench_victim: open %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  constexpr std::size_t kChunk = 1 << 20;
  auto buf = std::make_unique<std::uint64_t[]>(kChunk / 8);
  std::uint64_t state = 42;
  for (std::uint64_t done = 0; done < bytes && !g_stop; done += kChunk) {
    for (std::size_t i = 0; i < kChunk / 8; ++i) buf[i] = splitmix(state) | 1;
    if (::write(fd, buf.get(), kChunk) != static_cast<ssize_t>(kChunk)) {
      std::fprintf(stderr, "bench_victim: write %s: %s\n", path.c_str(), std::strerror(errno));
      ::close(fd);
      return false;
    }
  }
  ::fsync(fd);
  ::close(fd);
  return !g_stop;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!parseArgs(argc, argv, args)) {
    usage();
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const std::uint64_t file_bytes = args.file_mib << 20;
  constexpr std::size_t kPage = 4096;
  int fd = -1;
  void* raw = nullptr;
  if (args.mode != "cpu") {
    if (!prepareFile(args.file, file_bytes)) return 1;
    const int flags = O_RDONLY | O_CLOEXEC | (args.mode == "io" ? O_DIRECT : 0);
    fd = ::open(args.file.c_str(), flags);
    if (fd < 0) {
      std::fprintf(stderr, "bench_victim: open %s: %s\n", args.file.c_str(), std::strerror(errno));
      return 1;
    }
    if (::posix_memalign(&raw, kPage, kPage) != 0) return 1;
  }
  const volatile std::uint64_t* map = nullptr;
  if (args.mode == "memory") {
    void* m = ::mmap(nullptr, file_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "bench_victim: mmap %s: %s\n", args.file.c_str(), std::strerror(errno));
      return 1;
    }
    map = static_cast<const volatile std::uint64_t*>(m);
    // Warm the page cache once, so the baseline is the all-cached rate.
    std::uint64_t warm = 0;
    for (std::uint64_t off = 0; off < file_bytes && !g_stop; off += kPage) warm += map[off / 8];
    if (warm == 1) std::fprintf(stderr, "bench_victim: unlikely\n");
  }
  std::unique_ptr<void, decltype(&std::free)> page(raw, &std::free);

  std::FILE* out = std::fopen(args.out.c_str(), "ae");
  if (out == nullptr) {
    std::fprintf(stderr, "bench_victim: open %s: %s\n", args.out.c_str(), std::strerror(errno));
    return 1;
  }
  const auto period =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.period));
  const std::uint64_t pages = file_bytes / kPage;
  std::uint64_t state = 7;
  std::uint64_t sink = 0;
  std::uint64_t units = 0;
  auto window_start = Clock::now();
  while (!g_stop) {
    if (args.mode == "cpu") {
      std::uint64_t x = state;
      for (int i = 0; i < 20000; ++i) x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ULL + 1;
      state = x;
      sink += x & 1;
    } else if (map != nullptr) {
      // The whole page: a single line per unit would make the rate mostly a TLB-miss rate,
      // which changes with the folio sizes the page cache was refilled with after a reclaim.
      const std::uint64_t word = (splitmix(state) % pages) * (kPage / 8);
      for (std::uint64_t i = 0; i < kPage / 8; ++i) sink += map[word + i];
    } else {
      const auto off = static_cast<off_t>((splitmix(state) % pages) * kPage);
      if (::pread(fd, page.get(), kPage, off) != static_cast<ssize_t>(kPage)) {
        std::fprintf(stderr, "bench_victim: pread: %s\n", std::strerror(errno));
        return 1;
      }
      sink += static_cast<const unsigned char*>(page.get())[off % 512];
    }
    ++units;
    const auto now = Clock::now();
    if (now - window_start >= period) {
      const double secs = std::chrono::duration<double>(now - window_start).count();
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
      std::fprintf(out, "%lld %.1f\n", static_cast<long long>(ms),
                   static_cast<double>(units) / secs);
      std::fflush(out);
      units = 0;
      window_start = now;
    }
  }
  std::fclose(out);
  if (map != nullptr) ::munmap(const_cast<std::uint64_t*>(map), file_bytes);
  if (fd >= 0) ::close(fd);
  // Keeps the work from being optimized away.
  return sink == 0xFFFFFFFFFFFFFFFFULL ? 3 : 0;
}
