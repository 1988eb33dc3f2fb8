#!/usr/bin/env bash
# Sending benchmarks, side by side in one run on this machine:
#   1. pre-rendered CEF lines over TCP: raw copy (socat) vs cefwire replay
#      vs syslog-ng's loggen, all into the same receiver (cefwire sink);
#   2. UDP datagrams/s with and without sendmmsg;
#   3. NDJSON -> convert -> TCP, end to end, in events/s.
# Each case runs RUNS times (default 3); the best run is reported, with the
# sender's wall time (start to exit, everything written) as the measure.
#
# Usage: scripts/bench-send.sh [RECORDS]   (default 500000; RUNS=N to change runs)
# CEFWIRE_BIN=path runs that binary instead of building this checkout (to
# compare a change with its baseline under the same conditions).
# Needs: socat; loggen is taken from the syslog-ng-core package (downloaded
# and unpacked into a temp dir, since it conflicts with rsyslog), skipped if
# that fails.
set -euo pipefail
RECORDS=${1:-500000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
if [ -n "${CEFWIRE_BIN:-}" ]; then
    BIN=$(realpath "$CEFWIRE_BIN")
else
    cargo build --release -q
    BIN=$PWD/target/release/cefwire
fi
echo "# binary: $BIN"
WORK=$(mktemp -d /tmp/cefwire-bench-send.XXXXXX)
SINK_PID=
cleanup() {
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "# preparing $RECORDS records in $WORK"
"$BIN" generate --kind mixed --count "$RECORDS" -o "$WORK/records.ndjson"
"$BIN" convert "$WORK/records.ndjson" --pri --hostname bench -q -o "$WORK/lines.cef"
BYTES=$(stat -c %s "$WORK/lines.cef")
echo "# lines.cef: $RECORDS lines, $BYTES bytes ($(awk -v b="$BYTES" -v n="$RECORDS" 'BEGIN{printf "%.0f", b/n}') bytes/line)"

LOGGEN=
if command -v loggen >/dev/null 2>&1; then
    LOGGEN=loggen
elif (cd "$WORK" && apt-get download syslog-ng-core >/dev/null 2>&1); then
    dpkg-deb -x "$WORK"/syslog-ng-core_*.deb "$WORK/sng"
    LOGGEN_ROOT="$WORK/sng/usr"
    LOGGEN="env SYSLOGNG_PREFIX=$LOGGEN_ROOT LD_LIBRARY_PATH=$LOGGEN_ROOT/lib/syslog-ng $LOGGEN_ROOT/bin/loggen"
else
    echo "# loggen: syslog-ng-core could not be downloaded; skipping loggen"
fi

# start_sink URL [args...]: runs cefwire sink in the background, sets PORT.
start_sink() {
    local url=$1
    shift
    : >"$WORK/sink.err"
    "$BIN" sink --listen "$url" --report json --no-progress "$@" 2>"$WORK/sink.err" >"$WORK/sink.json" &
    SINK_PID=$!
    # The whole line: stderr is unbuffered, so it may arrive in pieces (an
    # empty or cut port would send to the wrong place, or nowhere).
    until grep -q listening "$WORK/sink.err" 2>/dev/null && [ -z "$(tail -c1 "$WORK/sink.err")" ]; do sleep 0.02; done
    PORT=$(grep -o '[0-9]*$' "$WORK/sink.err")
}

stop_sink() {
    wait "$SINK_PID" || true
    SINK_PID=
}

json() { grep -o "\"$1\":[0-9.]*" "$WORK/sink.json" | cut -d: -f2; }

# measure LABEL PROTO MESSAGES COMMAND... ; the command may use $PORT.
# Prints: label, sender wall s, msgs/s, MB/s (of the rendered lines), how many
# arrived, and the receiver's own rate from its first to its last message.
measure() {
    local label=$1 proto=$2 messages=$3
    shift 3
    local best=0 best_line=""
    for _ in $(seq "$RUNS"); do
        if [ "$proto" = tcp ]; then
            start_sink tcp://127.0.0.1:0 --expect "$messages" --timeout 300s
        else
            start_sink udp://127.0.0.1:0 --expect "$messages" --timeout 8s
        fi
        local command=${*//\$PORT/$PORT}
        local t0 t1
        t0=$(date +%s.%N)
        bash -c "$command" >/dev/null 2>"$WORK/sender.err" || { echo "# $label failed:"; cat "$WORK/sender.err"; }
        t1=$(date +%s.%N)
        stop_sink
        local received sink_rate
        received=$(json messages)
        sink_rate=$(json rate_avg)
        local line
        line=$(awk -v l="$label" -v t0="$t0" -v t1="$t1" -v n="$messages" -v b="$BYTES" -v r="$received" -v total="$RECORDS" -v sr="$sink_rate" \
            'BEGIN { s = t1 - t0; printf "%-44s %8.3f s %11.0f msgs/s %8.1f MB/s   received %d/%d (receiver: %.0f msgs/s)\n", l, s, n / s, b * (n / total) / s / 1e6, r, n, sr }')
        local rate
        rate=$(awk -v t0="$t0" -v t1="$t1" -v n="$messages" 'BEGIN { printf "%.0f", n / (t1 - t0) }')
        if [ "$rate" -gt "$best" ]; then
            best=$rate
            best_line=$line
        fi
    done
    echo "$best_line"
    RESULT=$best
}

echo
echo "## TCP, pre-rendered CEF lines, into cefwire sink (best of $RUNS)"
measure "socat -u FILE TCP (raw copy)" tcp "$RECORDS" "socat -u FILE:$WORK/lines.cef TCP:127.0.0.1:\$PORT"
SOCAT=$RESULT
# socat copies in 8 KiB blocks by default; with 256 KiB blocks it is the
# fastest plain copy, and the stricter baseline.
measure "socat -b 262144 -u FILE TCP (raw copy)" tcp "$RECORDS" "socat -b 262144 -u FILE:$WORK/lines.cef TCP:127.0.0.1:\$PORT"
SOCAT=$((RESULT > SOCAT ? RESULT : SOCAT))
measure "cefwire replay lines --to tcp://" tcp "$RECORDS" "$BIN replay $WORK/lines.cef --to tcp://127.0.0.1:\$PORT --no-progress"
REPLAY=$RESULT
if [ -n "$LOGGEN" ]; then
    measure "loggen -i -S -d -R lines (syslog-ng 3.38)" tcp "$RECORDS" \
        "$LOGGEN -i -S -d -R $WORK/lines.cef -n $RECORDS -r 1000000000 -Q 127.0.0.1 \$PORT"
    LOGGEN_RATE=$RESULT
fi
awk -v r="$REPLAY" -v s="$SOCAT" 'BEGIN { printf "replay / best socat raw copy: %.0f%% of its bytes/s (target >= 90%%)\n", 100 * r / s }'
if [ -n "$LOGGEN" ]; then
    awk -v r="$REPLAY" -v g="$LOGGEN_RATE" 'BEGIN { printf "replay / loggen: %.1fx its msgs/s (target >= 3x)\n", r / g }'
fi

echo
echo "## UDP datagrams, pre-rendered CEF lines, into cefwire sink (best of $RUNS; loss as measured)"
measure "cefwire replay --to udp:// (sendmmsg)" udp "$RECORDS" "$BIN replay $WORK/lines.cef --to udp://127.0.0.1:\$PORT --no-progress"
measure "cefwire replay --to udp:// --no-sendmmsg" udp "$RECORDS" "$BIN replay $WORK/lines.cef --to udp://127.0.0.1:\$PORT --no-progress --no-sendmmsg"

echo
echo "## NDJSON -> convert -> TCP, end to end (best of $RUNS)"
measure "replay records.ndjson --threads 1" tcp "$RECORDS" "$BIN replay $WORK/records.ndjson --threads 1 --to tcp://127.0.0.1:\$PORT --no-progress"
NDJSON1=$RESULT
measure "replay records.ndjson --threads 2" tcp "$RECORDS" "$BIN replay $WORK/records.ndjson --threads 2 --to tcp://127.0.0.1:\$PORT --no-progress"
awk -v one="$NDJSON1" -v two="$RESULT" 'BEGIN { printf "replay NDJSON 2 threads / 1 thread: %.2fx events/s (the receiver shares the cores)\n", two / one }'
echo
echo "# $(nproc) cores; receiver and sender share them"
