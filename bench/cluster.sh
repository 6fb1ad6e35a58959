#!/usr/bin/env bash
# Postern as one SQLite machine and as a cluster of 1, 2 and 3 members on one PostgreSQL (the
# test world's, fsync on), relaying the same load to the same sink; then the time
# `postern store migrate` takes for a queue of 10,000 messages.
#   bench/cluster.sh [messages] [sessions] [size] [migrate-messages]
# Prints JSON lines and a Markdown table; writes them to bench/results/cluster-<time>.*
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-4000}
S=${2:-20}
SIZE=${3:-1024}
M=${4:-10000}
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
B=$WORLD/bench-cluster
OUT=$ROOT/bench/results
mkdir -p "$OUT" "$B"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/cluster-$STAMP.jsonl

"$ROOT/testworld/world.sh" up >/dev/null
dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
dotnet build "$ROOT/bench/SmtpBench/SmtpBench.csproj" -c Release -nologo -v quiet >/dev/null
BENCH="dotnet $ROOT/bench/SmtpBench/bin/Release/net10.0/smtpbench.dll"
POSTERN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
SINK=127.0.3.40:25
export PGPASSWORD; PGPASSWORD=$(cat "$WORLD/postgres.password")
PG="psql -h 127.0.9.1 -U postgres -qAt"
TICK_MS=$(( 1000 / $(getconf CLK_TCK) ))

PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap stop_all EXIT

# member NAME ADDRESS [DATABASE] [HOLD]: writes a configuration and starts `postern serve`.
member() {
  local name=$1 addr=$2 db=${3:-} dir=$B/$1 cluster=""
  rm -rf "$dir"; mkdir -p "$dir"
  [ -n "$db" ] && cluster=", \"cluster\": { \"postgres\": \"Host=127.0.9.1;Database=$db;Username=postgres\", \"passwordFile\": \"$WORLD/postgres.password\", \"member\": \"$name\" }"
  cat > "$dir/postern.json" <<JSON
{
  "hostname": "$name.bench.test",
  "dataDirectory": "$dir/data",
  "dns": { "servers": ["127.0.10.1:53"] },
  "metrics": { "port": 0 },
  "web": { "enabled": false },
  "tracking": { "enabled": false },
  "mailFlowPolicies": { "RELAYED": { "action": "relay", "tls": "no" }, "BLOCKED": { "action": "reject" } },
  "listeners": [
    { "name": "OutgoingMail", "type": "private", "address": "$addr", "port": 2525, "maxConcurrency": 500,
      "senderGroups": [ { "name": "RELAYLIST", "senders": ["127.0.0.0/8"], "policy": "RELAYED" } ], "defaultPolicy": "BLOCKED" }
  ],
  "smtpRoutes": [ { "domain": "sink.test", "hosts": [ { "host": "127.0.3.40", "port": 25 } ] } ],
  "destinationControls": { "default": { "tls": "no" } }$cluster
}
JSON
  dotnet "$POSTERN_DLL" serve --config "$dir/postern.json" > "$dir/out.txt" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q "Postern running" "$dir/out.txt" 2>/dev/null && return 0; sleep 0.1; done
  cat "$dir/out.txt" >&2; return 1
}

# CPU ticks of the running members and of PostgreSQL (the postmaster's children: backends, WAL writer, checkpointer).
cpu() {
  local t=0 p
  for p in "${PIDS[@]}"; do t=$(( t + $(awk '{print $14+$15}' /proc/$p/stat) )); done
  echo $t
}
pg_cpu() {
  local pm; pm=$(head -1 "$WORLD/postgres/data/postmaster.pid")
  # A backend may end between ps and awk: that one is simply not counted.
  { awk '{print $14+$15+$16+$17}' /proc/$pm/stat; for c in $(ps -o pid= --ppid "$pm"); do awk '{print $14+$15}' /proc/$c/stat 2>/dev/null || true; done; } | awk '{t+=$1} END {print t}'
}

run() {  # $1 case name, $2 comma-separated servers
  local before pg_before json
  before=$(cpu); pg_before=$(pg_cpu)
  json=$($BENCH relay --server "$2" --sink $SINK --sessions $S --messages $N --size $SIZE --to user@sink.test --timeout 300)
  json="${json%\}},\"postern_cpu_ms\":$(( ($(cpu) - before) * TICK_MS )),\"postgres_cpu_ms\":$(( ($(pg_cpu) - pg_before) * TICK_MS ))}"
  echo "{\"case\":\"$1\",\"result\":$json}" | tee -a "$RESULTS"
}

echo "# $N messages of $SIZE bytes, $S sessions, $(nproc) cores, $(date -u)" | tee "$OUT/cluster-$STAMP.txt"
member single 127.0.3.30
run "sqlite, one machine" 127.0.3.30:2525
stop_all
for n in ${CLUSTER_SIZES:-1 2 3}; do
  db=bench_cluster_$n
  $PG -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  servers=""
  for i in $(seq $n); do member "m$i" "127.0.3.3$i" "$db"; servers="$servers${servers:+,}127.0.3.3$i:2525"; done
  run "postgres, $n member(s)" "$servers"
  stop_all
done

# Migration: a stopped machine with M queued messages (deliveries suspended) into an empty database.
member migrate 127.0.3.39
dotnet "$POSTERN_DLL" suspenddel --config "$B/migrate/postern.json" >/dev/null
sleep 2
$BENCH load --server 127.0.3.39:2525 --sessions $S --messages $M --size $SIZE --to user@sink.test >/dev/null
stop_all
$PG -c "DROP DATABASE IF EXISTS bench_migrate" -c "CREATE DATABASE bench_migrate"
start=$(date +%s.%N)
dotnet "$POSTERN_DLL" store migrate --to postgres "Host=127.0.9.1;Database=bench_migrate;Username=postgres" \
  --password-file "$WORLD/postgres.password" --member migrate --config "$B/migrate/postern.json" | grep -E "^Migrated" | tee "$B/migrate/report.txt"
end=$(date +%s.%N)
moved=$($PG -d bench_migrate -c "SELECT COUNT(*) FROM messages")
awk -v m="$moved" -v s="$start" -v e="$end" 'BEGIN { printf "{\"case\":\"store migrate\",\"result\":{\"messages\":%d,\"seconds\":%.2f,\"seconds_per_10000\":%.2f}}\n", m, e - s, (e - s) * 10000 / m }' | tee -a "$RESULTS"

python3 - "$RESULTS" <<'PY' | tee -a "$OUT/cluster-$STAMP.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| case | accepted msg/s | relayed msg/s | accept p99 ms | Postern CPU ms/msg | PostgreSQL CPU ms/msg |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    x = r["result"]
    if "relay_rate" not in x: continue
    n = max(1, x["relayed"])
    print(f"| {r['case']} | {x['accept_rate']:.0f} | {x['relay_rate']:.0f} | {x['p99_ms']:.1f} | {x['postern_cpu_ms']/n:.2f} | {x['postgres_cpu_ms']/n:.2f} |")
for r in rows:
    if r["case"] == "store migrate":
        x = r["result"]
        print(f"\nstore migrate: {x['messages']} messages in {x['seconds']:.1f} s ({x['seconds_per_10000']:.1f} s per 10,000)")
PY
