#!/usr/bin/env bash
# Endurance under kill -9: does every message Postern acknowledged (250 at the end of DATA)
# reach its destination, however often the process is killed?
#   bench/kill9.sh [CYCLES=100]
# A receiving sink (bench/endurance.py sink, 127.0.4.20:25) logs the X-Load-Id token of every
# message it accepts, before its 250.  Each cycle starts `postern serve` (private relay listener
# 127.0.4.2:2525; sink.test routed by an SMTP route to 127.0.4.20:25, TLS level "no"; the SAME
# data directory every cycle, so the queue persists), drives a relay load at it
# (bench/endurance.py load: LOAD_SESSIONS=8 parallel sessions, 1 KB messages, one unique token
# per message in the X-Load-Id header and the recipient t<token>@sink.test; the tokens Postern
# acknowledged with 250 are recorded) and kill -9s Postern a random 0.5-3 s after the load started.  After the
# last cycle Postern is started once more without load until `postern queue list --json` shows
# no pending recipient (bounded by DRAIN_TIMEOUT=600 s, or 60 s without the sink count
# growing; 20 s without growth is reported as a stall), then stopped with SIGTERM.
# Reported (one JSON line, also appended to bench/results/kill9.jsonl, and a human summary):
#   acknowledged            tokens Postern answered 250 to
#   delivered               distinct tokens the sink accepted
#   lost                    acknowledged but never delivered (must be 0)
#   delivered_twice         tokens the sink accepted more than once (at-least-once delivery:
#                           a kill between the sink's 250 and Postern's commit of "delivered")
#   delivered_unacknowledged  delivered but never acknowledged (the kill fell between the queue
#                           commit and the 250 reaching the client: allowed)
#   orphaned_final_messages messages still in the queue after the drain although every
#                           recipient is final (delivered/bounced)
# Exit status 1 when a message was lost, something is still pending, or SIGTERM did not stop Postern.
# 127.0.4.2:25 belongs to the test world's Postfix; this uses port 2525 there, so both can run.
# Needs root (port 25 for the sink), python3, the .NET 10 SDK.  No test world needed (the route
# is an IP address; no DNS lookups happen).  SKIP_BUILD=1 uses an existing Release build.
# Work files (data directory, token lists, per-cycle log) are in $POSTERN_WORLD/kill9
# (default /tmp/postern-world/kill9).  100 cycles took 5.3 minutes on 2 cores (about 3 s per cycle).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CYCLES=${1:-100}
LOAD_SESSIONS=${LOAD_SESSIONS:-8}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
LISTEN=127.0.4.2:2525
SINK=127.0.4.20:25
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
D=$WORLD/kill9
OUT=$ROOT/bench/results
PY=${PYTHON:-python3}
mkdir -p "$OUT"
rm -rf "$D"; mkdir -p "$D"

[ "${SKIP_BUILD:-0}" = 1 ] || dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
POSTERN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
ulimit -n "$(ulimit -Hn)"

