#!/usr/bin/env bash
# Issue 15, side by side in one run: `cefwire convert --threads 1` and
# `--threads 2` against a bare simd-json parse of the same file on 1 and 2
# threads (examples/bare_parse.rs). Prints MB/s and peak RSS per thread
# count, and the ratios: convert 2 threads / convert 1 thread, and convert
# / bare parse at the same thread count. Each is the best of RUNS runs.
#
#   scripts/bench-parallel.sh [SIZE_MB]     (default 512; RUNS=3; BENCH_WORK=dir)
#
# Needs GNU time (/usr/bin/time) and bc. Builds in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-512}
runs=${RUNS:-3}
work=${BENCH_WORK:-bench-work}
mkdir -p "$work"
cargo build --release --locked --quiet --bin cefwire --example bare_parse
bin=target/release/cefwire
bare=target/release/examples/bare_parse
input="$work/mixed-${size_mb}MB.ndjson"
if [[ ! -s $input ]]; then
    count=$(( size_mb * 1024 * 1024 / 2500 ))
    echo "generating $count mixed records (~${size_mb} MB) into $input" >&2
    "$bin" generate --kind mixed --count "$count" --seed 11 -o "$input"
fi
bytes=$(stat -c %s "$input")
cat "$input" > /dev/null # into the page cache
echo "input: $input, $bytes bytes; $(nproc) cores available" >&2

best() { sort -g | head -n 1; }

convert_secs() { # threads → "seconds peak_rss_kib" (best time; RSS of that run)
    local threads=$1 best_line=""
    for ((i = 0; i < runs; i++)); do
        /usr/bin/time -f '%e %M' -o "$work/time.log" \
            "$bin" convert --quiet --no-progress --threads "$threads" "$input" -o /dev/null
        best_line=$(printf '%s\n%s\n' "$best_line" "$(cat "$work/time.log")" | sed '/^$/d' | sort -g | head -n 1)
    done
    echo "$best_line"
}

bare_secs() { # threads → seconds (best)
    local threads=$1
    for ((i = 0; i < runs; i++)); do "$bare" "$input" "$threads" | awk '{print $1}'; done | best
}

read -r c1 rss1 < <(convert_secs 1)
read -r c2 rss2 < <(convert_secs 2)
b1=$(bare_secs 1)
b2=$(bare_secs 2)
mbps() { echo "$bytes / $1 / 1000000" | bc -l; }
printf '%-28s %8s %10s %14s\n' "" seconds MB/s "peak RSS MiB"
printf '%-28s %8.2f %10.0f %14.1f\n' "convert --threads 1" "$c1" "$(mbps "$c1")" "$(echo "$rss1 / 1024" | bc -l)"
printf '%-28s %8.2f %10.0f %14.1f\n' "convert --threads 2" "$c2" "$(mbps "$c2")" "$(echo "$rss2 / 1024" | bc -l)"
printf '%-28s %8.2f %10.0f\n' "bare simd-json, 1 thread" "$b1" "$(mbps "$b1")"
printf '%-28s %8.2f %10.0f\n' "bare simd-json, 2 threads" "$b2" "$(mbps "$b2")"
printf 'convert 2 threads / 1 thread:        %.2fx\n' "$(echo "$c1 / $c2" | bc -l)"
printf 'convert / bare parse, 1 thread:      %.0f %%\n' "$(echo "100 * $b1 / $c1" | bc -l)"
printf 'convert / bare parse, 2 threads:     %.0f %%\n' "$(echo "100 * $b2 / $c2" | bc -l)"
printf 'bare parse 2 threads / 1 thread:     %.2fx\n' "$(echo "$b1 / $b2" | bc -l)"
