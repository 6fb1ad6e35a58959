#!/usr/bin/env bash
# Runs every test. Installs the real peers (Postfix, swaks, unbound, nsd, ldns) when
# missing, starts the test world on loopback, builds with warnings as errors, runs xunit.
set -euo pipefail
cd "$(dirname "$0")"
testworld/install-peers.sh
dotnet build Postern.slnx -c Release -warnaserror -nologo -v quiet
testworld/world.sh up
trap 'timeout 180 testworld/world.sh down >/dev/null 2>&1 || true' EXIT
# Start from clean scratch space: earlier runs' gateway folders and delivered mail.
rm -rf "${TMPDIR:-/tmp}/postern-tests"
find "${POSTERN_WORLD:-/tmp/postern-world}/mail" -type f -delete 2>/dev/null || true
results=$(mktemp -d)
# Browser tests save a screenshot of every page they visit here.
export POSTERN_TEST_RESULTS="$results"
set +e
dotnet test Postern.slnx -c Release --no-build --nologo \
  --logger "console;verbosity=normal" --logger "trx;LogFileName=results.trx" --results-directory "$results" "$@"
status=$?
set -e
counters=$(grep -o '<Counters [^>]*>' "$results"/*.trx 2>/dev/null | head -1 || true)
passed=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
failed=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
grep -o 'testName="[^"]*"[^>]*outcome="Failed"' "$results"/*.trx 2>/dev/null | sed 's/testName="\([^"]*\)".*/FAILED: \1/' || true
echo "tests: ${passed:-0} passed, ${failed:-0} failed (results and screenshots in $results)"
if [ "${passed:-0}" = 0 ]; then echo "no test ran" >&2; exit 1; fi
exit $status
