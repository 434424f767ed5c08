#!/usr/bin/env bash
# Fails when a ctest run skipped a test that should have run on this machine.
#   scripts/check-skips.sh <junit.xml> [allow-list]
# The JUnit file is ctest's (--output-junit). A test skipped with GTEST_SKIP shows there as
# status="notrun" (gtest_discover_tests sets SKIP_REGULAR_EXPRESSION on every test), a disabled
# test as status="disabled". Each must match a line of the allow-list (tests/allowed-skips.txt)
# whose condition is true here; every other one is printed with its skip message and fails.
#
# What a reader gets wrong: ctest's exit status is 0 for a skipped test. This check is what turns
# "the test did not run" into a failure; a line in the allow-list says when not running is fine,
# and the condition makes that claim checkable on the machine that ran the tests.
set -euo pipefail

junit=${1:?usage: check-skips.sh <junit.xml> [allow-list]}
allow=${2:-"$(dirname "$0")/../tests/allowed-skips.txt"}
[ -r "$junit" ] || { echo "check-skips: cannot read $junit" >&2; exit 2; }
[ -r "$allow" ] || { echo "check-skips: cannot read $allow" >&2; exit 2; }

# One line per test case: status, name, and for a skip the first line of gtest's message
# ("<file>:<line>: Skipped" is followed by the text given to GTEST_SKIP()).
cases=$(awk '
  function unescape(s) {
    gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&quot;/, "\"", s)
    gsub(/&apos;/, "\047", s); gsub(/&amp;/, "\\&", s)
    return s
  }
  function attr(line, key) {
    if (!match(line, " " key "=\"[^\"]*\"")) return ""
    return unescape(substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 4))
  }
  function done() {
    if (name != "") printf "%s\t%s\t%s\n", status, name, reason
    name = ""
  }
  /<testcase / {
    done()
    name = attr($0, "name"); status = attr($0, "status"); reason = ""; want = 0
    if ($0 ~ /\/>[ \t]*$/) done()
    next
  }
  want == 1 { reason = $0; want = 2; gsub(/<\/?system-out>/, "", reason); reason = unescape(reason) }
  /: Skipped$/ && want == 0 { want = 1 }
  /<\/testcase>/ { done() }
  END { done() }
' "$junit")

total=$(printf '%s\n' "$cases" | grep -c . || true)
if [ "$total" -eq 0 ]; then
  echo "check-skips: $junit holds no test results" >&2
  exit 1
fi

# True when the allow-list's condition holds on this machine.
condition_holds() {
  local kind rest
  read -r kind rest <<<"$1"
  case "$kind" in
    absent)
      [ -n "$rest" ] || { echo "check-skips: 'absent' needs a path" >&2; exit 2; }
      local p
      for p in $rest; do
        [ -e "$p" ] && return 1
      done
      return 0
      ;;
    not-root) [ "$(id -u)" -ne 0 ] ;;
    no-cgroup2) ! awk '$3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts ;;
    *)
      echo "check-skips: $allow: unknown condition '$1'" >&2
      exit 2
      ;;
  esac
}

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# The reason a skipped test is allowed here, or nothing.
allowed_because() {
  local name=$1 pattern condition why
  while IFS='|' read -r pattern condition why; do
    pattern=$(trim "$pattern")
    [ -z "$pattern" ] || [ "${pattern:0:1}" = "#" ] && continue
    condition=$(trim "$condition")
    why=$(trim "$why")
    if [ -z "$condition" ] || [ -z "$why" ]; then
      echo "check-skips: $allow: a line needs '<pattern> | <condition> | <why>': $pattern" >&2
      exit 2
    fi
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    if [[ $name == $pattern ]] && condition_holds "$condition"; then
      printf '%s' "$why"
      return 0
    fi
  done <"$allow"
  return 1
}

skipped=0
refused=()
while IFS=$'\t' read -r status name reason; do
  case "$status" in
    notrun | disabled) ;;
    *) continue ;;
  esac
  skipped=$((skipped + 1))
  if why=$(allowed_because "$name"); then
    echo "check-skips: allowed skip: $name ($why)"
  else
    refused+=("$name [$status]${reason:+: $reason}")
  fi
done <<<"$cases"

echo "check-skips: $junit: $total tests, $skipped skipped, ${#refused[@]} not allowed"
if [ "${#refused[@]}" -gt 0 ]; then
  echo "check-skips: these tests did not run, and $allow allows no such skip on this machine:" >&2
  printf '  %s\n' "${refused[@]}" >&2
  exit 1
fi
