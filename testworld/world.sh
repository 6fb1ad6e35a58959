#!/usr/bin/env bash
# The test world: a DNSSEC-signed zone tree under nsd, a validating unbound resolver, and
# receiving Postfix instances with real certificates — all on loopback, all started here.
#   world.sh up     start (idempotent; regenerates nothing that is already running)
#   world.sh down   stop everything
#   world.sh env    print the addresses as shell variables
# Addresses (see testworld/README.md):
#   127.0.10.1:53   unbound, the validating resolver Postern queries
#   127.0.10.53:53  nsd, authoritative for the signed zone "test."
#   127.0.1.10:25   Postfix "mx1.good.test": STARTTLS with a test-CA certificate, Maildir delivery
#   [::1]:25        the same Postfix over IPv6
#   127.0.1.99      nothing listens (a dead MX)
#   127.0.4.1-9     Postfix "tls": one smtpd per TLS-matrix case (testworld/README.md)
#   127.0.4.10      Postfix "tls": requires TLS and a client certificate from the world CA
#   127.0.4.11      Postfix "tls": a leaf issued by the intermediate "int", sent without its chain (DANE-TA)
#   127.0.4.12      Postfix "tls": a leaf issued by the root "ca", sent with the root (DANE-TA)
#   127.0.4.13      Postfix "tls": mx.sts-dane.test, a leaf from "ca" (MTA-STS passes, its TLSA record does not)
#   127.0.8.1:443   nginx: the MTA-STS policy hosts mta-sts.<domain>, one certificate each (SNI)
#   127.0.8.98      nothing listens: mta-sts.sts-cache.test, where a test binds its own HTTPS server
#   127.0.8.99      nothing listens: mta-sts.sts-refused.test (connection refused)
#   127.0.7.1:25    Postfix "sender": relays everything to a Postern listener on 127.0.2.9:2525
#   127.0.9.1:5432  PostgreSQL (Debian's), the cluster store: superuser postgres, password in $WORLD/postgres.password
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORLD=${POSTERN_WORLD:-/tmp/postern-world}
RESOLVER=127.0.10.1
AUTH=127.0.10.53
MX_GOOD=127.0.1.10

alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

# The world's PKI: a trusted root, an intermediate, an untrusted root, and one leaf per
# receiving-MTA case of the TLS matrix (see README.md).
TLS_CASES="mxname domainonly wild cnonly expired selfsigned untrusted intermediate notls"
tls_addr() { local i=1; for c in $TLS_CASES; do [ "$c" = "$1" ] && { echo "127.0.4.$i"; return; }; i=$((i+1)); done; }

# The MTA-STS part (RFC 8461, README.md): every sts-* domain delivers to the "tls" Postfix
# instance; the policy hosts mta-sts.<domain> are virtual hosts (SNI) of one nginx on
# 127.0.8.1:443, the policies are written by sts_policies below.
STS_DOMAINS="sts-good.test sts-outside.test sts-second.test sts-expired.test sts-wrongname.test sts-selfsigned.test
  sts-untrusted.test sts-nochain.test sts-chain.test sts-notls.test sts-otherhost.test sts-testing.test sts-none.test
  sts-wild.test sts-wild2.test sts-twotxt.test sts-noid.test sts-refused.test sts-404.test sts-badcert.test
  sts-redirect.test sts-mediatype.test sts-oversize.test sts-badversion.test sts-cache.test sts-dane.test
  sts-unsigned.unsigned.test sts-routed.test rpt-sts.test rpt-sts-testing.test"
STS_ADDR=127.0.8.1
# Domains whose policy host gets a certificate of its own from ca (certs/mta-sts.<domain>):
# all but sts-refused (nothing listens) and sts-badcert (presents sts-good's). sts-cache's is
# not served by nginx: it is there for the HTTPS server a test binds on 127.0.8.98.
sts_cert_domains() { local d; for d in $STS_DOMAINS; do case $d in sts-refused.test|sts-badcert.test) ;; *) echo "$d" ;; esac; done; }
# Domains nginx serves: all but sts-refused (127.0.8.99) and sts-cache (127.0.8.98).
sts_served_domains() { local d; for d in $STS_DOMAINS; do case $d in sts-refused.test|sts-cache.test) ;; *) echo "$d" ;; esac; done; }

