#!/usr/bin/env bash
# A certificate authority and a server certificate for the coordinator's TLS, made with the
# `openssl` command line (EC P-256 keys):
#
#   scripts/tls-certificates.sh [--out DIR] [--days N] HOST...
#
# writes, in DIR (default: the current folder):
#   ca.pem      the authority's certificate: give it to workers and clients (--tls-ca)
#   ca.key      the authority's key: keep it apart, it signs further server certificates
#   server.pem  the coordinator's certificate (--tls-cert), naming every HOST
#   server.key  the coordinator's key (--tls-key)
# Each HOST is a DNS name or an IP address that workers and clients dial (the first is the
# certificate's common name). --days is how long both stay valid (1 to 3650, default 365).
# Files already there are never overwritten.
set -euo pipefail
OUT=.
DAYS=365
HOSTS=()
fail() { echo "tls-certificates: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --days) DAYS=${2:?--days needs a number}; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) HOSTS+=("$1"); shift ;;
  esac
done
[ ${#HOSTS[@]} -gt 0 ] || fail "name at least one host the workers dial (see --help)"
case "$DAYS" in
  ''|*[!0-9]*) fail "--days is a whole number from 1 to 3650, got $DAYS" ;;
esac
{ [ ${#DAYS} -le 4 ] && [ "$DAYS" -ge 1 ] && [ "$DAYS" -le 3650 ]; } ||
  fail "--days is a whole number from 1 to 3650, got $DAYS"
command -v openssl > /dev/null || fail "openssl is not installed"

NAMES=()
for host in "${HOSTS[@]}"; do
  if [[ $host =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || ( $host == *:* && $host =~ ^[0-9A-Fa-f:.]+$ ) ]]; then
    NAMES+=("IP:$host")
  elif [[ ${#host} -le 253 && $host =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$ ]]; then
    NAMES+=("DNS:$host")
  else
    fail "host '$host' is neither a DNS name nor an IP address"
  fi
done

mkdir -p "$OUT"
for file in ca.pem ca.key server.pem server.key; do
  [ ! -e "$OUT/$file" ] || fail "$OUT/$file already exists; remove it or choose another --out"
done

WORK=$(mktemp -d "$OUT/.tls-certificates.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
umask 077
run() {
  local output
  output=$(openssl "$@" 2>&1) || fail "openssl $1 failed: $(printf '%s\n' "$output" | tail -n 1)"
}
EC=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
run req -x509 "${EC[@]}" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days "$DAYS" \
  -subj "/CN=slsg certificate authority" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
run req "${EC[@]}" -keyout "$WORK/server.key" -out "$WORK/server.csr" -subj "/CN=${HOSTS[0]}"
SAN=$(IFS=,; echo "${NAMES[*]}")
printf '%s\n' "subjectAltName=$SAN" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$WORK/server.ext"
run x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -out "$WORK/server.pem" -days "$DAYS" -extfile "$WORK/server.ext"
chmod 644 "$WORK/ca.pem" "$WORK/server.pem"
for file in ca.pem ca.key server.pem server.key; do
  mv "$WORK/$file" "$OUT/$file"
done
echo "wrote $OUT/ca.pem, $OUT/ca.key, $OUT/server.pem and $OUT/server.key for ${HOSTS[*]}"
