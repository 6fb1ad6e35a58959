#!/usr/bin/env bash
# Postern and Postfix side by side on this machine, same load, same sink, durable queues.
#   bench/run.sh [messages] [sessions]
# Prints a Markdown table and writes JSON lines to bench/results/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
S=${2:-20}
N_BIG=$(( N / 4 ))
OUT=$ROOT/bench/results
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/$STAMP.jsonl

# The Postfix and Postern bench instances, builds and CPU counters: bench/lib.sh.
source "$ROOT/bench/lib.sh"
bench_prepare
trap 'postern_stop; postfix_stop' EXIT

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
