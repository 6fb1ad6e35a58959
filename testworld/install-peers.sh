#!/usr/bin/env bash
# Installs the real peers the integration tests run against (Postfix, swaks, unbound,
# nsd, ldns tools, nginx for the MTA-STS policy hosts, chromium for the web interface tests,
# PostgreSQL for the cluster tests).
# Idempotent: does nothing when everything is present.
# Services are not started by the packages: the test world runs its own instances.
set -euo pipefail
need=()
command -v swaks >/dev/null || need+=(swaks)
command -v postfix >/dev/null || need+=(postfix)
command -v unbound >/dev/null || need+=(unbound)
command -v nsd >/dev/null || need+=(nsd)
command -v ldns-signzone >/dev/null || need+=(ldnsutils)
command -v dig >/dev/null || need+=(dnsutils)
command -v openssl >/dev/null || need+=(openssl)
perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v smtp-source >/dev/null || need+=(postfix)
command -v nginx >/dev/null || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium fonts-dejavu-core)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
echo "install-peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Keep package scripts from starting system-wide daemons; the tests run their own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f "$policy"' EXIT
if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/postern-apt.log 2>&1; then
  apt-get update >>/tmp/postern-apt.log 2>&1
  apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/postern-apt.log 2>&1 || { tail -30 /tmp/postern-apt.log; exit 1; }
fi
