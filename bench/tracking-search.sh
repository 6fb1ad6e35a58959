#!/usr/bin/env bash
# Message tracking: a million messages, and how long `postern track --json` takes to answer
# each kind of search (wall time of the whole command, process start included).
#   bench/tracking-search.sh [messages] [dir]
# The database is filled once through the store's own write path (bench/TrackingBench) and
# kept in DIR for later runs with the same count. Prints a Markdown table: the wall time of
# `postern track --json` (median of three runs: process start, database open, search, JSON)
# and the search alone in-process (median of five, as the web page would call it). The page
# cache is warm: the database was just written or read.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-1000000}
DIR=${2:-/tmp/postern-tracking-bench}
DATA=$DIR/data
CONFIG=$DIR/postern.json
POSTERN="dotnet $ROOT/src/Postern/bin/Release/net10.0/postern.dll"
BENCH="dotnet $ROOT/bench/TrackingBench/bin/Release/net10.0/trackingbench.dll"

dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
dotnet build "$ROOT/bench/TrackingBench/TrackingBench.csproj" -c Release -nologo -v quiet >/dev/null

if [ ! -f "$DATA/tracking/tracking.db" ] || [ "$(cat "$DIR/count" 2>/dev/null)" != "$N" ]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  echo "filling $N messages into $DATA (once; kept for the next run) ..." >&2
  /usr/bin/time -f "fill: %e s, %M KiB max RSS" $BENCH fill "$DATA" "$N" > "$DIR/values.sh"
  echo "$N" > "$DIR/count"
fi
# shellcheck disable=SC1091
source "$DIR/values.sh"
$POSTERN config default | python3 -c 'import json,sys; c=json.load(sys.stdin); c["dataDirectory"]=sys.argv[1]; print(json.dumps(c))' "$DATA" > "$CONFIG"

echo "database: $(du -h "$DATA/tracking/tracking.db" | cut -f1), $N messages; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# One search: median wall time of three runs, and how many messages it returned.
search() {
  local label=$1; shift
  local times=() count=0 start out
  for _ in 1 2 3; do
    start=$(date +%s%N)
    out=$($POSTERN track "$@" --json --config "$CONFIG")
    times+=("$(ms "$start")")
    count=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$out")
  done
  local median inproc
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
  inproc=$($BENCH search "$DATA" "$@" | cut -d' ' -f1)
  printf '| %s | `%s` | %s | %s ms | %s | %s ms |\n' "$label" "$*" "$count" "$median" "${times[*]}" "$inproc"
}

start=$(date +%s%N); $POSTERN help track >/dev/null; base=$(ms "$start")
start=$(date +%s%N); $POSTERN help track >/dev/null; base2=$(ms "$start")
echo
echo "Process start of postern (help track, no database): ${base} ms, ${base2} ms"
echo
echo "| search | arguments | found | postern track --json (median) | runs (ms) | search in-process (median) |"
echo "| --- | --- | --- | --- | --- | --- |"
search "newest (no criterion)"
search "envelope sender" --sender "$SENDER"
search "sender domain" --sender "$SENDER_DOMAIN"
search "recipient" --recipient "$RECIPIENT"
search "recipient domain (30 % of mail)" --recipient "$BIG_DOMAIN"
search "MID" --mid "$MID"
search "subject, rare word (trigram index)" --subject zebra-quartz
search "subject, common word" --subject invoice
search "subject, common word only in the oldest 3 %" --subject campaign-alpha
search "time range (one day) + status" --since "$DAY_FROM" --until "$DAY_UNTIL" --status deferred
search "TLS outcome" --tls failed
search "TLS outcome + last 2 days" --tls dane --since 2d
search "sender domain + status" --sender "$SENDER_DOMAIN" --status bounced
search "1000 results" --status delivered --limit 1000
search "no match, big domain + status" --recipient "$BIG_DOMAIN" --status rejected
search "no match, two broad criteria" --status bounced --tls failed
search "no match, three broad criteria" --recipient "$BIG_DOMAIN" --status bounced --tls failed
search "no match, subject common + status" --subject invoice --status rejected

# One story: `postern track show MID --json` (the steps and the sentences).
times=()
for _ in 1 2 3; do start=$(date +%s%N); $POSTERN track show "$MID" --json --config "$CONFIG" >/dev/null; times+=("$(ms "$start")"); done
read -r inproc sentences <<<"$($BENCH story "$DATA" "$MID")"
printf '| story | `show %s` | %s sentences | %s ms | %s | %s ms |\n' "$MID" "$sentences" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)" "${times[*]}" "$inproc"
