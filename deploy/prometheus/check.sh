#!/usr/bin/env bash
# Checks every Prometheus rule file in deploy/prometheus (*.yaml, *.yml; the tests/ folder and
# its unit tests are not rule files): `promtool check rules` on each, then its unit tests
# tests/<name>.test.yaml with `promtool test rules`, which must exist and must name every
# recording rule and alert of the file. Exits non-zero if anything fails; reports every failure.
set -uo pipefail
cd "$(dirname "$0")"
command -v promtool >/dev/null || { echo "check.sh: promtool not found (Debian: apt-get install prometheus)" >&2; exit 2; }

shopt -s nullglob
files=(*.yaml *.yml)
if ((${#files[@]} == 0)); then
  echo "check.sh: no rule files in $(pwd)" >&2
  exit 1
fi

failed=0
for f in "${files[@]}"; do
  echo "== $f"
  promtool check rules "$f" || failed=1
  t="tests/${f%.*}.test.yaml"
  if [ ! -f "$t" ]; then
    echo "check.sh: $f has no unit tests ($t)" >&2
    failed=1
    continue
  fi
  # Every rule of the file is named in its tests as a whole name (record: NAME / alert: NAME;
  # names are [a-zA-Z0-9_:], so they need no escaping in the pattern).
  while read -r name; do
    grep -qE -- "(^|[^[:alnum:]_:])${name}([^[:alnum:]_:]|\$)" "$t" || { echo "check.sh: $f: $name is not exercised by $t" >&2; failed=1; }
  done < <(sed -nE 's/^[[:space:]]*-?[[:space:]]*(record|alert):[[:space:]]*"?([^"[:space:]]+)"?.*/\2/p' "$f")
  promtool test rules "$t" || failed=1
done

# Unit tests whose rule file is gone would otherwise never run.
for t in tests/*.test.yaml; do
  base=$(basename "$t" .test.yaml)
  [ -f "$base.yaml" ] || [ -f "$base.yml" ] || { echo "check.sh: $t tests no rule file here" >&2; failed=1; }
done

if ((failed)); then
  echo "check.sh: FAILED" >&2
  exit 1
fi
echo "check.sh: all rule files pass"
