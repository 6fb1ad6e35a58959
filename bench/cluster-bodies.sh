#!/usr/bin/env bash
# How a cluster should keep message bodies in PostgreSQL: bytea (as Postern does, TOAST without
# compression), bytea compressed (the default), large objects, or chunked rows of 8 KB. Writes
# and reads N bodies of SIZE random bytes in the test world's PostgreSQL and reports the time and
# the WAL written. Server-side (no client transfer): it compares the storage paths only.
#   bench/cluster-bodies.sh [count] [size]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-2000}
SIZE=${2:-102400}
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
"$ROOT/testworld/world.sh" up >/dev/null
export PGPASSWORD; PGPASSWORD=$(cat "$WORLD/postgres.password")
PG="psql -h 127.0.9.1 -U postgres -qAt"
$PG -c "DROP DATABASE IF EXISTS bench_bodies" -c "CREATE DATABASE bench_bodies"
DB="$PG -d bench_bodies"
# One random value, copied into every row (TOAST does not share values between rows).
$DB -c "CREATE TABLE sample AS SELECT decode(string_agg(md5(random()::text || g), ''), 'hex') AS v FROM generate_series(1, ($SIZE / 16) + 1) g"
$DB -c "UPDATE sample SET v = substring(v from 1 for $SIZE)"
$DB -c "CREATE TABLE external_bytea(mid bigint PRIMARY KEY, body bytea NOT NULL); ALTER TABLE external_bytea ALTER COLUMN body SET STORAGE EXTERNAL;
        CREATE TABLE compressed_bytea(mid bigint PRIMARY KEY, body bytea NOT NULL);
        CREATE TABLE large_objects(mid bigint PRIMARY KEY, body oid NOT NULL);
        CREATE TABLE chunks(mid bigint NOT NULL, n int NOT NULL, part bytea NOT NULL, PRIMARY KEY(mid, n)); ALTER TABLE chunks ALTER COLUMN part SET STORAGE EXTERNAL;"

measure() {  # $1 name, $2 write SQL, $3 read SQL
  local lsn0 lsn1 t0 t1 t2
  lsn0=$($DB -c "SELECT pg_current_wal_insert_lsn()")
  t0=$(date +%s.%N); $DB -c "$2"; t1=$(date +%s.%N)
  lsn1=$($DB -c "SELECT pg_current_wal_insert_lsn()")
  $DB -c "$3" >/dev/null; t2=$(date +%s.%N)
  local wal; wal=$($DB -c "SELECT pg_wal_lsn_diff('$lsn1', '$lsn0')")
  awk -v n="$1" -v c=$N -v s=$SIZE -v w="$wal" -v a="$t0" -v b="$t1" -v e="$t2" 'BEGIN {
    printf "| %s | %.0f | %.0f | %.2f |\n", n, c / (b - a), c / (e - b), w / (c * s) }'
}

echo "# $N bodies of $SIZE bytes, $(nproc) cores, $(date -u)"
echo "| storage | written/s | read/s | WAL bytes per body byte |"
echo "| --- | ---: | ---: | ---: |"
measure "bytea, no compression (Postern)" "INSERT INTO external_bytea SELECT g, v FROM sample, generate_series(1, $N) g" "SELECT sum(length(body)) FROM external_bytea"
measure "bytea, compressed (default)" "INSERT INTO compressed_bytea SELECT g, v FROM sample, generate_series(1, $N) g" "SELECT sum(length(body)) FROM compressed_bytea"
measure "large objects" "INSERT INTO large_objects SELECT g, lo_from_bytea(0, v) FROM sample, generate_series(1, $N) g" "SELECT sum(length(lo_get(body))) FROM large_objects"
measure "chunked rows of 8 KB" "INSERT INTO chunks SELECT g, i, substring(v from i * 8192 + 1 for 8192) FROM sample, generate_series(1, $N) g, generate_series(0, ($SIZE - 1) / 8192) i" "SELECT sum(length(part)) FROM chunks"
$PG -c "DROP DATABASE bench_bodies"
