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

# target filter and its default case count (chosen so the whole run costs ~30 min of CPU on
# a 2-core machine; the differential HTTP test runs two hyper connections per case).
declare -A DEFAULT_CASES=(
  [license::proptests]=100000
  [http::proptests::a_range]=1000000
  [http::proptests::a_routed_path]=1000000
  [http::proptests::each_hls_file]=200000
  [http::proptests::the_express_lane]=100000
  [seal::proptests]=200000
  [ledger::proptests]=100000
  [catalog::proptests]=100000
  [media::proptests]=50000
  [client::fetch::proptests]=100000
)
ORDER=(license::proptests http::proptests::a_range http::proptests::a_routed_path
  http::proptests::each_hls_file http::proptests::the_express_lane seal::proptests
  ledger::proptests catalog::proptests media::proptests client::fetch::proptests)

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ORDER[@]}")

cargo test --lib --no-run -q 2>/dev/null
status=0
for t in "${targets[@]}"; do
  cases=${CASES:-${DEFAULT_CASES[$t]:-10000}}
  start=$(date +%s)
  if PROPTEST_CASES=$cases nice -n 19 cargo test --lib -q "$t" -- --test-threads=1 >"/tmp/fuzz-$$.log" 2>&1; then
    result=pass
  else
    result=FAIL
    status=1
    cat "/tmp/fuzz-$$.log"
  fi
  tests=$(grep -o '[0-9]* passed' "/tmp/fuzz-$$.log" | head -1 || true)
  printf '%s\t%s cases per test\t%s\t%s\t%ss\t%s\n' "$t" "$cases" "$tests" "$result" \
    "$(( $(date +%s) - start ))" "$(date -u +%Y-%m-%dT%H:%MZ)"
done
rm -f "/tmp/fuzz-$$.log"
exit $status