# Every certificate the world needs; a missing one regenerates the whole PKI.
CERT_NAMES="ca other-ca int mx1.good.test clientcert postern-client sink mxname domainonly wild cnonly untrusted intermediate selfsigned expired ta-nochain ta-root
  sts-dane $(for d in $(sts_cert_domains); do echo "mta-sts.$d"; done)"

# The DANE part (RFC 7672, README.md): every dane-* domain, and the two in the unsigned child
# zone, delivers to the "tls" Postfix instance.
DANE_DOMAINS="dane-ee.test dane-ee0.test dane-expired.test dane-selfsigned.test dane-nomatch.test dane-ta.test
  dane-ta-nochain.test dane-ta-mismatch.test dane-ta-root.test dane-pkix.test dane-mixed.test dane-notls.test
  dane-cname.test dane-alias.test dane-fallback.test dane-bogushost.test dane-bogus-tlsa.test
  dane-insecure.unsigned.test unsigned-mx.unsigned.test"

# The TLS reporting part (RFC 8460, README.md): policy domains whose _smtp._tls records send
# reports to the loopback mailbox tlsrpt@reports.good.test and to the HTTPS collector a test
# binds on 127.0.8.60:8443 (rpt-sts and rpt-sts-testing are in STS_DOMAINS above).
RPT_DOMAINS="rpt-dane.test rpt-dane-bad.test rpt-none.test rpt-notls.test rpt-relaxed.test"

