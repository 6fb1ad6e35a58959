# Shared by bench/run.sh, bench/relay.sh and bench/profile.sh (sourced, not run): the Postfix
# and Postern bench instances, the builds, and the MTAs' CPU counters.
# Expects ROOT (the repository); sets WORLD, B, BENCH, POSTERN_DLL and the addresses.
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
B=$WORLD/bench
POSTERN_ADDR=127.0.3.2:2525
POSTFIX_ADDR=127.0.3.1:25
SINK=127.0.3.20:25
BENCH="dotnet $ROOT/bench/SmtpBench/bin/Release/net10.0/smtpbench.dll"
POSTERN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
TICK_MS=$(( 1000 / $(getconf CLK_TCK) ))
mkdir -p "$B"

# The test world (idempotent) and Release builds of Postern and smtpbench.
bench_prepare() {
  "$ROOT/testworld/world.sh" up >/dev/null
  dotnet build "$ROOT/src/Postern/Postern.csproj" -c Release -nologo -v quiet >/dev/null
  dotnet build "$ROOT/bench/SmtpBench/SmtpBench.csproj" -c Release -nologo -v quiet >/dev/null
}

# ---- Postfix: one relaying instance (the test world's instance builder), durable queue as shipped ----
source "$ROOT/testworld/world.sh"
PF=$WORLD/postfix-bench
# POSTFIX_EXTRA: more main.cf lines for this instance (relay.sh: smtp_tls_loglevel = 1, so the
# log shows "Verified TLS connection established").
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
  [ -n "${POSTFIX_EXTRA:-}" ] && extra="$extra
$POSTFIX_EXTRA"
  EXTRA_MAIN_CF=$extra postfix_up bench postfix.bench.test "" "127.0.3.1/-"
}
postfix_stop() { postfix_down "$PF"; }
postfix_queue_count() { postqueue -c "$PF/etc" -j 2>/dev/null | wc -l; }

# ---- Postern: default limits, durable queue, TLS on the outbound leg as the mode says ----
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
  "certificateAuthorities": { "customListEnabled": true, "customListFile": "$WORLD/certs/ca.crt" },
  "tlsReporting": { "enabled": ${POSTERN_TLSRPT:-false} }
}
JSON
  dotnet "$POSTERN_DLL" serve --config "$B/postern/postern.json" > "$B/postern/out.txt" 2>&1 &
  POSTERN_PID=$!
  for _ in $(seq 100); do grep -q "Postern running" "$B/postern/out.txt" 2>/dev/null && return 0; sleep 0.1; done
  cat "$B/postern/out.txt" >&2; return 1
}
postern_stop() { if [ -n "$POSTERN_PID" ]; then kill "$POSTERN_PID" 2>/dev/null || true; wait "$POSTERN_PID" 2>/dev/null || true; POSTERN_PID=; fi; }

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
