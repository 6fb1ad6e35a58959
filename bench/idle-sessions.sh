#!/usr/bin/env bash
# Memory per idle inbound SMTP session.
#   bench/idle-sessions.sh [N=10000]
# Starts `postern serve` with one public listener on 127.0.4.11:2525 whose maxConcurrency is N
# (and commandTimeoutSeconds 600 and stressCommandTimeoutSeconds 600: at four fifths of
# maxConcurrency the listener is under stress and would cut idle sessions after 10 s;
# here nobody may be timed out during the measurement), then opens
# N concurrent sessions from bench/endurance.py (python3 asyncio): each reads the 220
# greeting, sends "EHLO idle.test", reads the reply and stays idle.  Postern's VmRSS
# (/proc/PID/status) is read right after start ("cold"), after a short warm-up of 20 sessions
# that have all closed again ("before", 0 sessions open: the baseline), and once all N
# sessions are established (after a 5 s settle).  Then every session sends QUIT and the
# 221 replies are counted: proof that the sessions were still alive while RSS was read.
# Output: one JSON line (also appended to bench/results/idle-sessions.jsonl) and one human line.
# Exit status 1 when fewer than N sessions got their 250 or survived until QUIT.
# Needs: root (ulimit -n is raised to N+4096, at most the hard limit, for postern and the client), python3, the .NET 10
# SDK.  No test world needed (no DNS lookups happen).  Set SKIP_BUILD=1 to use an existing
# Release build.  Uses 127.0.4.11:2525 and $POSTERN_WORLD/idle-sessions (default /tmp/postern-world).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-10000}
ADDR=127.0.4.11
PORT=2525
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
D=$WORLD/idle-sessions
OUT=$ROOT/bench/results
PY=${PYTHON:-python3}
mkdir -p "$OUT"
rm -rf "$D"; mkdir -p "$D"

[ "${SKIP_BUILD:-0}" = 1 ] || dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
POSTERN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll

# Each side holds N sockets plus its own files. Root without CAP_SYS_RESOURCE (containers)
# cannot go past the hard limit, so take N + 4096, capped at the hard limit.
WANT=$(( N + 4096 )); HARD=$(ulimit -Hn)
[ "$HARD" != unlimited ] && (( WANT > HARD )) && WANT=$HARD
(( WANT >= N + 256 )) || { echo "ulimit -n hard limit $HARD is too low for $N sessions" >&2; exit 1; }
ulimit -n "$WANT"

cat > "$D/postern.json" <<JSON
{
  "hostname": "postern.idle.test",
  "dataDirectory": "$D/data",
  "dns": { "servers": ["127.0.10.1:53"] },
  "mailFlowPolicies": {
    "ACCEPTED": { "action": "accept", "tls": "no", "commandTimeoutSeconds": 600 }
  },
  "recipientAccessTable": [ { "domain": "idle.test" } ],
  "listeners": [
    { "name": "IdleMail", "type": "public", "address": "$ADDR", "port": $PORT, "maxConcurrency": $N, "stressCommandTimeoutSeconds": 600,
      "senderGroups": [], "defaultPolicy": "ACCEPTED" }
  ]
}
JSON