certs() {
  local d=$WORLD/certs n missing=0
  for n in $CERT_NAMES; do [ -f "$d/$n.crt" ] || missing=1; done
  [ $missing = 0 ] && return 0
  rm -rf "$d"; mkdir -p "$d"
  ( cd "$d"
    ca_root() {  # name subject
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    }
    ca_root ca "Postern Test Root CA"
    ca_root other-ca "Some Other Root CA"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=Postern Test Intermediate CA" -keyout int.key -out int.csr 2>/dev/null
    printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > int.ext
    openssl x509 -req -in int.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile int.ext -out int.crt 2>/dev/null
    # leaf NAME CN SANS ISSUER [DAYS]
    leaf() {
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial -days "${5:-825}" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    }
    leaf mx1.good.test mx1.good.test DNS:mx1.good.test ca
    leaf clientcert mx.clientcert.test DNS:mx.clientcert.test ca
    leaf postern-client postern.test DNS:postern.test ca   # Postern's outbound client certificate
    leaf sink mx.sink.test DNS:mx.sink.test ca                # bench/SmtpBench's sink
    leaf mxname mx.mxname.test DNS:mx.mxname.test ca
    leaf domainonly domainonly.test DNS:domainonly.test ca
    leaf wild '*.wild.test' 'DNS:*.wild.test' ca
    leaf cnonly mx.cnonly.test DNS:other.cnonly.test ca
    leaf untrusted mx.untrusted.test DNS:mx.untrusted.test other-ca
    leaf intermediate mx.intermediate.test DNS:mx.intermediate.test int
    cat int.crt >> intermediate.crt            # the server sends its chain
    # DANE-TA (2 x x) receivers: ta-nochain is issued by int and sent alone (no chain, so a
    # TLSA record naming int cannot match); ta-root is issued by the root and sent with it.
    leaf ta-nochain mx.ta-nochain.test DNS:mx.ta-nochain.test int
    leaf ta-root mx.ta-root.test DNS:mx.ta-root.test ca
    cat ca.crt >> ta-root.crt
    # MTA-STS: the receiver on 127.0.4.13, and one certificate per policy host (exactly its name)
    leaf sts-dane mx.sts-dane.test DNS:mx.sts-dane.test ca
    for d in $(sts_cert_domains); do leaf "mta-sts.$d" "mta-sts.$d" "DNS:mta-sts.$d" ca; done
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=mx.selfsigned.test" -keyout selfsigned.key \
      -out selfsigned.crt -addext "subjectAltName=DNS:mx.selfsigned.test" 2>/dev/null
    # expired: issued by the trusted root for 2020 only (openssl ca lets us set the dates)
    openssl req -newkey rsa:2048 -nodes -subj "/CN=mx.expired.test" -keyout expired.key -out expired.csr 2>/dev/null
    mkdir -p ca-db; : > ca-db/index.txt; echo 1000 > ca-db/serial
    cat > ca-db/ca.cnf <<CNF
[ ca ]
default_ca = world
[ world ]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = anything
copy_extensions = none
[ anything ]
commonName = supplied
[ leaf ]
subjectAltName = DNS:mx.expired.test
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
    openssl ca -batch -config ca-db/ca.cnf -extensions leaf -startdate 20200101000000Z -enddate 20210101000000Z \
      -in expired.csr -out expired.crt >/dev/null 2>&1
    chmod 600 ./*.key )
}

# tlsa_digest KIND CERT: the hex digest of certs/CERT.crt (its first certificate) for a TLSA
# record. KIND: SPKI256 / SPKI512 (selector 1: the DER SubjectPublicKeyInfo) or CERT256 /
# CERT512 (selector 0: the whole DER certificate), hashed with SHA-256 / SHA-512.
tlsa_digest() {
  local c=$WORLD/certs/$2.crt sum
  case $1 in *256) sum=sha256sum ;; *512) sum=sha512sum ;; *) echo "world: bad digest kind $1" >&2; return 1 ;; esac
  case $1 in
    SPKI*) openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform DER | $sum ;;
    CERT*) openssl x509 -in "$c" -outform DER | $sum ;;
    *) echo "world: bad digest kind $1" >&2; return 1 ;;
  esac | cut -d' ' -f1
}

# fill_zone SRC DST: copies a zone file, filling in @AUTH@, @MX_GOOD@ and every TLSA digest
# placeholder @KIND_CERT@ (e.g. @SPKI256_mxname@, see tlsa_digest) from the world's certificates.
fill_zone() {
  local script="s/@AUTH@/$AUTH/g; s/@MX_GOOD@/$MX_GOOD/g" p kind cert
  for p in $(grep -o '@\(SPKI\|CERT\)\(256\|512\)_[A-Za-z0-9.-]*@' "$1" | sort -u || true); do
    p=${p//@/}; kind=${p%%_*}; cert=${p#*_}
    [ -f "$WORLD/certs/$cert.crt" ] || { echo "world: $1 names a missing certificate $cert" >&2; return 1; }
    script="$script; s/@$p@/$(tlsa_digest "$kind" "$cert")/g"
  done
  sed "$script" "$1" > "$2"
}

dns_up() {
  local d=$WORLD/dns certsum
  # The zones carry TLSA digests of the world's certificates: a regenerated PKI rebuilds them.
  certsum=$(cat "$WORLD"/certs/*.crt | sha256sum | cut -d' ' -f1)
  if alive "$d/nsd.pid" && alive "$d/unbound.pid" && [ "$(cat "$d/certs.sum" 2>/dev/null)" = "$certsum" ]; then return 0; fi
  dns_down
  mkdir -p "$d"
  fill_zone "$HERE/zones/test.zone" "$d/test.zone"
  cp "$HERE/zones/3.0.127.in-addr.arpa.zone" "$d/"
  # bogus.test: the parent publishes a DS for it, but the child is served unsigned, so a
  # validating resolver answers SERVFAIL (broken DNSSEC, the "DNS error" case).
  cp "$HERE/zones/bogus.test.zone" "$d/"
  # unsigned.test: delegated without a DS (the signed parent's NSEC proves it), so its
  # answers are insecure (no AD): DANE does not apply there.
  fill_zone "$HERE/zones/unsigned.test.zone" "$d/unsigned.test.zone"
  # badsig.test: signed with its own keys and a DS in test., then one TLSA record is altered
  # in the signed file, so its RRSIG no longer verifies: that RRset alone is bogus.
  fill_zone "$HERE/zones/badsig.test.zone" "$d/badsig.test.zone"
  (cd "$d"
   local expiry; expiry=$(date -u -d '+30 days' +%Y%m%d%H%M%S)
   if [ ! -f ksk.name ]; then
     ldns-keygen -a ECDSAP256SHA256 -k test > ksk.name
     ldns-keygen -a ECDSAP256SHA256 test > zsk.name
   fi
   [ -f bogus-ksk.name ] || ldns-keygen -a ECDSAP256SHA256 -k bogus.test > bogus-ksk.name
   if [ ! -f badsig-ksk.name ]; then
     ldns-keygen -a ECDSAP256SHA256 -k badsig.test > badsig-ksk.name
     ldns-keygen -a ECDSAP256SHA256 badsig.test > badsig-zsk.name
   fi
   { echo; echo "bogus NS ns.test."; sed 's/^bogus\.test\.[[:space:]]*/bogus /' "$(cat bogus-ksk.name).ds"; } >> test.zone
   { echo; echo "badsig NS ns.test."; sed 's/^badsig\.test\.[[:space:]]*/badsig /' "$(cat badsig-ksk.name).ds"; } >> test.zone
   ldns-signzone -e "$expiry" test.zone "$(cat ksk.name)" "$(cat zsk.name)"
   ldns-signzone -e "$expiry" badsig.test.zone "$(cat badsig-ksk.name)" "$(cat badsig-zsk.name)"
   # Signed over the self-signed key's digest; served with the mxname key's digest (which
   # would match 127.0.4.1), so only the failed validation stops delivery.
   local signed published
   signed=$(tlsa_digest SPKI256 selfsigned); published=$(tlsa_digest SPKI256 mxname)
   sed -i "/^_25\._tcp\.mx\.dane\.badsig\.test\.[[:space:]].*[[:space:]]TLSA[[:space:]]/ s/$signed/$published/I" badsig.test.zone.signed
   grep -qiE "^_25\._tcp\.mx\.dane\.badsig\.test\..*TLSA[[:space:]]+3 1 1 $published" badsig.test.zone.signed \
     || { echo "world: could not alter the TLSA record of badsig.test" >&2; exit 1; }
   cp "$(cat ksk.name).ds" trust-anchor.ds)
  cat > "$d/nsd.conf" <<NSD
server:
  ip-address: $AUTH
  port: 53
  username: ""
  chroot: ""
  zonesdir: "$d"
  pidfile: "$d/nsd.pid"
  logfile: "$d/nsd.log"
  database: ""
  zonelistfile: "$d/zone.list"
  xfrdfile: "$d/xfrd.state"
  xfrdir: "$d"
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: test
  zonefile: test.zone.signed
zone:
  name: 3.0.127.in-addr.arpa
  zonefile: 3.0.127.in-addr.arpa.zone
zone:
  name: bogus.test
  zonefile: bogus.test.zone
zone:
  name: unsigned.test
  zonefile: unsigned.test.zone
zone:
  name: badsig.test
  zonefile: badsig.test.zone.signed
NSD
  cat > "$d/unbound.conf" <<UNB
server:
  interface: $RESOLVER
  port: 53
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  username: ""
  chroot: ""
  directory: "$d"
  pidfile: "$d/unbound.pid"
  logfile: "$d/unbound.log"
  use-syslog: no
  verbosity: 1
  val-log-level: 2
  module-config: "validator iterator"
  trust-anchor-file: "$d/trust-anchor.ds"
  local-zone: "test." nodefault
  local-zone: "127.in-addr.arpa." nodefault
  cache-max-ttl: 30
  cache-max-negative-ttl: 5
  qname-minimisation: no
  so-reuseport: no
stub-zone:
  name: "test."
  stub-addr: $AUTH
stub-zone:
  name: "3.0.127.in-addr.arpa."
  stub-addr: $AUTH
remote-control:
  control-enable: no
UNB
  nsd -c "$d/nsd.conf"
  unbound -c "$d/unbound.conf"
  for _ in $(seq 50); do
    if dig +short +time=1 +tries=1 @"$RESOLVER" mx1.good.test A 2>/dev/null | grep -q "$MX_GOOD"; then
      echo "$certsum" > "$d/certs.sum"; return 0
    fi
    sleep 0.2
  done
  echo "world: DNS did not come up" >&2; tail -20 "$d/nsd.log" "$d/unbound.log" >&2; return 1
}

