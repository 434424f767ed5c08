#!/usr/bin/env bash
# Sets up, builds and runs every test: the `ci` preset (warnings as errors) with unit and
# integration tests, then the `asan` preset (AddressSanitizer + UBSan) with the unit tests, then
# the libFuzzer targets for a short run each; after the ci build, deploy/check.sh checks deploy/
# (about a minute). Run as root on Debian 12: the integration tests
# create real cgroups and start a real Prometheus on 127.0.0.1.
# After each ctest run, scripts/check-skips.sh reads its JUnit report (build/<preset>/junit.xml)
# and fails on any skipped test that tests/allowed-skips.txt does not allow on this machine:
# ctest itself counts a GTEST_SKIP as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's wall time, printed as it ends and summed up at the end (README "Tests" quotes them).
STAGE="setup"; STAGE_START=$SECONDS; SUMMARY=""
stage() {
  local took=$((SECONDS - STAGE_START))
  echo "== stage '$STAGE' took ${took}s"
  SUMMARY+=$(printf '%-28s %5ss' "$STAGE" "$took")$'\n'
  STAGE=$1; STAGE_START=$SECONDS
}
trap 'stage done >/dev/null; printf "== stage times\n%s== total %ss\n" "$SUMMARY" "$SECONDS"' EXIT
bash scripts/setup.sh
JOBS=${JOBS:-$(nproc)}

stage "ci build"
echo "== ci preset: build and all tests"
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$JOBS"

stage "deploy checks"
echo "== deploy: manifests, rules, dashboards and the image's packages (deploy/check.sh)"
bash deploy/check.sh
stage "ci tests"
# Unit tests side by side (each makes its own temp dirs and cgroups, as under asan below); the
# integration tests one at a time: they start agents, Prometheus and load the machine on purpose.
ctest --preset ci -L unit -j "$JOBS" --timeout 600 --output-junit "$PWD/build/ci/junit-unit.xml"
bash scripts/check-skips.sh build/ci/junit-unit.xml
ctest --preset ci -LE unit -j 1 --timeout 600 --output-junit "$PWD/build/ci/junit.xml"
bash scripts/check-skips.sh build/ci/junit.xml

stage "asan build"
echo "== asan preset: unit tests under AddressSanitizer and UBSan"
cmake --preset asan >/dev/null
# Only the unit test programs run under the sanitizers, so only they (and the libraries they link)
# are built: the integration programs, test fakes' servers and the agent binary are not.
mapfile -t UNIT_TARGETS < <(cmake --build --preset asan --target help | grep -oE '^unit_[a-z_]+' | sort -u)
[ "${#UNIT_TARGETS[@]}" -gt 0 ] || { echo "no unit test targets found in the asan build" >&2; exit 1; }
cmake --build --preset asan -j "$JOBS" --target "${UNIT_TARGETS[@]}"
stage "asan unit tests"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --preset asan -L unit -j "$JOBS" --timeout 300 --output-junit "$PWD/build/asan/junit.xml"
bash scripts/check-skips.sh build/asan/junit.xml

if [ -f tests/fuzz/CMakeLists.txt ]; then
  stage "fuzz build"
  echo "== fuzz preset: each parser's libFuzzer target, briefly"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$JOBS"
  stage "fuzz runs"
  # One core per fuzzer (libFuzzer runs one process each): side by side on every core.
  ctest --test-dir build/fuzz -L fuzz -j "$JOBS" --timeout 300 --output-on-failure \
    --output-junit "$PWD/build/fuzz/junit.xml"
  bash scripts/check-skips.sh build/fuzz/junit.xml
fi