POSTERN_PID=; CLIENT_PID=
cleanup() {
  [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null || true
  if [ -n "$POSTERN_PID" ]; then kill "$POSTERN_PID" 2>/dev/null || true; wait "$POSTERN_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

dotnet "$POSTERN_DLL" serve --config "$D/postern.json" > "$D/out.txt" 2>&1 &
POSTERN_PID=$!
for _ in $(seq 300); do grep -q "Postern running" "$D/out.txt" 2>/dev/null && break; sleep 0.1; done
grep -q "Postern running" "$D/out.txt" || { cat "$D/out.txt" >&2; echo "postern did not start" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$POSTERN_PID/status"; }
established() { ss -Htn state established src "$ADDR:$PORT" | wc -l; }

sleep 2
RSS_COLD=$(rss_kb)
# Warm-up: a few sessions through the same code path, closed again (JIT, pools), so the
# baseline holds the code and the per-session figure holds only the sessions.
$PY "$ROOT/bench/endurance.py" idle --server $ADDR:$PORT --sessions 20 > "$D/warmup.txt" &
WPID=$!
for _ in $(seq 300); do grep -q '"established"' "$D/warmup.txt" 2>/dev/null && break; sleep 0.1; done
kill -USR1 $WPID; wait $WPID || true
for _ in $(seq 100); do [ "$(established)" = 0 ] && break; sleep 0.1; done
sleep 3
RSS_BEFORE=$(rss_kb)

START=$(date +%s.%N)
$PY "$ROOT/bench/endurance.py" idle --server $ADDR:$PORT --sessions "$N" > "$D/client.txt" 2> "$D/client.err" &
CLIENT_PID=$!
for _ in $(seq 3000); do grep -q '"established"' "$D/client.txt" 2>/dev/null && break; kill -0 $CLIENT_PID 2>/dev/null || break; sleep 0.2; done
grep -q '"established"' "$D/client.txt" || { cat "$D/client.err" >&2; echo "client did not finish setting up sessions" >&2; exit 1; }
SETUP_S=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
sleep 5
RSS_WITH=$(rss_kb)
EST=$(established)
THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$POSTERN_PID/status")

kill -USR1 $CLIENT_PID
for _ in $(seq 600); do grep -q '"closed"' "$D/client.txt" 2>/dev/null && break; sleep 0.2; done
wait $CLIENT_PID || true; CLIENT_PID=
ESTAB_LINE=$(grep '"established"' "$D/client.txt")
CLOSED_LINE=$(grep '"closed"' "$D/client.txt" || echo '{}')
REFUSED=$(grep -c "at its limit" "$D/data/logs/mail.current" || true)
TIMEOUTS=$(grep -c "timeout" "$D/data/logs/mail.current" || true)

JSON=$($PY - "$N" "$RSS_COLD" "$RSS_BEFORE" "$RSS_WITH" "$EST" "$THREADS" "$SETUP_S" "$REFUSED" "$TIMEOUTS" "$ESTAB_LINE" "$CLOSED_LINE" <<'EOF'
import json, sys
n, cold, before, with_, est, threads, setup, refused, timeouts = sys.argv[1:10]
e, c = json.loads(sys.argv[10]), json.loads(sys.argv[11])
n, cold, before, with_ = int(n), int(cold), int(before), int(with_)
ok = e["ehlo_250"]
print(json.dumps({
    "case": "idle-sessions", "sessions": n, "ehlo_250": ok, "greeted": e["greeted"], "failed": e["failed"],
    "established_tcp_at_measurement": int(est), "quit_221_after_measurement": c.get("quit_221", 0),
    "rss_cold_mb": round(cold / 1024, 1), "rss_before_mb": round(before / 1024, 1),
    "rss_with_sessions_mb": round(with_ / 1024, 1),
    "kb_per_session": round((with_ - before) / ok, 1) if ok else None,
    "threads": int(threads), "setup_seconds": float(setup),
    "log_refused_at_limit": int(refused), "log_timeouts": int(timeouts), "client_errors": e["errors"],
}))
EOF
)
echo "$JSON" | tee -a "$OUT/idle-sessions.jsonl"
$PY - "$JSON" <<'EOF'
import json, sys
j = json.loads(sys.argv[1])
print(f"{j['ehlo_250']}/{j['sessions']} sessions got 250 to EHLO ({j['established_tcp_at_measurement']} established at measurement, "
      f"{j['quit_221_after_measurement']} answered QUIT afterwards); postern RSS {j['rss_before_mb']} MB with 0 sessions "
      f"(cold {j['rss_cold_mb']} MB) -> {j['rss_with_sessions_mb']} MB with sessions = {j['kb_per_session']} KB per session; "
      f"{j['threads']} threads; set-up {j['setup_seconds']} s")
EOF
$PY -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if j["ehlo_250"] == j["sessions"] == j["quit_221_after_measurement"] else 1)' "$JSON"