dns_down() {
  local d=$WORLD/dns
  for p in nsd unbound; do
    if alive "$d/$p.pid"; then kill "$(cat "$d/$p.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do
    alive "$d/nsd.pid" || alive "$d/unbound.pid" || return 0
    sleep 0.1
  done
}

# sts_policies DIR: writes DIR/<domain>.txt, the body of https://mta-sts.<domain>/.well-known/mta-sts.txt
# for every domain with a policy file (README.md, MTA-STS). Columns: domain, version, mode,
# line ending (crlf / lf / lf-noeol: LF without one after the last line), mx patterns.
# "No policy" cases carry mx.other.test, which would defer their mail were they accepted.
STS_POLICIES="
sts-good.test              STSv1 enforce crlf     mx.mxname.test
sts-outside.test           STSv1 enforce lf       mx.elsewhere.test
sts-second.test            STSv1 enforce crlf     mx.mxname.test
sts-expired.test           STSv1 enforce lf       mx.expired.test
sts-wrongname.test         STSv1 enforce crlf     mx.domainonly.test
sts-selfsigned.test        STSv1 enforce lf       mx.selfsigned.test
sts-untrusted.test         STSv1 enforce crlf     mx.untrusted.test
sts-nochain.test           STSv1 enforce lf       mx.ta-nochain.test
sts-chain.test             STSv1 enforce crlf     mx.intermediate.test
sts-notls.test             STSv1 enforce lf       mx.notls.test
sts-otherhost.test         STSv1 enforce crlf     mx.sts-otherhost.test mx.mxname.test
sts-testing.test           STSv1 testing lf       mx.expired.test
sts-none.test              STSv1 none    crlf     mx.expired.test
sts-wild.test              STSv1 enforce lf-noeol *.wild.test
sts-wild2.test             STSv1 enforce crlf     *.wild.test
sts-twotxt.test            STSv1 enforce lf       mx.other.test
sts-noid.test              STSv1 enforce crlf     mx.other.test
sts-badcert.test           STSv1 enforce lf       mx.other.test
sts-mediatype.test         STSv1 enforce crlf     mx.other.test
sts-oversize.test          STSv1 enforce lf       mx.other.test
sts-badversion.test        STSv2 enforce crlf     mx.other.test
sts-dane.test              STSv1 enforce lf       mx.sts-dane.test
sts-unsigned.unsigned.test STSv1 enforce crlf     mx.mxname.test
sts-routed.test            STSv1 enforce lf       mx.elsewhere.test
rpt-sts.test               STSv1 enforce crlf     mx.mxname.test
rpt-sts-testing.test       STSv1 testing lf       mx.expired.test
"
sts_policies() {
  local dir=$1 domain version mode eol mxs body mx i pad
  mkdir -p "$dir"
  pad=$(printf 'a%.0s' $(seq 1000))
  while read -r domain version mode eol mxs; do
    [ -n "$domain" ] || continue
    body="version: $version"$'\n'"mode: $mode"$'\n'
    read -r -a mxs <<<"$mxs"   # an array: no glob expansion of "*.wild.test"
    for mx in "${mxs[@]}"; do body="${body}mx: $mx"$'\n'; done
    body="${body}max_age: 86400"$'\n'
    # sts-oversize: the valid policy above, then extension lines (ignored by RFC 8461 §3.2)
    # up to about 70 KB, over the 64 KB a client may read
    if [ "$domain" = sts-oversize.test ]; then
      for i in $(seq -w 1 70); do body="${body}x_pad_$i: $pad"$'\n'; done
    fi
    case $eol in
      crlf) printf '%s' "${body//$'\n'/$'\r\n'}" ;;
      lf) printf '%s' "$body" ;;
      lf-noeol) printf '%s' "${body%$'\n'}" ;;
    esac > "$dir/$domain.txt"
  done <<<"$STS_POLICIES"
}

