#!/usr/bin/env bash
# The first command to run: installs the dependencies, builds the release preset and starts
# nodewarden-demo, a small real node (cgroups and stress-ng workloads) with the agent watching it.
# Arguments go to the demo, e.g. scripts/demo.sh --duration 60. Needs root (it creates cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release
cmake --build --preset release
exec build/release/tests/support/nodewarden-demo "$@"
