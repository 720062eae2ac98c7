#!/usr/bin/env bash
# Long runs of the property tests that guard every parser fed from outside (not CI; CI runs
# the same tests with a few dozen to a few hundred cases each). Each target is one
# `proptests` module run with PROPTEST_CASES cases per test, niced, one after another; the
# results go into docs/SECURITY.md ("Fuzzing").
#
#   benches/fuzz.sh                         # every target, its default case count
#   CASES=20000 benches/fuzz.sh http::proptests::a_range   # one test (a cargo test filter)
#
# A failure prints proptest's minimal failing input and leaves the exit status non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

# target filter and its default case count: about 3 min of CPU for the whole run (the MP4
# targets write a file per case); CASES raises them all.
declare -A DEFAULT_CASES=(
  [license::proptests]=50000
  [http::proptests::a_range]=500000
  [http::proptests::a_routed]=500000
  [http::proptests::each_hls]=200000
  [http::proptests::the_express]=200000
  [http::proptests::a_bearer]=500000
  [seal::proptests]=200000
  [ledger::proptests]=100000
  [play_token::proptests]=100000
  [catalog::proptests]=100000
  [media::proptests]=2000
  [client::fetch::proptests]=100000
)
ORDER=(license::proptests http::proptests::a_range http::proptests::a_routed
  http::proptests::each_hls http::proptests::the_express http::proptests::a_bearer seal::proptests
  ledger::proptests play_token::proptests catalog::proptests media::proptests
  client::fetch::proptests)

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ORDER[@]}")

# One build, copied, so that editing the sources during a long run changes nothing.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$(cargo test --lib --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
cp "$bin" "$work/tests"
status=0
for t in "${targets[@]}"; do
  cases=${CASES:-${DEFAULT_CASES[$t]:-10000}}
  start=$(date +%s)
  if PROPTEST_CASES=$cases nice -n 5 "$work/tests" -q "$t" --test-threads=1 >"$work/log" 2>&1; then
    result=pass
  else
    result=FAIL
    status=1
    cat "$work/log"
  fi
  tests=$(grep -o '[0-9]* passed' "$work/log" | head -1 || true)
  printf '%s\t%s cases per test\t%s\t%s\t%ss\t%s\n' "$t" "$cases" "$tests" "$result" \
    "$(( $(date +%s) - start ))" "$(date -u +%Y-%m-%dT%H:%MZ)"
done
exit $status