# nginx_up: the MTA-STS policy hosts. One nginx instance (config, pid, logs, temp files under
# $WORLD/nginx) on $STS_ADDR:443, one server block per mta-sts.<domain> with that name's
# certificate; an unknown or missing SNI name gets no certificate (the handshake is refused).
# access.log: one line per request, with the SNI name (tests can count policy fetches).
nginx_up() {
  local n=$WORLD/nginx c=$WORLD/certs certsum d cert rule
  certsum=$(cat "$WORLD"/certs/*.crt | sha256sum | cut -d' ' -f1)
  if alive "$n/nginx.pid" && [ "$(cat "$n/certs.sum" 2>/dev/null)" = "$certsum" ]; then return 0; fi
  nginx_down
  rm -rf "$n"; mkdir -p "$n/tmp" "$n/policies"
  sts_policies "$n/policies"
  for d in $(sts_served_domains); do
    mkdir -p "$n/html/$d/.well-known"
    if [ -f "$n/policies/$d.txt" ]; then cp "$n/policies/$d.txt" "$n/html/$d/.well-known/mta-sts.txt"; fi
  done
  chmod -R a+rX "$n/html"
  { cat <<CONF
user nobody nogroup;
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log;
events { worker_connections 256; }
http {
  types { }
  default_type text/plain;
  server_tokens off;
  log_format sts '\$time_iso8601 \$remote_addr sni=\$ssl_server_name "\$request" \$status \$body_bytes_sent';
  access_log $n/access.log sts;
  client_body_temp_path $n/tmp/body;
  proxy_temp_path $n/tmp/proxy;
  fastcgi_temp_path $n/tmp/fastcgi;
  uwsgi_temp_path $n/tmp/uwsgi;
  scgi_temp_path $n/tmp/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
  keepalive_timeout 5s;
  server {
    listen $STS_ADDR:443 ssl default_server;
    ssl_reject_handshake on;
  }
CONF
    for d in $(sts_served_domains); do
      cert=mta-sts.$d; rule=
      case $d in
        sts-badcert.test) cert=mta-sts.sts-good.test ;;   # a certificate for another name
        sts-404.test) rule="return 404;" ;;
        sts-redirect.test) rule="return 301 https://mta-sts.sts-good.test/.well-known/mta-sts.txt;" ;;
        sts-mediatype.test) rule="default_type text/html;" ;;
      esac
      cat <<CONF
  server {
    listen $STS_ADDR:443 ssl;
    server_name mta-sts.$d;
    ssl_certificate $c/$cert.crt;
    ssl_certificate_key $c/$cert.key;
    root $n/html/$d;
    location = /.well-known/mta-sts.txt { $rule }
    location / { return 404; }
  }
CONF
    done
    echo "}"; } > "$n/nginx.conf"
  nginx -p "$n" -c "$n/nginx.conf" -e "$n/error.log" || { echo "world: nginx did not start" >&2; tail -20 "$n/error.log" >&2; return 1; }
  for _ in $(seq 50); do
    if alive "$n/nginx.pid" && (exec 3<>"/dev/tcp/$STS_ADDR/443") 2>/dev/null; then echo "$certsum" > "$n/certs.sum"; return 0; fi
    sleep 0.2
  done
  echo "world: nginx did not come up on $STS_ADDR:443" >&2; tail -20 "$n/error.log" >&2; return 1
}

nginx_down() {
  local n=$WORLD/nginx master
  alive "$n/nginx.pid" || return 0
  master=$(cat "$n/nginx.pid")
  kill "$master" 2>/dev/null || true
  for _ in $(seq 50); do alive "$n/nginx.pid" || return 0; sleep 0.1; done
  # A stop that did not finish: end it by force, workers first.
  pkill -9 -P "$master" 2>/dev/null || true; kill -9 "$master" 2>/dev/null || true
}

# PostgreSQL for the cluster tests: Debian's server binaries, a cluster made by initdb in
# $WORLD/postgres, run as the unprivileged "postgres" user, listening on loopback only, with
# password (SCRAM) authentication. Tests create one database each.
PG_ADDR=127.0.9.1
pg_bin() { local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1); echo "$d"; }
postgres_up() {
  local pg=$WORLD/postgres bin; bin=$(pg_bin)
  [ -x "$bin/initdb" ] || { echo "world: PostgreSQL server binaries not found" >&2; return 1; }
  if [ -f "$pg/data/postmaster.pid" ] && "$bin/pg_isready" -q -h $PG_ADDR -p 5432; then return 0; fi
  if [ ! -f "$pg/data/PG_VERSION" ]; then
    rm -rf "$pg"; mkdir -p "$pg"
    openssl rand -hex 16 > "$WORLD/postgres.password"
    cp "$WORLD/postgres.password" "$pg/pwfile"
    chown -R postgres:postgres "$pg"; chmod 700 "$pg"
    runuser -u postgres -- "$bin/initdb" -D "$pg/data" -U postgres --pwfile="$pg/pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$pg/initdb.log" 2>&1 \
      || { cat "$pg/initdb.log" >&2; return 1; }
    rm -f "$pg/pwfile"
  fi
  # Durable like production (fsync on); sized for a 2-core test machine.
  runuser -u postgres -- "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 60 \
    -o "-c listen_addresses=$PG_ADDR -c port=5432 -c unix_socket_directories=$pg -c max_connections=300 -c shared_buffers=128MB" start >/dev/null \
    || { tail -20 "$pg/postgres.log" >&2; return 1; }
}
postgres_down() {
  local pg=$WORLD/postgres bin; bin=$(pg_bin)
  [ -f "$pg/data/postmaster.pid" ] || return 0
  runuser -u postgres -- "$bin/pg_ctl" -D "$pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || kill -9 "$(head -1 "$pg/data/postmaster.pid")" 2>/dev/null || true
}

# postfix_up NAME HOSTNAME "DOMAINS" SERVICE... (EXTRA_MAIN_CF: more main.cf lines; later lines win) where SERVICE is "ADDRESS/CERT[/ccert]" (ADDRESS
# 127.0.x.y or [::1]; CERT = a name under certs/, or "-" for no STARTTLS; "/ccert" = TLS and a client certificate from
# the world's CA are required). One Postfix instance, one smtpd per address.
postfix_up() {
  local name=$1 host=$2 domains=$3; shift 3
  local p=$WORLD/postfix-$name
  if alive "$p/spool/pid/master.pid"; then return 0; fi
  rm -rf "$p/etc" "$p/spool"
  mkdir -p "$p/etc" "$p/spool" "$p/data" "$WORLD/mail"
  chown postfix "$p/data"
  chown 65534:65534 "$WORLD/mail"
  # No chroot (the instance lives in a scratch folder without the files a chroot needs), and
  # the default smtpd replaced by one per address: inet_interfaces only accepts addresses
  # configured on an interface, and lo carries just 127.0.0.1.
  sed 's/^#tlsproxy /tlsproxy /' /etc/postfix/master.cf \
    | awk '/^[a-z0-9.:]/ && NF >= 8 && $5 == "y" { $5 = "n" } /^smtp +inet/ { next } { print }' > "$p/etc/master.cf"
  local svc addr cert extra
  for svc in "$@"; do
    addr=${svc%%/*}; cert=${svc#*/}; extra=
    case $cert in */ccert) cert=${cert%/ccert}
      extra="-o smtpd_tls_security_level=encrypt -o smtpd_tls_ask_ccert=yes -o smtpd_tls_req_ccert=yes -o smtpd_tls_CAfile=$WORLD/certs/ca.crt" ;; esac
    if [ "$cert" = - ]; then
      echo "$addr:smtp inet n - n - - smtpd -o smtpd_tls_security_level=none" >> "$p/etc/master.cf"
    else
      echo "$addr:smtp inet n - n - - smtpd -o smtpd_tls_security_level=may -o smtpd_tls_cert_file=$WORLD/certs/$cert.crt -o smtpd_tls_key_file=$WORLD/certs/$cert.key $extra" >> "$p/etc/master.cf"
    fi
  done
  cat > "$p/etc/recipient_access" <<'ACC'
