#!/usr/bin/env bash
# Postern and Postfix side by side on this machine, same load, same sink, durable queues.
#   bench/run.sh [messages] [sessions]
# Prints a Markdown table and writes JSON lines to bench/results/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
S=${2:-20}
N_BIG=$(( N / 4 ))
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
B=$WORLD/bench
OUT=$ROOT/bench/results
mkdir -p "$OUT" "$B"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/$STAMP.jsonl

"$ROOT/testworld/world.sh" up >/dev/null
dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
dotnet build "$ROOT/bench/SmtpBench/SmtpBench.csproj" -c Release -nologo -v quiet >/dev/null
BENCH="dotnet $ROOT/bench/SmtpBench/bin/Release/net10.0/smtpbench.dll"
POSTERN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
POSTERN_ADDR=127.0.3.2:2525
POSTFIX_ADDR=127.0.3.1:25
SINK=127.0.3.20:25

# ---- Postfix: one relaying instance (the test world's instance builder), durable queue as shipped ----
source "$ROOT/testworld/world.sh"
PF=$WORLD/postfix-bench
postfix_config() {  # $1 = accept|relay|relay-tls|relay-tls-reuse
  postfix_down "$PF"
  local extra="smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
myhostname = postfix.bench.test
relayhost = [127.0.3.20]:25"
  case $1 in
    accept) extra="$extra
defer_transports = smtp" ;;
    relay) extra="$extra
smtp_tls_security_level = none" ;;
    relay-tls) extra="$extra
smtp_tls_CAfile = $WORLD/certs/ca.crt
smtp_tls_policy_maps = inline:{ {[127.0.3.20]:25 = verify match=mx.sink.test} }" ;;
    relay-tls-reuse) extra="$extra
smtp_tls_CAfile = $WORLD/certs/ca.crt
smtp_tls_policy_maps = inline:{ {[127.0.3.20]:25 = verify match=mx.sink.test} }
smtp_tls_connection_reuse = yes" ;;
  esac
  EXTRA_MAIN_CF=$extra postfix_up bench postfix.bench.test "" "127.0.3.1/-"
}
postfix_stop() { postfix_down "$PF"; }

# ---- Postern: default limits, durable queue, opportunistic TLS on the outbound leg ----
POSTERN_PID=
postern_start() {  # $1 = accept|relay|relay-tls
  postern_stop
  rm -rf "$B/postern"; mkdir -p "$B/postern"
  local tls=requiredVerify; [ "$1" = relay ] && tls=no
  [ "$1" = relay-tls-reuse ] && return 0
  cat > "$B/postern/postern.json" <<JSON
{
  "hostname": "postern.bench.test",
  "dataDirectory": "$B/postern/data",
  "dns": { "servers": ["127.0.10.1:53"] },
  "metrics": { "port": 0 },
  "mailFlowPolicies": {
    "RELAYED": { "action": "relay", "tls": "no" },
    "BLOCKED": { "action": "reject" }
  },
  "listeners": [
    { "name": "OutgoingMail", "type": "private", "address": "127.0.3.2", "port": 2525, "maxConcurrency": 500,
      "senderGroups": [ { "name": "RELAYLIST", "senders": ["127.0.0.0/8"], "policy": "RELAYED" } ],
      "defaultPolicy": "BLOCKED" }
  ],
  "destinationControls": { "default": { "tls": "$tls" } },
  "certificateAuthorities": { "customListEnabled": true, "customListFile": "$WORLD/certs/ca.crt" }
}
JSON
  dotnet "$POSTERN_DLL" serve --config "$B/postern/postern.json" > "$B/postern/out.txt" 2>&1 &
  POSTERN_PID=$!
  for _ in $(seq 100); do grep -q "Postern running" "$B/postern/out.txt" 2>/dev/null && return 0; sleep 0.1; done
  cat "$B/postern/out.txt" >&2; return 1
}
postern_stop() { if [ -n "$POSTERN_PID" ]; then kill "$POSTERN_PID" 2>/dev/null || true; wait "$POSTERN_PID" 2>/dev/null || true; POSTERN_PID=; fi; }
trap 'postern_stop; postfix_stop' EXIT

