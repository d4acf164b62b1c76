#!/usr/bin/env bash
# certbot deploy hook: install a renewed certificate on svcssl's services through the
# WHM-compatible API call install_service_ssl_certificate (works against WHM too).
#
#   certbot renew --deploy-hook /usr/local/bin/certbot-deploy-hook.sh
#
# Settings (environment, or /etc/svcssl/deploy-hook.env):
#   SVCSSL_URL       https://server.example.com:2087     (no trailing slash)
#   SVCSSL_USER      root
#   SVCSSL_TOKEN     the API token (svcssl token create root --name certbot)
#   SVCSSL_SERVICES  "dovecot exim ftp"                    (services to install on)
#   SVCSSL_CACERT    optional: CA file for the panel's certificate; SVCSSL_INSECURE=1 skips the check
# certbot sets RENEWED_LINEAGE to the live directory (cert.pem, chain.pem, privkey.pem).
set -euo pipefail
[ -f /etc/svcssl/deploy-hook.env ] && . /etc/svcssl/deploy-hook.env
: "${SVCSSL_URL:?set SVCSSL_URL}" "${SVCSSL_USER:?set SVCSSL_USER}" "${SVCSSL_TOKEN:?set SVCSSL_TOKEN}"
: "${RENEWED_LINEAGE:?certbot sets RENEWED_LINEAGE}"
services=${SVCSSL_SERVICES:-"dovecot exim ftp"}
tls=()
[ -n "${SVCSSL_CACERT:-}" ] && tls+=(--cacert "$SVCSSL_CACERT")
[ "${SVCSSL_INSECURE:-0}" = 1 ] && tls+=(--insecure)
status=0
for service in $services; do
  reply=$(curl -sS --fail-with-body "${tls[@]}" \
    -H "Authorization: whm ${SVCSSL_USER}:${SVCSSL_TOKEN}" \
    --data-urlencode "api.version=1" \
    --data-urlencode "service=${service}" \
    --data-urlencode "crt@${RENEWED_LINEAGE}/cert.pem" \
    --data-urlencode "key@${RENEWED_LINEAGE}/privkey.pem" \
    --data-urlencode "cabundle@${RENEWED_LINEAGE}/chain.pem" \
    "${SVCSSL_URL}/json-api/install_service_ssl_certificate") || { echo "svcssl: ${service}: request failed: ${reply}" >&2; status=1; continue; }
  if printf '%s' "$reply" | grep -q '"result": *1'; then
    echo "svcssl: installed on ${service}"
  else
    echo "svcssl: ${service}: $(printf '%s' "$reply" | sed -n 's/.*"reason": *"\([^"]*\)".*/\1/p')" >&2
    status=1
  fi
done
exit $status
