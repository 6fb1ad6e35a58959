#!/usr/bin/env bash
# Body storage compared, as issue 13 asks: SQLite blobs with the group commit (what Postern does)
# against a spool file per body fsync'd before the metadata commit. Same disk, same writers.
#   bench/body-store.sh [messages] [size] [runs]
# Prints messages/s and CPU ms per message, the median of the runs for each.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
SIZE=${2:-102400}
RUNS=${3:-3}
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
D=$WORLD/bench/bodies
dotnet build "$ROOT/bench/BodyStoreBench/BodyStoreBench.csproj" -c Release -nologo -v quiet >/dev/null
BENCH="dotnet $ROOT/bench/BodyStoreBench/bin/Release/net10.0/bodystorebench.dll"
RESULTS=$ROOT/bench/results/body-store-$(date -u +%Y%m%dT%H%M%SZ).jsonl
for run in $(seq "$RUNS"); do
  for mode in sqlite files; do
    rm -rf "$D"; mkdir -p "$D"
    $BENCH $mode "$D" "$N" "$SIZE" 20 | tee -a "$RESULTS"
  done
done
rm -rf "$D"
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| body store | messages | size | msg/s | CPU ms/msg |\n| --- | ---: | ---: | ---: | ---: |")
for mode in ("sqlite", "files"):
    r = [x for x in rows if x["mode"] == mode]
    print(f"| {mode} | {r[0]['messages']} | {r[0]['size']} | {statistics.median(x['rate'] for x in r):.1f} | {statistics.median(x['cpu_ms_per_message'] for x in r):.3f} |")
PY