/^reject-/      550 5.1.1 User unknown (test world)
/^tempfail-/    450 4.2.0 Mailbox temporarily unavailable (test world)
ACC
  # One Maildir per domain (virtual(8) forbids $n substitution); tests find their message
  # by its Delivered-To header and a unique local part.
  : > "$p/etc/vmailbox"
  for dom in $domains; do printf '/@%s$/ %s/\n' "${dom//./\\.}" "$dom" >> "$p/etc/vmailbox"; done
  cat > "$p/etc/main.cf" <<MAIN
compatibility_level = 3.6
queue_directory = $p/spool
data_directory = $p/data
mail_owner = postfix
setgid_group = postdrop
myhostname = $host
mydestination =
inet_interfaces = loopback-only
inet_protocols = ${INET_PROTOCOLS:-ipv4}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access regexp:$p/etc/recipient_access
virtual_mailbox_domains = $domains
virtual_mailbox_base = $WORLD/mail
virtual_mailbox_maps = regexp:$p/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
virtual_mailbox_limit = 0
message_size_limit = 104857600
smtputf8_enable = yes
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = $p/maillog
maillog_file_prefixes = $WORLD
biff = no
smtpd_banner = \$myhostname ESMTP Postfix (test world)
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
MAIN
  # Extra settings replace the lines above (postconf -e) instead of repeating them: a
  # repeated parameter makes every Postfix process warn, and postlogd can deadlock on
  # logging its own warnings.
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && postconf -c "$p/etc" -e "$line"
  done <<<"${EXTRA_MAIN_CF:-}"
  # postfix prints its errors only to a terminal: give it one when it fails.
  postfix -c "$p/etc" start >/dev/null 2>&1 || { script -qc "postfix -c $p/etc start" /dev/null >&2; return 1; }
  for svc in "$@"; do
    addr=${svc%%/*}; addr=${addr#[}; addr=${addr%]}
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/$addr/25") 2>/dev/null; then continue 2; fi
      sleep 0.2
    done
    echo "world: postfix $name did not come up on $addr" >&2; tail -20 "$p/maillog" >&2 || true; return 1
  done
}

postfix_down() {
  local p=$1 master
  [ -d "$p/etc" ] || return 0
  timeout 30 postfix -c "$p/etc" stop >/dev/null 2>&1 || true
  for _ in $(seq 50); do alive "$p/spool/pid/master.pid" || return 0; sleep 0.1; done
  # A stop that did not finish: end the instance by force, children first.
  master=$(tr -d ' ' < "$p/spool/pid/master.pid" 2>/dev/null)
  if [ -n "$master" ]; then pkill -9 -P "$master" 2>/dev/null || true; kill -9 "$master" 2>/dev/null || true; fi
}

up() {
  "$HERE/install-peers.sh"
  mkdir -p "$WORLD"
  # A world started from other scripts or zones is restarted, so tests never run against stale peers.
  local fingerprint
  fingerprint=$(cat "$HERE/world.sh" "$HERE"/zones/* | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$WORLD/fingerprint" 2>/dev/null)" != "$fingerprint" ]; then
    down >/dev/null
    echo "$fingerprint" > "$WORLD/fingerprint"
  fi
  certs
  dns_up
  nginx_up
  postgres_up
  INET_PROTOCOLS=all postfix_up good mx1.good.test "good.test sender.test implicit.test fallback.test dual.test v6only.test reports.good.test" "$MX_GOOD/mx1.good.test" "[::1]/mx1.good.test"
  local services=() domains="routed.test" c
  for c in $TLS_CASES; do
    services+=("$(tls_addr "$c")/$([ "$c" = notls ] && echo - || echo "$c")")
    domains="$domains $c.test"
  done
  services+=("127.0.4.10/clientcert/ccert" "127.0.4.11/ta-nochain" "127.0.4.12/ta-root" "127.0.4.13/sts-dane")
  domains="$domains clientcert.test $(echo $DANE_DOMAINS) $(echo $STS_DOMAINS) $(echo $RPT_DOMAINS)"
  postfix_up tls mx.tls.test "$domains" "${services[@]}"
  # A sending Postfix: relays everything it is given to a Postern listener on 127.0.2.9:2525
  # (tests bind one there), with opportunistic STARTTLS and DSN.
  EXTRA_MAIN_CF="smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
relayhost = [127.0.2.9]:2525
smtp_tls_security_level = may
smtp_tls_loglevel = 1" postfix_up sender postfix-sender.test "" "127.0.7.1/-"
  echo "world: up in $WORLD"
}

down() {
  for p in "$WORLD"/postfix-*; do [ -d "$p" ] && postfix_down "$p"; done
  nginx_down
  postgres_down
  dns_down
  echo "world: down"
}

# Sourced (bench/run.sh): provide the functions only.
[ "${BASH_SOURCE[0]}" != "$0" ] && return 0

case "${1:-up}" in
  up) up ;;
  down) down ;;
  env) echo "WORLD=$WORLD RESOLVER=$RESOLVER AUTH=$AUTH MX_GOOD=$MX_GOOD STS_ADDR=$STS_ADDR PG_ADDR=$PG_ADDR" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
