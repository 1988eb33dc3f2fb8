#!/usr/bin/env bash
# RELP benchmark, side by side in one run on this machine, all into the
# same receiver (one rsyslogd: imrelp and imtcp, each writing raw lines to
# its own file, in-memory queues):
#   1. cefwire replay --to relp://           (cefwire's RELP client)
#   2. rsyslog's own omrelp: the lines go into a forwarding rsyslogd over
#      TCP (imtcp, in-memory queue), which forwards them with omrelp
#      (template %rawmsg%) to the same imrelp receiver
#   3. cefwire replay --to tcp://            (plain syslog over TCP, for the cost of RELP)
# The measure is the wall time from the start of sending until the
# receiver's output file holds every byte (so each case is timed end to end
# at the same receiver). Each case runs RUNS times (default 3); the best run
# is reported.
#
# Usage: scripts/bench-relp.sh [RECORDS]   (default 300000; RUNS=N)
# CEFWIRE_BIN=path runs that binary instead of building this checkout.
# Needs: rsyslogd with imrelp and omrelp (Debian: rsyslog-relp).
set -euo pipefail
RECORDS=${1:-300000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/.."
if [ -n "${CEFWIRE_BIN:-}" ]; then
    BIN=$(realpath "$CEFWIRE_BIN")
else
    cargo build --release -q
    BIN=$PWD/target/release/cefwire
fi
WORK=$(mktemp -d /tmp/cefwire-bench-relp.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    local port
    while :; do
        port=$(shuf -i 20000-30000 -n 1)
        ss -ltn "( sport = :$port )" | grep -q ":$port" || { echo "$port"; return; }
    done
}

echo "# preparing $RECORDS records in $WORK"
"$BIN" generate --kind mixed --count "$RECORDS" -o "$WORK/records.ndjson"
"$BIN" convert "$WORK/records.ndjson" --pri --hostname bench -q -o "$WORK/lines.cef"
BYTES=$(stat -c %s "$WORK/lines.cef")
echo "# lines.cef: $RECORDS lines, $BYTES bytes"

RELP_PORT=$(free_port)
TCP_PORT=$(free_port)
FWD_PORT=$(free_port)

# receiver CONFIG_DIR: imrelp -> relp.log, imtcp -> tcp.log
start_receiver() {
    local dir=$WORK/receiver
    mkdir -p "$dir"
    rm -f "$dir"/*.log
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir" maxMessageSize="256k" parser.escapeControlCharactersOnReceive="off")
module(load="imrelp")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="relp" queue.type="LinkedList" queue.size="2000000") {
  action(type="omfile" file="$dir/relp.log" template="raw" ioBufferSize="1m")
}
ruleset(name="tcp" queue.type="LinkedList" queue.size="2000000") {
  action(type="omfile" file="$dir/tcp.log" template="raw" ioBufferSize="1m")
}
input(type="imrelp" address="127.0.0.1" port="$RELP_PORT" ruleset="relp")
input(type="imtcp" address="127.0.0.1" port="$TCP_PORT" ruleset="tcp")
EOF
    /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/pid" 2>>"$dir/stderr" &
    RECEIVER=$!
    PIDS+=("$RECEIVER")
    until ss -ltn | grep -q ":$RELP_PORT " && ss -ltn | grep -q ":$TCP_PORT "; do sleep 0.05; done
}

# forwarder: imtcp -> omrelp (rsyslog's own RELP client) -> the receiver
start_forwarder() {
    local dir=$WORK/forwarder
    mkdir -p "$dir"
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir" maxMessageSize="256k" parser.escapeControlCharactersOnReceive="off")
module(load="imtcp")
module(load="omrelp")
template(name="rawmsg" type="string" string="%rawmsg%")
ruleset(name="forward" queue.type="LinkedList" queue.size="2000000") {
  action(type="omrelp" target="127.0.0.1" port="$RELP_PORT" template="rawmsg")
}
input(type="imtcp" address="127.0.0.1" port="$FWD_PORT" ruleset="forward")
EOF
    /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/pid" 2>>"$dir/stderr" &
    FORWARDER=$!
    PIDS+=("$FORWARDER")
    until ss -ltn | grep -q ":$FWD_PORT "; do sleep 0.05; done
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# measure LABEL OUTFILE COMMAND...: best wall time until OUTFILE holds BYTES.
measure() {
    local label=$1 out=$2
    shift 2
    local best=""
    for _ in $(seq "$RUNS"); do
        start_receiver
        [[ $label == *omrelp* ]] && start_forwarder
        local t0 t1
        t0=$(date +%s.%N)
        bash -c "$*" >/dev/null 2>"$WORK/sender.err" || { echo "# $label failed:"; cat "$WORK/sender.err"; }
        until [ "$(stat -c %s "$WORK/receiver/$out" 2>/dev/null || echo 0)" -ge "$BYTES" ]; do sleep 0.01; done
        t1=$(date +%s.%N)
        [[ $label == *omrelp* ]] && stop_pid "$FORWARDER"
        stop_pid "$RECEIVER"
        local secs
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        if [ -z "$best" ] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then best=$secs; fi
    done
    awk -v l="$label" -v s="$best" -v n="$RECORDS" -v b="$BYTES" \
        'BEGIN { printf "%-52s %8.3f s %10.0f msgs/s %7.1f MB/s\n", l, s, n / s, b / s / 1e6 }'
    RESULT=$best
}

echo
echo "## into one rsyslogd (imrelp / imtcp, in-memory queues), best of $RUNS, until the receiver wrote every byte"
measure "cefwire replay --to relp://" relp.log "$BIN replay $WORK/lines.cef --to relp://127.0.0.1:$RELP_PORT --no-progress"
CEFWIRE_RELP=$RESULT
measure "rsyslog omrelp (lines via imtcp into the forwarder)" relp.log \
    "$BIN replay $WORK/lines.cef --to tcp://127.0.0.1:$FWD_PORT --no-progress"
OMRELP=$RESULT
measure "cefwire replay --to tcp:// (plain syslog)" tcp.log "$BIN replay $WORK/lines.cef --to tcp://127.0.0.1:$TCP_PORT --no-progress"
CEFWIRE_TCP=$RESULT
awk -v c="$CEFWIRE_RELP" -v o="$OMRELP" 'BEGIN { printf "cefwire RELP / rsyslog omrelp: %.2fx its msgs/s (target >= 1)\n", o / c }'
awk -v c="$CEFWIRE_RELP" -v t="$CEFWIRE_TCP" 'BEGIN { printf "cefwire RELP / cefwire TCP: %.0f%% of its msgs/s\n", 100 * t / c }'
echo "# $(nproc) cores; receiver, forwarder and sender share them"
