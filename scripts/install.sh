#!/usr/bin/env bash
# Install svcssl into ./.venv (and, with --test, everything the test suite needs, Debian packages included).
# Runs on a fresh Debian 12 machine as root without asking; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_packages=()
if [ "$want_test" = 1 ]; then
  # real daemons the tests start on loopback
  apt_packages+=(dovecot-imapd dovecot-pop3d exim4-daemon-light pure-ftpd)
  # the ACME test server, and the browser for the UI tests (Playwright drives Debian's Chromium)
  apt_packages+=(pebble chromium curl)
  # the fleet curl loop (contrib/fleet) is tested with jq and openssl
  apt_packages+=(jq openssl)
  # systemd-analyze verifies contrib/systemd's units (no running systemd needed)
  apt_packages+=(systemd)
  # /metrics and the alert rules are checked with promtool and scraped by a real Prometheus server
  apt_packages+=(prometheus)
  # the disk-fault tests make a small ext4 (mkfs.ext4), mark files immutable (chattr) and mount (util-linux)
  apt_packages+=(e2fsprogs util-linux mount)
  # DANE tests: a zone signed with ldns-signzone (ldnsutils), served by NSD, validated by Unbound
  apt_packages+=(nsd unbound ldnsutils)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "svcssl: needs root to install Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  echo "svcssl: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if [ "$want_test" = 1 ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi

if [ "$want_test" = 1 ]; then
  # axe-core (the accessibility rules the browser tests run in Chromium), pinned and checked by its npm integrity
  axe_version=4.14.1
  axe_sha512=FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==
  axe_dir=.venv/share/axe-core-$axe_version
  if [ ! -s "$axe_dir/axe.min.js" ]; then
    tmp=$(mktemp -d)
    curl -fsSL --retry 3 -o "$tmp/axe.tgz" "https://registry.npmjs.org/axe-core/-/axe-core-$axe_version.tgz"
    got=$(openssl dgst -sha512 -binary "$tmp/axe.tgz" | base64 -w0)
    if [ "$got" != "$axe_sha512" ]; then
      echo "svcssl: axe-core-$axe_version.tgz does not match its pinned sha512" >&2
      rm -rf "$tmp"
      exit 1
    fi
    tar -xzf "$tmp/axe.tgz" -C "$tmp" package/axe.min.js
    mkdir -p "$axe_dir"
    mv "$tmp/package/axe.min.js" "$axe_dir/axe.min.js"
    rm -rf "$tmp"
  fi
fi
