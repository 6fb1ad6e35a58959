#!/usr/bin/env bash
# A baseline profile of Postern's hot path for one row of the relay matrix (bench/relay.sh).
#   bench/profile.sh <row> [messages] [top]
# row: plain-1KB, plain-100KB, tls-1KB, tls-100KB, optionally with -x<K> messages per inbound
# session (default 1): e.g. plain-100KB-x1, tls-1KB-x10. messages: default 2000 (1 KB) or 500
# (100 KB). top: lines per top-N list (default 25).
# Starts the Postern bench instance (bench/lib.sh, the JSON config of run.sh; perf map on, W^X
# off, see below), relays the row twice to warm it up, then once per pass to the smtpbench sink:
#   1. clean: no tool attached; CPU ms per message as relay.sh measures it;
#   2. dotnet-trace (EventPipe sample profiler, profile dotnet-sampled-thread-time) and
#      dotnet-counters (System.Runtime: GC counts per generation, heap and LOH sizes, allocated
#      bytes, thread pool) at once; `dotnet-trace report topN` exclusive and --inclusive. The
#      sample profiler samples managed threads whether they run or wait: its "time" is thread
#      time (idle thread-pool threads included), not CPU;
#   3. perf (when installed): on-CPU samples of the Postern process at 1999 Hz with call graphs
#      (frame pointers), JIT-compiled names from the runtime's perf map; top-N self and inclusive,
#      by binary, by thread, by area of the hot path. This is the CPU view. Then a second perf run
#      with DWARF call graphs for the native side (which SQLite, OpenSSL, libc entry points);
#   4. strace (when installed): system calls per message, file I/O per file (strace slows the run:
#      only the counts are used).
# Everything goes to $TMPDIR/profile-<row>-<stamp>/ (traces stay out of the repository); the
# summary is printed and written there as summary.md.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROW=${1:?usage: bench/profile.sh plain-1KB|plain-100KB|tls-1KB|tls-100KB[-xK] [messages] [top]}
TOP=${3:-25}
if [[ ! $ROW =~ ^(plain|tls)-(1KB|100KB)(-x([0-9]+))?$ ]]; then echo "bad row: $ROW" >&2; exit 2; fi
OUTBOUND=${BASH_REMATCH[1]}
SIZE=${BASH_REMATCH[2]}
K=${BASH_REMATCH[4]:-1}
BYTES=1024; N=${2:-2000}
[ "$SIZE" = 100KB ] && { BYTES=102400; N=${2:-500}; }
S=20
TOOLS=${DOTNET_TOOLS:-$HOME/.dotnet/tools}
TRACE=$TOOLS/dotnet-trace
COUNTERS=$TOOLS/dotnet-counters
for t in "$TRACE" "$COUNTERS"; do
  [ -x "$t" ] || { echo "missing $t: dotnet tool install -g dotnet-trace; dotnet tool install -g dotnet-counters" >&2; exit 2; }
done
TMP=${TMPDIR:-/tmp}
D=$TMP/profile-$ROW-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$D"

source "$ROOT/bench/lib.sh"
bench_prepare

TOOL_PIDS=()
# Background jobs of a script start with SIGINT ignored, and .NET keeps it ignored: the tools are
# started with SIGINT restored, so that INT stops them the way Ctrl+C does (files flushed).
# Only for background jobs (&): it execs, so the job's pid is the tool's.
with_sigint() { exec python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }
stop_tools() {
  local p
  for p in "${TOOL_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${TOOL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  TOOL_PIDS=()
}
PERF_MAP=
cleanup() {
  stop_tools
  [ -n "${COUNTERS_PID:-}" ] && { kill -INT "$COUNTERS_PID" 2>/dev/null || true; wait "$COUNTERS_PID" 2>/dev/null || true; }
  postern_stop
  # perf reads JIT names from /tmp/perf-<pid>.map: copied there for the report, removed after.
  [ -n "$PERF_MAP" ] && rm -f "$PERF_MAP"
  return 0
}
trap cleanup EXIT

mode=relay; [ "$OUTBOUND" = tls ] && mode=relay-tls
tlsargs=(); [ "$OUTBOUND" = tls ] && tlsargs=(--tls-cert "$WORLD/certs/sink.crt" --tls-key "$WORLD/certs/sink.key")
# The perf map (JIT-compiled method names for perf) costs nothing measurable once methods are
# compiled; it is written to the output folder as perf-<pid>.map. perf resolves names from it only for
# anonymous memory: W^X double mapping (the default) puts JIT code in a memfd, so it is off here.
DOTNET_PerfMapEnabled=3 DOTNET_PerfMapJitDumpPath=$D DOTNET_EnableWriteXorExecute=0 postern_start $mode
echo "# profile $ROW: $N messages of $BYTES bytes, $K per inbound session, $S sessions; Postern pid $POSTERN_PID; $D" >&2

