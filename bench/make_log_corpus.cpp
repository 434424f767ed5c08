// bench_make_log_corpus: writes a synthetic kubelet container-log tree (CRI format) for the log
// path benchmarks; used by log_rss.sh. Prints one line of key=value figures on stdout, of which
// `lines` is what a reader must deliver (partial records joined).
//
// usage: bench_make_log_corpus <dir> <MiB> [pods]   (pods defaults to 8)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/log_corpus.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: bench_make_log_corpus <dir> <MiB> [pods]\n");
    return 2;
  }
  nodewarden::bench::LogCorpusOptions options;
  options.dir = argv[1];
  char* end = nullptr;
  const unsigned long long mib = std::strtoull(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0' || mib == 0) {
    std::fprintf(stderr, "bench_make_log_corpus: MiB must be a positive integer\n");
    return 2;
  }
  options.bytes = mib << 20;
  if (argc == 4) {
    const unsigned long pods = std::strtoul(argv[3], &end, 10);
    if (end == argv[3] || *end != '\0' || pods == 0) {
      std::fprintf(stderr, "bench_make_log_corpus: pods must be a positive integer\n");
      return 2;
    }
    options.pods = pods;
  }
  auto stats = nodewarden::bench::writeLogCorpus(options);
  if (!stats) {
    std::fprintf(stderr, "bench_make_log_corpus: %s\n", stats.error().c_str());
    return 1;
  }
  std::printf(
      "files=%zu bytes=%llu records=%llu lines=%llu line_bytes=%llu partial_lines=%llu "
      "stderr_lines=%llu\n",
      stats->files.size(), static_cast<unsigned long long>(stats->bytes),
      static_cast<unsigned long long>(stats->records),
      static_cast<unsigned long long>(stats->lines),
      static_cast<unsigned long long>(stats->line_bytes),
      static_cast<unsigned long long>(stats->partial_lines),
      static_cast<unsigned long long>(stats->stderr_lines));
  return 0;
}
