// bench_make_tree: writes one synthetic kubelet cgroup tree for whole-process benchmarks
// (bench/agent_rss.sh). "v1" means the hybrid layout: v1 controllers plus unified/ for PSI.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "bench/synthetic_tree.h"

int main(int argc, char** argv) {
  using nodewarden::bench::TreeLayout;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <dir> <containers> <v1|v2>\n", argv[0]);
    return 2;
  }
  const std::string_view layout = argv[3];
  if (layout != "v1" && layout != "v2") {
    std::fprintf(stderr, "layout must be v1 or v2, not %s\n", argv[3]);
    return 2;
  }
  char* end = nullptr;
  const unsigned long containers = std::strtoul(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0' || containers == 0) {
    std::fprintf(stderr, "containers must be a positive number, not %s\n", argv[2]);
    return 2;
  }
  nodewarden::bench::SyntheticTreeOptions options;
  options.root = argv[1];
  options.containers = containers;
  options.layout = layout == "v1" ? TreeLayout::kHybrid : TreeLayout::kV2;
  auto tree = nodewarden::bench::buildSyntheticTree(options);
  if (!tree) {
    std::fprintf(stderr, "bench_make_tree: %s\n", tree.error().c_str());
    return 1;
  }
  std::printf("%s: %s layout, %zu pods, %zu containers, %zu files (%zu read per cycle)\n",
              tree->root.c_str(), nodewarden::bench::layoutName(tree->layout), tree->pods,
              tree->containers, tree->files_written, tree->read_files.size());
  return 0;
}
