#!/usr/bin/env bash
# Backfill against the emulator with the service's real rate limit (30/min):
# how much of the allowed request rate the client uses, how full its pages
# are, and the CPU seconds the backfill process spends per million records.
#
# Usage: scripts/bench-backfill.sh [PAGES]   (default 91: three full minutes
#        of requests after the first burst of 30, about 3 minutes of wall time)
# Needs: GNU time (/usr/bin/time). Builds cefwire in release mode.
#
# The emulator generates exactly PAGES × 5000 activities (plus one alert per
# 19 activities, which this run does not fetch: --types activities) over 48 h
# ending now; backfill reads them in scan pages of 5000 into /dev/null.
set -euo pipefail
cd "$(dirname "$0")/.."
pages=${1:-91}
work=${BENCH_WORK:-bench-work}
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/cefwire

activities=$(( pages * 5000 ))
# --generate N makes every 20th record an alert: N = activities * 20 / 19, rounded down.
count=$(( activities * 20 / 19 ))
token=bench-token

emulator_log="$work/emulator.log"
"$bin" emulate --listen 127.0.0.1:0 --generate "$count" --span 48h --seed 1 --token "$token" \
    > "$work/emulator.url" 2> "$emulator_log" &
emulator_pid=$!
trap 'kill -TERM "$emulator_pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    [[ -s $work/emulator.url ]] && break
    sleep 0.1
done
url=$(head -n1 "$work/emulator.url")
[[ -n $url ]] || { echo "the emulator did not start" >&2; cat "$emulator_log" >&2; exit 1; }
# The newest generated activities are stored (`created`) up to 30 s after
# they happened; the emulator serves them only from then on.
sleep 31

echo "emulator: $url, $activities activities; backfill with the default limit (30/min), $(nproc) cores" >&2
/usr/bin/time -v "$bin" backfill --since 49h --types activities --portal-url "$url" --token "$token" \
    --no-progress -o /dev/null 2> "$work/backfill.log"
cat "$work/backfill.log" | grep -v "^\s" | grep -v "^Command" || true

records=$(grep -o 'backfilled [0-9]*' "$work/backfill.log" | awk '{print $2}')
requests=$(grep -o 'api: [0-9]* requests' "$work/backfill.log" | awk '{print $2}')
rate_use=$(grep -o 'used [0-9.]* %' "$work/backfill.log" | awk '{print $2}')
user=$(grep "User time (seconds)" "$work/backfill.log" | awk '{print $NF}')
sys=$(grep "System time (seconds)" "$work/backfill.log" | awk '{print $NF}')
wall=$(grep "Elapsed (wall clock)" "$work/backfill.log" | awk '{print $NF}' | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
rss=$(grep "Maximum resident set size" "$work/backfill.log" | awk '{print $NF}')
cpu=$(echo "$user + $sys" | bc -l)

kill -TERM "$emulator_pid"
wait "$emulator_pid" || true
trap - EXIT
throttled=$(grep -o '[0-9]* throttled (429)' "$emulator_log" | awk '{print $1}')

echo
printf 'records:                 %d in %d requests (%.1f records per request; a full page is 5000)\n' \
    "$records" "$requests" "$(echo "$records / $requests" | bc -l)"
printf 'rate limit used:         %s %% of the requests 30/min allows over the run (target >= 95 %%)\n' "$rate_use"
printf '429s seen by emulator:   %s\n' "$throttled"
printf 'wall time:               %.1f s\n' "$wall"
printf 'backfill CPU:            %.2f s (user %.2f + sys %.2f); %.2f CPU s per million records\n' \
    "$cpu" "$user" "$sys" "$(echo "$cpu / $records * 1000000" | bc -l)"
printf 'backfill peak RSS:       %.1f MiB\n' "$(echo "$rss / 1024" | bc -l)"
