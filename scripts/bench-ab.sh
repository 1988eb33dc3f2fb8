#!/usr/bin/env bash
# A/B of `cefwire convert` builds on a shared machine: every configuration
# runs once per round, rounds repeat RUNS times (so a load change hits all
# of them alike), and the best elapsed time of each is printed with the bare
# simd-json parse on 1 and 2 threads and the load average before and after.
#
#   scripts/bench-ab.sh "LABEL|ENV=VALUE|BINARY|THREADS" ...
#       (INPUT=file, default bench-work/mixed-256MB.ndjson from bench-parallel.sh; RUNS=7)
#
# Keep an old build with `cp target/release/cefwire /tmp/old-cefwire` before
# rebuilding. Needs bc; elapsed from $EPOCHREALTIME (GNU time has 10 ms steps).
set -uo pipefail
cd "$(dirname "$0")/.."
input=${INPUT:-bench-work/mixed-256MB.ndjson}
runs=${RUNS:-7}
bytes=$(stat -c %s "$input")
declare -A best
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 0; i < runs; i++)); do
  for c in "$@"; do
    IFS='|' read -r label envv bin t <<<"$c"
    s=$EPOCHREALTIME
    env $envv "$bin" convert --quiet --no-progress --threads $t "$input" -o /dev/null
    e=$(echo "$EPOCHREALTIME - $s" | bc -l)
    if [[ -z ${best[$label]:-} ]] || (( $(echo "$e < ${best[$label]}" | bc) )); then best[$label]=$e; fi
  done
done
for c in "$@"; do IFS='|' read -r label _ <<<"$c"; printf '%-24s %.3f s %6.0f MB/s\n' "$label" ${best[$label]} $(echo "$bytes/${best[$label]}/1000000"|bc -l); done
b=target/release/examples/bare_parse
for t in 1 2; do for ((i=0;i<runs;i++)); do $b "$input" $t | awk '{print $1}'; done | sort -g | head -1 | xargs printf "bare $t thread(s): %s s\n"; done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
