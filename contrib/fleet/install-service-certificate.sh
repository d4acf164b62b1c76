#!/bin/sh
# The fleet playbook's idea with plain curl in a loop: push one certificate, key and CA bundle to
# the named services of every panel in a list, through svcssl's WHM-compatible API. Idempotent:
# each panel's services are fetched first, and a service whose certificate already has the same
# SHA-256 fingerprint is left alone. Needs curl, jq, openssl, sha256sum.
#
#   install-service-certificate.sh PANELS CERT KEY CABUNDLE SERVICE...
#
# PANELS: one panel per line, "BASE_URL USER TOKEN_FILE" (e.g. "https://web1.example.com:2087 root
# /root/.svcssl/web1.token"); blank lines and lines starting with # are skipped. The token is read
# from its file into a curl header file (mode 0600), so it never appears on a command line.
# CABUNDLE may be "" for none. SVCSSL_INSECURE=1 accepts a panel's self-signed certificate.
# Prints one line per panel and service (unchanged / installed / FAILED: reason); exit 1 if any failed.
set -eu

if [ "$#" -lt 5 ]; then
  echo "usage: $0 PANELS CERT KEY CABUNDLE SERVICE..." >&2
  exit 2
fi
panels=$1 cert=$2 key=$3 cabundle=$4
shift 4

fingerprint() {  # PEM on stdin -> SHA-256 of the first certificate's DER (empty when none)
  openssl x509 -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1
}
want=$(fingerprint < "$cert")
insecure=""
[ "${SVCSSL_INSECURE:-0}" = 1 ] && insecure="--insecure"

umask 077
headers=$(mktemp)
fetched=$(mktemp)
trap 'rm -f "$headers" "$fetched"' EXIT
status=0

while read -r url user tokenfile; do
  case "$url" in ''|'#'*) continue ;; esac
  url=${url%/}
  printf 'Authorization: whm %s:%s\n' "$user" "$(cat "$tokenfile")" > "$headers"
  # the answer holds private keys: it stays in a 0600 temp file and only jq reads it
  if ! curl -sS $insecure -H @"$headers" -o "$fetched" \
       "$url/json-api/fetch_service_ssl_components?api.version=1" \
     || [ "$(jq -r '.metadata.result' "$fetched" 2>/dev/null)" != 1 ]; then
    echo "$url: FAILED: $(jq -r '.metadata.reason' "$fetched" 2>/dev/null || echo 'no answer')"
    status=1
    continue
  fi
  for service in "$@"; do
    have=$(jq -r --arg s "$service" '.data.services[] | select(.service == $s) | .certificate' "$fetched" | fingerprint)
    if [ "$have" = "$want" ]; then
      echo "$url $service: unchanged"
      continue
    fi
    answer=$(curl -sS $insecure -H @"$headers" \
      --data-urlencode api.version=1 --data-urlencode "service=$service" \
      --data-urlencode "crt@$cert" --data-urlencode "key@$key" \
      ${cabundle:+--data-urlencode "cabundle@$cabundle"} \
      "$url/json-api/install_service_ssl_certificate" || true)
    if [ "$(printf '%s' "$answer" | jq -r '.metadata.result' 2>/dev/null)" = 1 ]; then
      echo "$url $service: installed"
    else
      echo "$url $service: FAILED: $(printf '%s' "$answer" | jq -r '.metadata.reason' 2>/dev/null || echo 'no answer')"
      status=1
    fi
  done
done < "$panels"
exit "$status"
