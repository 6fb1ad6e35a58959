#!/usr/bin/env bash
# The relay matrix (issue 13): Postfix and Postern relaying to the smtpbench sink, outbound
# plain and verified TLS, 1 KB and 100 KB messages, 1 and 10 messages per inbound session,
# 20 parallel inbound sessions (closed loop: each worker opens a session, sends K messages,
# QUITs, opens the next).
#   bench/relay.sh [messages] [runs]          ROWS="tls-100KB-x1 ..." limits the rows
# messages: for the 1 KB rows (default 2000); the 100 KB rows send a quarter of that.
# runs: per row and MTA (default 3); the table shows the median of each figure.
# Prints a Markdown table; writes bench/results/relay-<stamp>.jsonl (one line per run) and
# relay-<stamp>.md (the table). POSTERN_TLSRPT=true runs Postern with TLS reporting on (sessions counted).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
RUNS=${2:-3}
N_BIG=$(( N / 4 ))
S=20
WARM=$(( N < 400 ? N : 400 ))
OUT=$ROOT/bench/results
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/relay-$STAMP.jsonl

source "$ROOT/bench/lib.sh"
# Postfix logs each outbound TLS session ("Verified TLS connection established to ..."): the
# proof that it really verified, counted per run below.
POSTFIX_EXTRA="smtp_tls_loglevel = 1"
bench_prepare
trap 'postern_stop; postfix_stop' EXIT

# Outbound TLS sessions with a verified certificate, as each MTA logs them.
verified_lines() {  # $1 = postfix|postern
  if [ "$1" = postfix ]; then grep -c "Verified TLS connection established to" "$PF/maillog" 2>/dev/null || true
  else grep -c "TLS certificate verified" "$B/postern/data/logs/mail.current" 2>/dev/null || true; fi
}

# An unrecorded run per MTA after it starts: Postern's JIT and Postfix's process pool warmed up
# before the first recorded row.
warm_up() {  # $1 = outbound
  local tlsargs=() addr
  [ "$1" = tls ] && tlsargs=(--tls-cert "$WORLD/certs/sink.crt" --tls-key "$WORLD/certs/sink.key")
  for addr in $POSTFIX_ADDR $POSTERN_ADDR; do
    $BENCH relay --server $addr --sink $SINK "${tlsargs[@]}" --sessions $S --messages $WARM --per-session 10 \
      --size 1024 --to user@sink.test --timeout 120 >/dev/null
    sleep 2.5
  done
}

# one_run ROW OUTBOUND SIZE_LABEL BYTES MESSAGES K RUN MTA
one_run() {
  local row=$1 outbound=$2 label=$3 bytes=$4 n=$5 k=$6 run=$7 mta=$8
  local addr=$POSTERN_ADDR tlsargs=() json before after v0 v1
  [ "$mta" = postfix ] && addr=$POSTFIX_ADDR
  [ "$outbound" = tls ] && tlsargs=(--tls-cert "$WORLD/certs/sink.crt" --tls-key "$WORLD/certs/sink.key")
  v0=$(verified_lines "$mta")
  before=$(cpu_ticks "$mta")
  json=$($BENCH relay --server "$addr" --sink $SINK "${tlsargs[@]}" --sessions $S --messages "$n" --per-session "$k" \
    --size "$bytes" --to user@sink.test --timeout 120)
  # The MTA finishes its bookkeeping of the last deliveries (queue removal) after the sink's 250.
  sleep 0.5
  after=$(cpu_ticks "$mta")
  v1=$(verified_lines "$mta")
  json="${json%\}},\"cpu_ms\":$(( (after - before) * TICK_MS )),\"mta_verified_tls\":$(( v1 - v0 ))}"
  echo "{\"bench\":\"relay\",\"row\":\"$row\",\"outbound\":\"$outbound\",\"size\":\"$label\",\"per_session\":$k,\"run\":$run,\"mta\":\"$mta\",\"result\":$json}" >> "$RESULTS"
  echo "$row run $run $mta $json" >&2
  python3 - "$json" "$n" <<'PY' >&2
import json, sys
r = json.loads(sys.argv[1]); n = int(sys.argv[2])
if r["messages"] != n or r["relayed"] != n or r["failures"]:
    print(f"  WARNING: {n} sent, {r['messages']} accepted, {r['relayed']} at the sink, {r['failures']} session failures")
PY
  if [ "$mta" = postfix ]; then
    # Postfix keeps an idle connection to the sink for up to 2 s (smtp_connection_cache_time_limit);
    # the next run's sink is a new process: let the cached connection expire first.
    sleep 2.5
  fi
}

echo "# relay matrix: $N messages (1 KB), $N_BIG (100 KB), $S parallel sessions, $RUNS runs (median), $(nproc) cores, $(date -u)" | tee "$OUT/relay-$STAMP.md"
for outbound in plain tls; do
  mode=relay; [ $outbound = tls ] && mode=relay-tls
  postfix_config $mode
  postern_start $mode
  warm_up $outbound
  for size in 1KB 100KB; do
    bytes=1024; n=$N
    [ $size = 100KB ] && { bytes=102400; n=$N_BIG; }
    for k in 1 10; do
      row="$outbound $size x$k"
      # ROWS="tls-100KB-x1 plain-1KB-x10" runs only those rows (e.g. a longer steady-state run).
      [ -z "${ROWS:-}" ] || [[ " $ROWS " == *" $outbound-$size-x$k "* ]] || continue
      for run in $(seq "$RUNS"); do
        # Both instances stay up; only the one measured has work. Alternating them per run
        # spreads the other engineer's load on this shared machine over both.
        one_run "$row" $outbound $size $bytes $n $k "$run" postfix
        one_run "$row" $outbound $size $bytes $n $k "$run" postern
      done
    done
  done
  postern_stop
  postfix_stop
done
python3 "$ROOT/bench/table.py" "$RESULTS" | tee -a "$OUT/relay-$STAMP.md"
echo "results: $RESULTS" >&2