cat > "$D/postern.json" <<JSON
{
  "hostname": "postern.kill9.test",
  "dataDirectory": "$D/data",
  "dns": { "servers": ["127.0.10.1:53"], "timeoutSeconds": 2 },
  "metrics": { "port": 0 },
  "mailFlowPolicies": {
    "RELAYED": { "action": "relay", "tls": "no" },
    "BLOCKED": { "action": "reject" }
  },
  "listeners": [
    { "name": "OutgoingMail", "type": "private", "address": "${LISTEN%:*}", "port": ${LISTEN#*:}, "maxConcurrency": 500,
      "senderGroups": [ { "name": "RELAYLIST", "senders": ["127.0.0.0/8"], "policy": "RELAYED" } ],
      "defaultPolicy": "BLOCKED" }
  ],
  "destinationControls": { "default": { "tls": "no" } },
  "bounceProfiles": { "Default": { "initialRetrySeconds": 5, "maxRetrySeconds": 30 } },
  "smtpRoutes": [ { "domain": "sink.test", "hosts": [ { "host": "${SINK%:*}", "port": ${SINK#*:} } ] } ]
}
JSON
POSTERN=(dotnet "$POSTERN_DLL")
"${POSTERN[@]}" config check --config "$D/postern.json" >/dev/null

POSTERN_PID=; SINK_PID=; LOAD_PID=
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$POSTERN_PID" ] && kill -9 "$POSTERN_PID" 2>/dev/null || true
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

$PY "$ROOT/bench/endurance.py" sink --listen "$SINK" --log "$D/sink.log" > "$D/sink.out" 2>&1 &
SINK_PID=$!
for _ in $(seq 50); do grep -q "sink listening" "$D/sink.out" 2>/dev/null && break; sleep 0.1; done
grep -q "sink listening" "$D/sink.out" || { cat "$D/sink.out" >&2; exit 1; }
touch "$D/acked" "$D/sent" "$D/sink.log"

postern_start() {  # $1 = cycle label; output in $D/out-<label>.txt
  local out=$D/out-$1.txt
  "${POSTERN[@]}" serve --config "$D/postern.json" > "$out" 2>&1 &
  POSTERN_PID=$!
  for _ in $(seq 600); do
    grep -q "Postern running" "$out" 2>/dev/null && return 0
    kill -0 "$POSTERN_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "postern did not start in cycle $1:" >&2; cat "$out" >&2; return 1
}
lines() { wc -l < "$1" | tr -d ' '; }

echo "# kill9: $CYCLES cycles, $LOAD_SESSIONS load sessions, data in $D/data"
T0=$(date +%s)
for c in $(seq "$CYCLES"); do
  postern_start "$c"
  delay_ms=$(( 500 + RANDOM % 2501 ))
  acked_before=$(lines "$D/acked")
  $PY "$ROOT/bench/endurance.py" load --server "$LISTEN" --sessions "$LOAD_SESSIONS" --prefix "$c" \
      --acked "$D/acked" --sent "$D/sent" --max-seconds 30 > "$D/load-$c.json" 2> "$D/load-$c.err" &
  LOAD_PID=$!
  sleep "$(awk -v m=$delay_ms 'BEGIN { printf "%.3f", m / 1000 }')"
  kill -9 "$POSTERN_PID"; wait "$POSTERN_PID" 2>/dev/null || true; POSTERN_PID=
  # The load's sessions see their connections die and a refused reconnect, and end.
  for _ in $(seq 100); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$LOAD_PID" 2>/dev/null; then echo "cycle $c: load generator still running 10 s after the kill" >&2; kill "$LOAD_PID"; fi
  wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=
  printf 'cycle %d killed after %d ms: %d acknowledged this cycle, %d acknowledged total, %d delivered so far\n' \
    "$c" "$delay_ms" $(( $(lines "$D/acked") - acked_before )) "$(lines "$D/acked")" "$(lines "$D/sink.log")" | tee -a "$D/cycles.log"
done
LOAD_SECONDS=$(( $(date +%s) - T0 ))

# Drain: Postern once more, no load, until no recipient is pending.  (A message whose
# recipients are all final but which is still in the queue is counted separately: see
# "orphaned_final_messages".)
queue_state() {  # prints "<messages> <messages with a pending recipient>", or "-1 -1"
  "${POSTERN[@]}" queue list --json --config "$D/postern.json" 2>/dev/null | $PY -c '
import json, sys
q = json.load(sys.stdin)
print(len(q), sum(1 for m in q if any(r["state"] == "pending" for r in m["recipients"])))' || echo "-1 -1"
}
postern_start drain
T1=$(date +%s); last_count=-1; last_change=$T1; drained=false; queued=-1; pending=-1
while true; do
  sleep 2
  read -r queued pending < <(queue_state)
  count=$(lines "$D/sink.log"); now=$(date +%s)
  [ "$count" != "$last_count" ] && { last_count=$count; last_change=$now; }
  if [ "$pending" = 0 ]; then drained=true; break; fi
  if (( now - T1 >= DRAIN_TIMEOUT )); then break; fi
  if (( now - last_change >= 20 )); then echo "drain: the sink count has not grown for 20 s with $pending message(s) pending" >&2; fi
  if (( now - last_change >= 60 )); then break; fi   # nothing moved for a minute: give up
done
DRAIN_SECONDS=$(( $(date +%s) - T1 ))
"${POSTERN[@]}" queue list --json --config "$D/postern.json" > "$D/queue-left.json" 2>&1 || true
echo "drain: $( $drained && echo "no message pending" || echo "$pending message(s) STILL PENDING" ) after $DRAIN_SECONDS s ($queued message(s) left in the queue); sink has $(lines "$D/sink.log") messages"

# Graceful stop must work too.
kill -TERM "$POSTERN_PID"
stopped=false
for _ in $(seq 300); do kill -0 "$POSTERN_PID" 2>/dev/null || { stopped=true; break; }; sleep 0.1; done
$stopped || { echo "postern did not stop within 30 s of SIGTERM" >&2; kill -9 "$POSTERN_PID"; }
wait "$POSTERN_PID" 2>/dev/null || true; POSTERN_PID=
sleep 1
kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=

LOG=$D/data/logs/mail.current
warnings() { grep -iE " (Warning|Error|Critical):" "$LOG" | grep -v "uses the demo certificate" || true; }
WARNINGS=$(warnings | wc -l)
JSON=$($PY - "$D" "$CYCLES" "$LOAD_SECONDS" "$DRAIN_SECONDS" "$drained" "$stopped" "$WARNINGS" <<'EOF'
import collections, json, sys
d, cycles, load_s, drain_s, drained, stopped, warnings = sys.argv[1:8]
try:
    left = json.load(open(f"{d}/queue-left.json"))
except Exception:
    left = None
read = lambda f: [l.strip() for l in open(f"{d}/{f}") if l.strip()]
acked, sent = read("acked"), set(read("sent"))
sink = collections.Counter(read("sink.log"))
acked_set = set(acked)
delivered = set(sink) - {"-"}
lost = sorted(acked_set - delivered)
twice = sorted(t for t, n in sink.items() if n > 1 and t != "-")
unacked = sorted(delivered - acked_set)
never_sent = sorted(delivered - sent)
open(f"{d}/lost.txt", "w").write("".join(t + "\n" for t in lost))
open(f"{d}/twice.txt", "w").write("".join(f"{t} {sink[t]}\n" for t in twice))
open(f"{d}/unacked-delivered.txt", "w").write("".join(t + "\n" for t in unacked))
print(json.dumps({
    "case": "kill9", "cycles": int(cycles), "acknowledged": len(acked_set), "acknowledged_lines": len(acked),
    "sent": len(sent), "delivered": len(delivered), "lost": len(lost), "delivered_twice": len(twice),
    "extra_copies": sum(sink[t] - 1 for t in twice), "delivered_unacknowledged": len(unacked),
    "delivered_never_sent": len(never_sent), "sink_messages_without_token": sink.get("-", 0),
    "load_seconds": int(load_s), "drain_seconds": int(drain_s), "queue_drained": drained == "true",
    "queue_messages_left": None if left is None else len(left),
    "orphaned_final_messages": None if left is None else sum(1 for m in left if all(r["state"] != "pending" for r in m["recipients"])),
    "stopped_on_sigterm": stopped == "true", "mail_log_warnings": int(warnings),
    "lost_sample": lost[:10], "twice_sample": twice[:10],
}))
EOF
)
echo "$JSON" | tee -a "$OUT/kill9.jsonl"
$PY - "$JSON" <<'EOF'
import json, sys
j = json.loads(sys.argv[1])
print(f"{j['cycles']} kill -9 cycles in {j['load_seconds']} s (+{j['drain_seconds']} s drain, "
      f"{'nothing pending' if j['queue_drained'] else 'MESSAGES STILL PENDING'}, {j['queue_messages_left']} message(s) left in the queue, "
      f"{j['orphaned_final_messages']} of them with every recipient final): {j['acknowledged']} acknowledged, {j['delivered']} delivered, "
      f"LOST {j['lost']}, {j['delivered_twice']} delivered twice ({j['extra_copies']} extra copies), "
      f"{j['delivered_unacknowledged']} delivered but never acknowledged; "
      f"{'stopped cleanly on SIGTERM' if j['stopped_on_sigterm'] else 'DID NOT STOP on SIGTERM'}; "
      f"{j['mail_log_warnings']} warning/error lines in the mail log (demo-certificate warnings not counted)")
if j["lost"]:
    print("LOST tokens (first 10):", " ".join(j["lost_sample"]), "- all in lost.txt; grep t<token>@sink.test in the mail log")
EOF
if [ "$WARNINGS" != 0 ]; then echo "mail log warnings/errors (first 10):"; warnings | head -10; fi
$PY -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if j["lost"] == 0 and j["queue_drained"] and j["stopped_on_sigterm"] else 1)' "$JSON"