# CPU time (ticks) an MTA has used so far. Postern: its one process. Postfix: the master
# (including the children that have exited) plus every child still running.
cpu_ticks() {  # $1 = postern|postfix
  if [ "$1" = postern ]; then
    awk '{print $14+$15}' "/proc/$POSTERN_PID/stat"
  else
    local master; master=$(cat "$PF/spool/pid/master.pid" 2>/dev/null | tr -d ' ')
    { awk '{print $14+$15+$16+$17}' "/proc/$master/stat"
      for c in $(ps -o pid= --ppid "$master"); do awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null; done; } | awk '{t+=$1} END {print t}'
  fi
}
TICK_MS=$(( 1000 / $(getconf CLK_TCK) ))

run() {  # $1 name  $2 mta  $3.. smtpbench args
  local name=$1 mta=$2; shift 2
  local json before after
  before=$(cpu_ticks "$mta")
  json=$($BENCH "$@")
  after=$(cpu_ticks "$mta")
  json="${json%\}},\"cpu_ms\":$(( (after - before) * TICK_MS ))}"
  echo "{\"case\":\"$name\",\"mta\":\"$mta\",\"result\":$json}" >> "$RESULTS"
  echo "$name $mta $json"
}

echo "# $N messages, $S sessions, $(nproc) cores, $(date -u)" | tee "$OUT/$STAMP.txt"
for mode in accept relay relay-tls relay-tls-reuse; do
  postfix_config $mode
  postern_start $mode
  if [ $mode = accept ]; then
    run "accept 1KB" postfix load --server $POSTFIX_ADDR --sessions $S --messages $N --size 1024 --to user@bench.test
    run "accept 1KB" postern load --server $POSTERN_ADDR --sessions $S --messages $N --size 1024 --to user@bench.test
    run "accept 100KB" postfix load --server $POSTFIX_ADDR --sessions $S --messages $N_BIG --size 102400 --to user@bench.test
    run "accept 100KB" postern load --server $POSTERN_ADDR --sessions $S --messages $N_BIG --size 102400 --to user@bench.test
    for target in postfix:$POSTFIX_ADDR postern:$POSTERN_ADDR; do
      start=$(date +%s.%N)
      smtp-source -s $S -m $N -l 1024 -f bench@client.test -t user@bench.test "${target#*:}"
      end=$(date +%s.%N)
      awk -v n=$N -v s="$start" -v e="$end" -v mta="${target%%:*}" 'BEGIN { printf "{\"case\":\"smtp-source 1KB\",\"mta\":\"%s\",\"result\":{\"messages\":%d,\"seconds\":%.3f,\"rate\":%.1f}}\n", mta, n, e - s, n / (e - s) }' | tee -a "$RESULTS"
    done
  else
    tlsargs=(); [ $mode != relay ] && tlsargs=(--tls-cert "$WORLD/certs/sink.crt" --tls-key "$WORLD/certs/sink.key")
    run "$mode 1KB" postfix relay --server $POSTFIX_ADDR --sink $SINK "${tlsargs[@]}" --sessions $S --messages $N --size 1024 --to user@sink.test --timeout 120
    postfix_stop
    # Postern reuses TLS connections by design; its figure is the same in both TLS cases.
    [ $mode = relay-tls-reuse ] || run "$mode 1KB" postern relay --server $POSTERN_ADDR --sink $SINK "${tlsargs[@]}" --sessions $S --messages $N --size 1024 --to user@sink.test
  fi
  postern_stop
  postfix_stop
done
python3 "$ROOT/bench/table.py" "$RESULTS" | tee -a "$OUT/$STAMP.txt"
