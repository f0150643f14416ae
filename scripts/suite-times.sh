#!/usr/bin/env bash
# Where the suite's time goes, as figures (never a timed assertion): runs cargo nextest and prints,
# per test binary, its tests, their summed time and its slowest test, slowest binary first; then
# the run's wall time as nextest measured it (the build excluded) and the machine's load, since
# the figures mean little without it.
# Usage: scripts/suite-times.sh [nextest arguments]
#   scripts/suite-times.sh                      # the whole suite
#   scripts/suite-times.sh --test fault_matrix  # one binary
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo nextest run --workspace --no-fail-fast "$@" >"$log" 2>&1
status=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# nextest's result lines: `PASS [  26.354s] (4/6) hybrid-trust::fault_matrix test_name` (FAIL
# lines come again in the closing summary: each test is counted once).
awk '
  match($0, /^ *(PASS|FAIL|FLAKY|TIMEOUT|LEAK[A-Z-]*) +\[ *[0-9.]+s\]/) {
    line = $0
    sub(/^ *[A-Z-]+ +\[ */, "", line)
    secs = line; sub(/s\].*/, "", secs); secs += 0
    sub(/^[0-9.]+s\] +/, "", line)
    sub(/^\( *[0-9]+\/[0-9]+\) +/, "", line)
    split(line, f, " ")
    bin = f[1]; sub(/^[^:]*::/, "", bin)
    key = bin " " f[2]
    if (key in seen) next
    seen[key] = 1
    n[bin]++; sum[bin] += secs; total += secs; count++
    if (secs > top[bin]) { top[bin] = secs; slowest[bin] = f[2] }
  }
  /^ *Summary \[/ { wall = $0; sub(/^ *Summary \[ */, "", wall); sub(/s\].*/, "", wall) }
  END {
    for (b in sum) printf "%8.1f s  %3d tests  %-28s slowest %.1f s %s\n", sum[b], n[b], b, top[b], slowest[b] | "sort -rn"
    close("sort -rn")
    printf "%8.1f s  %3d tests  in all; wall %s s (nextest, build excluded)\n", total, count, wall
  }
' "$log"
if [ "$status" -ne 0 ]; then
  grep -E '^ *(FAIL|TIMEOUT) ' "$log" | sort -u || tail -n 20 "$log"
  echo "the run failed (exit $status)"
fi
exit "$status"
