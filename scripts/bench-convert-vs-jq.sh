#!/usr/bin/env bash
# Side by side in one run: `cefwire convert` and a jq program doing the same
# activity mapping (scripts/activity-to-cef.jq) on the same NDJSON file.
# Prints wall time, MB/s, records/s and peak RSS of each, and the ratio.
#
# Usage: scripts/bench-convert-vs-jq.sh [SIZE_MB]   (default 1024)
# Needs: jq, GNU time (/usr/bin/time). Builds cefwire in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
work=${BENCH_WORK:-bench-work}
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/cefwire
input="$work/activities-${size_mb}MB.ndjson"
if [[ ! -s $input ]]; then
    # About 2.5 KB per generated activity.
    count=$(( size_mb * 1024 * 1024 / 2550 ))
    echo "generating $count activities (~${size_mb} MB) into $input" >&2
    "$bin" generate --kind activities --count "$count" --seed 1 --late-ratio 0.1 -o "$input"
fi
bytes=$(stat -c %s "$input")
records=$(wc -l < "$input")

measure() { # name, command...
    local name=$1; shift
    local log="$work/time-$name.log"
    /usr/bin/time -v "$@" > /dev/null 2> "$log"
    local wall rss
    wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}' | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
    printf '%-8s %8.2f s %9.1f MB/s %10.0f records/s  peak RSS %6.1f MiB\n' \
        "$name" "$wall" "$(echo "$bytes / $wall / 1000000" | bc -l)" "$(echo "$records / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
    echo "$wall" > "$work/wall-$name"
}

echo "input: $input, $bytes bytes, $records records; $(nproc) cores" >&2
measure cefwire "$bin" convert --quiet --no-progress "$input" -o /dev/null
measure jq jq -r -f scripts/activity-to-cef.jq "$input"
printf 'ratio (jq time / cefwire time): %.1fx\n' "$(echo "$(cat "$work/wall-jq") / $(cat "$work/wall-cefwire")" | bc -l)"

# Same output? Compare the first 20,000 lines of both.
head -n 20000 "$input" > "$work/head.ndjson"
"$bin" convert --quiet "$work/head.ndjson" > "$work/head-cefwire.cef"
jq -r -f scripts/activity-to-cef.jq "$work/head.ndjson" > "$work/head-jq.cef"
if cmp -s "$work/head-cefwire.cef" "$work/head-jq.cef"; then
    echo "outputs identical on the first 20,000 records"
else
    echo "outputs differ on the first 20,000 records (first difference below)"
    diff "$work/head-cefwire.cef" "$work/head-jq.cef" | head -4
fi