relay() {  # $1 = name: runs the row once, writes $D/$1.json (smtpbench's result plus cpu_ms)
  local before after json
  before=$(cpu_ticks postern)
  json=$($BENCH relay --server $POSTERN_ADDR --sink $SINK "${tlsargs[@]}" --sessions $S --messages "$2" --per-session "$3" \
    --size "$4" --to user@sink.test --timeout 120)
  sleep 0.5
  after=$(cpu_ticks postern)
  json="${json%\}},\"cpu_ms\":$(( (after - before) * TICK_MS ))}"
  echo "$json" > "$D/$1.json"
  echo "$1: $json" >&2
}

# Warm-up (JIT tiers, pools, the SQLite file grown to its working size): the row itself, twice,
# not measured.
relay warmup1 "$N" "$K" "$BYTES"
relay warmup2 "$N" "$K" "$BYTES"
sleep 1

# 1. clean
relay clean "$N" "$K" "$BYTES"
sleep 1

# 2. dotnet-trace + dotnet-counters. dotnet-counters loses its last seconds of CSV when it is
# stopped by a signal: it is given a duration (twice the clean run, plus margins) and left to end.
secs=$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["relay_seconds"] * 2) + 10)' "$D/clean.json")
with_sigint "$COUNTERS" collect -p "$POSTERN_PID" --counters System.Runtime --refresh-interval 1 \
  --duration "$(printf '00:00:%02d:%02d' $((secs / 60)) $((secs % 60)))" --format csv -o "$D/counters.csv" > "$D/counters.log" 2>&1 &
COUNTERS_PID=$!
with_sigint "$TRACE" collect -p "$POSTERN_PID" --profile dotnet-sampled-thread-time,gc-collect --duration 00:00:10:00 -o "$D/trace.nettrace" > "$D/trace.log" 2>&1 &
TOOL_PIDS+=($!)
for _ in $(seq 150); do
  grep -q "Output File" "$D/trace.log" 2>/dev/null && break
  sleep 0.1
done
sleep 3   # dotnet-counters' first intervals (it writes its file late, nothing to poll)
date +%s.%N > "$D/traced.start"
relay traced "$N" "$K" "$BYTES"
date +%s.%N > "$D/traced.end"
stop_tools   # dotnet-trace
wait "$COUNTERS_PID" 2>/dev/null || true
"$TRACE" report "$D/trace.nettrace" topN -n "$TOP" > "$D/topN-exclusive.txt" 2>&1 || true
"$TRACE" report "$D/trace.nettrace" topN -n "$TOP" --inclusive > "$D/topN-inclusive.txt" 2>&1 || true
# The same samples as speedscope JSON, for the managed on-CPU view (profile_summary.py).
"$TRACE" convert "$D/trace.nettrace" --format Speedscope -o "$D/trace" > "$D/convert.log" 2>&1 || true
rm -f "$D"/*.etlx
sleep 1

# 3. perf
if command -v perf >/dev/null; then
  with_sigint perf record -F 1999 -g -p "$POSTERN_PID" -o "$D/perf.data" > "$D/perf.log" 2>&1 &
  TOOL_PIDS+=($!)
  sleep 1
  relay perf "$N" "$K" "$BYTES"
  stop_tools
  if [ -f "$D/perf-$POSTERN_PID.map" ] && [ ! -e "/tmp/perf-$POSTERN_PID.map" ]; then
    PERF_MAP=/tmp/perf-$POSTERN_PID.map
    cp "$D/perf-$POSTERN_PID.map" "$PERF_MAP"
  fi
  report() { perf report -i "$D/perf.data" --stdio "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
  report --no-children --sort dso,symbol -g none --percent-limit 0.3 | head -"$TOP" > "$D/perf-self.txt" || true
  report --children --sort symbol -g none --percent-limit 1 | head -"$TOP" > "$D/perf-inclusive.txt" || true
  perf script -i "$D/perf.data" 2>/dev/null | gzip > "$D/perf.script.gz" || true
  # The same with DWARF unwinding (stack copies, 499 Hz): libc, SQLite and OpenSSL have no frame
  # pointers, DWARF walks them up to the native entry point managed code called (JIT frames stop it).
  with_sigint perf record -F 499 --call-graph dwarf,16384 -p "$POSTERN_PID" -o "$D/perf-dwarf.data" > "$D/perf-dwarf.log" 2>&1 &
  TOOL_PIDS+=($!)
  sleep 1
  relay perfdwarf "$N" "$K" "$BYTES"
  stop_tools
  perf script -i "$D/perf-dwarf.data" 2>/dev/null | gzip > "$D/perf-dwarf.script.gz" || true
  rm -f "$D/perf-dwarf.data"
  [ -n "$PERF_MAP" ] && rm -f "$PERF_MAP"; PERF_MAP=
  sleep 1
fi

# 4. strace: system calls per message, and the file I/O per file (-y names each descriptor)
if command -v strace >/dev/null; then
  with_sigint strace -f -qq -y -o "$D/strace.txt" -p "$POSTERN_PID" > "$D/strace.log" 2>&1 &
  TOOL_PIDS+=($!)
  sleep 1
  relay strace "$N" "$K" "$BYTES"
  stop_tools
fi

python3 "$ROOT/bench/profile_summary.py" "$D" "$ROW" "$TOP" | tee "$D/summary.md"
echo "profile: $D" >&2
