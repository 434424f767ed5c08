#!/usr/bin/env bash
# Checks the Dockerfile's runtime stage without building the image (CI has no container engine):
#   1. every package its `apt-get install` names exists in Debian 12 (apt-cache show) and none
#      is a -dev package;
#   2. every shared library the built agent links directly (readelf NEEDED) is in a package the
#      stage installs by name, and every library of its full closure (ldd) is in one of those
#      packages or in their dependencies (apt-cache depends --recurse), found with dpkg -S.
# usage: deploy/check-image-deps.sh [BINARY]   (default build/ci/agent/nodewarden)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/ci/agent/nodewarden}
[ -x "$bin" ] || { echo "check-image-deps.sh: $bin is not built" >&2; exit 2; }

# The runtime stage: from the last FROM on; its install list, up to the `&&` that ends it.
mapfile -t pkgs < <(
  awk '/^FROM /{stage=$0; inst=0} stage ~ /debian:12-slim/ && /apt-get install/ {inst=1; next}
       inst && /&&/ {inst=0} inst {gsub(/\\/, ""); for (i = 1; i <= NF; i++) print $i}' Dockerfile)
((${#pkgs[@]})) || { echo "check-image-deps.sh: no runtime packages found in the Dockerfile" >&2; exit 1; }
echo "runtime packages: ${pkgs[*]}"

failed=0
# apt's lists may be absent on a machine where setup.sh had nothing to install.
apt-cache show --no-all-versions libc6 >/dev/null 2>&1 || apt-get update -qq
for p in "${pkgs[@]}"; do
  if ! apt-cache show --no-all-versions "$p" >/dev/null 2>&1; then
    echo "check-image-deps.sh: package $p does not exist in this Debian" >&2; failed=1
  fi
  [[ $p == *-dev ]] && { echo "check-image-deps.sh: $p is a -dev package" >&2; failed=1; }
done

# The package that owns a library file (usrmerge: it may be registered under /usr or not).
owner() {
  local f real
  real=$(readlink -f "$1")
  for f in "$1" "$real" "${real#/usr}" "/usr$real"; do
    dpkg -S "$f" 2>/dev/null | head -1 | cut -d: -f1 && return 0
  done
  return 1
}

mapfile -t closure < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${pkgs[@]}" 2>/dev/null | grep -v '^ ' | grep -v '^<' | sed 's/:amd64$//' | sort -u)
declare -A listed=() available=()
for p in "${pkgs[@]}"; do listed[$p]=1; done
for p in "${closure[@]}"; do available[$p]=1; done

declare -A needed=()
while read -r lib; do needed[$lib]=1; done < <(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

n=0
while read -r lib path; do
  [ -n "$path" ] || continue
  n=$((n + 1))
  pkg=$(owner "$path") || { echo "check-image-deps.sh: no package owns $path ($lib)" >&2; failed=1; continue; }
  pkg=${pkg%:amd64}
  if [[ -n ${needed[$lib]:-} ]]; then
    [[ -n ${listed[$pkg]:-} ]] || { echo "check-image-deps.sh: $lib (linked directly) is in $pkg, which the runtime stage does not install" >&2; failed=1; }
  else
    [[ -n ${available[$pkg]:-} ]] || { echo "check-image-deps.sh: $lib is in $pkg, not among the runtime packages' dependencies" >&2; failed=1; }
  fi
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3} $1 ~ /^\// {print $1, $1}')

if ((failed)); then echo "check-image-deps.sh: FAILED" >&2; exit 1; fi
echo "check-image-deps.sh: ${#pkgs[@]} packages exist; ${#needed[@]} direct and $n resolved libraries of $bin are provided"
