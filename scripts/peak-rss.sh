#!/usr/bin/env bash
# Peak RSS of `cefwire convert` for inputs shaped to blow up memory
# (issue 9): a pretty-printed page, one huge line, /dev/zero, a zstd bomb
# and NDJSON whose first line is bad. Prints one row per case: exit code,
# peak RSS (MiB, from /usr/bin/time), wall time and the first stderr line.
#
#   scripts/peak-rss.sh            # 1024 MB inputs
#   SIZE_MB=200 scripts/peak-rss.sh
#   CEFWIRE=target/debug/cefwire SIZE_MB=200 scripts/peak-rss.sh
#
# Inputs are generated under $WORK (default: a temp dir, removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-1024}
bin=${CEFWIRE:-target/release/cefwire}
[[ -x $bin ]] || cargo build --release --locked
work=${WORK:-$(mktemp -d)}
[[ -n ${WORK:-} ]] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

record='{"_id":"a1","timestamp":1511373004000,"eventTypeName":"EVENT_CATEGORY_LOGIN","description":"a record of about two hundred bytes, repeated to make the input as large as asked for by SIZE_MB"}'
# 1 MiB of NDJSON lines, then SIZE_MB of them.
chunk=$work/chunk.ndjson
: >"$chunk"
while (( $(stat -c %s "$chunk") < 1048576 )); do printf '%s\n' "$record" >>"$chunk"; done
repeat() { for ((i = 0; i < size_mb; i++)); do cat "$1"; done; }

pretty=$work/pretty-page.json
{
    printf '{\n  "data": [\n'
    sed 's/^/    /; s/$/,/' "$chunk" >"$work/pretty-chunk"
    repeat "$work/pretty-chunk"
    printf '    %s\n  ],\n  "hasNext": false\n}\n' "$record"
} >"$pretty"

single=$work/single-line.ndjson
{ printf '{"_id":"big","timestamp":1,"description":"'; head -c $((size_mb << 20)) /dev/zero | tr '\0' 'x'; printf '"}\n'; } >"$single"

bomb=$work/bomb.zst
head -c $((size_mb << 20)) /dev/zero | tr '\0' '\n' | zstd -q -f -19 -o "$bomb"

bad_first=$work/bad-first-line.ndjson
{ printf '{"_id":"cut","timestamp":15113\n'; repeat "$chunk"; } >"$bad_first"

printf '%-26s %10s %5s %14s %8s  %s\n' case input exit "peak RSS MiB" "wall s" "first stderr line"
run_case() {
    local name=$1 input=$2 size
    size=$( [[ -f $input && $input != /dev/* ]] && du -m "$input" | cut -f1 || echo "-")
    set +e
    /usr/bin/time -f '%M %e' -o "$work/time" "$bin" convert "$input" -o /dev/null --no-progress 2>"$work/stderr"
    local code=$?
    set -e
    read -r kb secs < <(tail -n 1 "$work/time")
    printf '%-26s %9sM %5s %14.1f %8s  %s\n' "$name" "$size" "$code" "$(bc -l <<<"$kb/1024")" "$secs" \
        "$(head -n 1 "$work/stderr" | sed "s|$work/||" | cut -c1-120)"
}
run_case "pretty page" "$pretty"
run_case "single line" "$single"
run_case "/dev/zero" /dev/zero
run_case "zstd bomb ($(du -k "$bomb" | cut -f1) KB)" "$bomb"
run_case "NDJSON, bad first line" "$bad_first"
