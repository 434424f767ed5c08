# Benchmarks that print figures (never pass/fail on timing). Included by bench/CMakeLists.txt.
#   bench_collect_cycle  CgroupCollector cycle cost and allocations vs the read floor, on tmpfs
#                        trees and on real cgroups (--tree=tmpfs|real)
#   bench_make_tree      writes one synthetic kubelet cgroup tree (used by agent_rss.sh)
#   bench_agent_rss      (custom target) runs agent_rss.sh against the built agent
#   bench_parse          Google Benchmark micro benchmarks of the cgroup parsers (if installed)
#   bench_log_parse      CRI and Docker log record parsing + joining: MiB/s and allocs per record
#   bench_victim         fixed unit of work in a loop (cpu, memory, io), ops/s every 0.5 s to a file
#   bench_detector_eval  precision/recall of the agent's noisy-neighbour verdicts on a real node
#   bench_kill9_duplicates  lines the real agent sends twice per kill -9 and restart (fake Loki)

add_library(nodewarden_bench_support STATIC synthetic_tree.cpp read_floor.cpp real_cgroups.cpp)
target_include_directories(nodewarden_bench_support PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(nodewarden_bench_support PRIVATE nodewarden_warnings)

add_executable(bench_make_tree make_tree.cpp)
target_link_libraries(bench_make_tree PRIVATE nodewarden_bench_support nodewarden_warnings)

# alloc_counter.cpp replaces malloc and operator new for the whole executable: link it into
# this benchmark only.
add_executable(bench_collect_cycle collect_cycle.cpp alloc_counter.cpp)
target_link_libraries(bench_collect_cycle
  PRIVATE nodewarden_bench_support nodewarden::collectors nodewarden::pipeline nodewarden_warnings)

if(TARGET nodewarden)
  add_custom_target(bench_agent_rss
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/agent_rss.sh $<TARGET_FILE:nodewarden>
            $<TARGET_FILE:bench_make_tree>
    DEPENDS nodewarden bench_make_tree
    USES_TERMINAL
    COMMENT "Peak RSS of the agent on a 1000-container synthetic tree")
endif()

# alloc_counter.cpp again: allocations per record must be zero once the buffers are warm.
add_executable(bench_log_parse log_parse_bench.cpp alloc_counter.cpp)
target_link_libraries(bench_log_parse
  PRIVATE nodewarden_bench_support nodewarden::collectors nodewarden_warnings)

# Parser micro benchmarks, when Google Benchmark is installed (libbenchmark-dev).
find_package(benchmark CONFIG QUIET)
if(benchmark_FOUND)
  add_executable(bench_parse parse_bench.cpp)
  target_link_libraries(bench_parse
    PRIVATE nodewarden_bench_support nodewarden::collectors benchmark::benchmark nodewarden_warnings)
endif()

# The log path: bench_make_log_corpus writes a synthetic CRI log tree (used by log_rss.sh);
# bench_log_path measures floor / parse / full path (needs the fake Loki from tests/fakes, so it is
# built only with NODEWARDEN_TESTS=ON); bench_log_rss runs log_rss.sh against the built agent.
add_library(nodewarden_bench_log_corpus STATIC log_corpus.cpp)
target_include_directories(nodewarden_bench_log_corpus PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(nodewarden_bench_log_corpus PRIVATE nodewarden_warnings)

add_executable(bench_make_log_corpus make_log_corpus.cpp)
target_link_libraries(bench_make_log_corpus PRIVATE nodewarden_bench_log_corpus nodewarden_warnings)

if(TARGET nodewarden_fake_loki)
  # Snappy::snappy is the imported target the top-level CMakeLists.txt found.
  add_executable(bench_log_path log_path.cpp)
  target_link_libraries(bench_log_path
    PRIVATE nodewarden_bench_log_corpus nodewarden::collectors nodewarden::pipeline
            nodewarden::exporters nodewarden_fake_loki Snappy::snappy Threads::Threads
            nodewarden_warnings)
endif()

if(TARGET nodewarden AND TARGET fake-loki)
  add_custom_target(bench_log_rss
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/log_rss.sh $<TARGET_FILE:nodewarden>
            $<TARGET_FILE:bench_make_log_corpus> $<TARGET_FILE:fake-loki>
    DEPENDS nodewarden bench_make_log_corpus fake-loki
    USES_TERMINAL
    COMMENT "Peak RSS and CPU of the agent shipping a 1 GiB log corpus to fake-loki")
endif()

# The detector's cost per cycle and its memory per container (alloc_counter: allocations per
# steady-state cycle).
add_executable(bench_detector_cycle detector_cycle.cpp alloc_counter.cpp)
target_link_libraries(bench_detector_cycle
  PRIVATE nodewarden::exporters nodewarden::pipeline nodewarden_warnings)
# The detector's evaluation: bench_victim is the workload whose rate is the ground truth;
# bench_detector_eval builds a real node (tests/support's NodeBuilder, so it needs
# NODEWARDEN_TESTS=ON), runs victim, antagonists and confounders on a seeded schedule next to the
# real agent and scores the agent's /signals verdicts.
add_executable(bench_victim victim_loop.cpp)
target_link_libraries(bench_victim PRIVATE nodewarden_warnings)

if(TARGET nodewarden_node_builder AND TARGET nodewarden)
  add_executable(bench_detector_eval detector_eval.cpp)
  target_link_libraries(bench_detector_eval
    PRIVATE nodewarden_node_builder nlohmann_json::nlohmann_json nodewarden_warnings)
  add_dependencies(bench_detector_eval nodewarden bench_victim)
endif()

# Lines the real agent sends twice per kill -9 and restart, at a given rate, with and without a
# Loki outage before the kill (the fake Loki and ChildProcess come from tests/, so it needs
# NODEWARDEN_TESTS=ON).
if(TARGET nodewarden_fake_loki AND TARGET nodewarden_node_builder AND TARGET nodewarden)
  add_executable(bench_kill9_duplicates kill9_duplicates.cpp)
  target_link_libraries(bench_kill9_duplicates
    PRIVATE nodewarden_fake_loki nodewarden_node_builder nodewarden::pipeline nodewarden_warnings)
  target_compile_definitions(bench_kill9_duplicates
    PRIVATE NODEWARDEN_AGENT_BINARY="$<TARGET_FILE:nodewarden>")
  add_dependencies(bench_kill9_duplicates nodewarden)
endif()
