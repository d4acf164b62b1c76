"""Start Debian's ``pebble`` ACME test server (and ``pebble-challtestsrv`` for DNS) on 127.0.0.1.

``start_pebble(workdir, http01_port)`` writes everything under ``workdir``, starts both programs
on free loopback ports, waits until pebble's directory answers and returns a
:class:`RunningPebble`; ``stop()`` ends both by PID.  A program that does not come up raises
``RuntimeError`` with the tail of its log.

Facts this relies on (Debian 12, pebble 2.4.0; see /work/shared/real-parts.md):

* The Debian package ships no TLS certificate for pebble itself: a small CA and a
  ``localhost``/``127.0.0.1`` server certificate are generated here (``RunningPebble.ca_file`` is
  what an ACME client must trust for pebble's own HTTPS; pebble's *issuing* root is different and
  new at every start: ``roots_pem()``).
* Pebble ignores /etc/hosts, so ``pebble-challtestsrv`` answers every A query with 127.0.0.1
  (AAAA with nothing) and pebble is pointed at it with ``-dnsserver``.  Its own HTTP-01, HTTPS-01
  and TLS-ALPN-01 responders are disabled: the client under test answers HTTP-01 itself on
  ``http01_port`` (pebble's ``httpPort``).
* ``PEBBLE_VA_NOSLEEP=1`` removes pebble's random 0-15 s validation delay.
* By default pebble 2.4.0 rejects 5 % of nonces as ``badNonce``; that is left on so that clients are
  tested against it (pass ``env={"PEBBLE_WFE_NONCEREJECT": "0"}`` to turn it off).
* ``PEBBLE_AUTHZREUSE`` defaults to 0 here (pebble's own default is a random 50 %), so every order
  is validated afresh and tests are deterministic; pass ``authz_reuse=100`` to test reuse.
"""

from __future__ import annotations

from .ports import free_port, port_accepts  # noqa: F401 (free_port is part of this module's API)

import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"
BINARIES = ("pebble", "pebble-challtestsrv")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def missing_pebble_binaries() -> list[str]:
    """Names of pebble's programs that are not installed (install Debian's ``pebble`` package)."""
    return [name for name in BINARIES if shutil.which(name) is None]


def ensure_pebble_installed() -> list[str]:
    """``apt-get install pebble`` when it is missing and we are root; return what is still missing."""
    missing = missing_pebble_binaries()
    if not missing or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return missing
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "pebble"]
    if subprocess.run(argv, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(argv, env=env, capture_output=True, timeout=600)
    return missing_pebble_binaries()


# --------------------------------------------------------------------------- ports



# --------------------------------------------------------------------------- pebble's own TLS

def write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a localhost/127.0.0.1 server certificate for pebble's HTTPS: (ca, cert, key) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svcssl test CA for pebble's own TLS")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# --------------------------------------------------------------------------- the handle

@dataclass
class RunningPebble:
    workdir: Path
    directory_url: str  # https://127.0.0.1:PORT/dir
    ca_file: Path  # the CA of pebble's own HTTPS certificate (AcmeConfig.verify)
    management_url: str  # https://127.0.0.1:PORT (roots, intermediates, cert status)
    challtestsrv_management_url: str  # http://127.0.0.1:PORT (add TXT/CAA records, ...)
    http01_port: int  # where pebble connects for HTTP-01
    dns_port: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_files: dict[str, Path] = field(default_factory=dict)

    def _get(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.management_url + path, context=context, timeout=10) as response:
            return response.read()

    def roots_pem(self) -> bytes:
        """Pebble's issuing root (new at every start)."""
        return self._get("/roots/0")

    def intermediates_pem(self) -> bytes:
        """Pebble's issuing intermediate (new at every start)."""
        return self._get("/intermediates/0")

    def log_tail(self, name: str = "pebble", lines: int = 40) -> str:
        try:
            text = self.log_files[name].read_text(errors="replace")
        except (KeyError, OSError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def stop(self) -> None:
        """End both programs by PID (SIGTERM, then SIGKILL after a grace period) and reap them."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self.processes.clear()


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    handle = open(log, "ab")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    finally:
        handle.close()


def _directory_answers(url: str, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(url, context=context, timeout=1) as response:
            return "newOrder" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def start_pebble(workdir: Path, http01_port: int, *, tls_port: int | None = None, authz_reuse: int = 0,
                 eab_keys: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 validity_seconds: int | None = None) -> RunningPebble:
    """Start challtestsrv (DNS: everything is 127.0.0.1) and pebble validating HTTP-01 on ``http01_port``.

    ``eab_keys`` ({kid: base64url HMAC key}) makes pebble require External Account Binding.
    ``validity_seconds`` sets the lifetime of the certificates it issues (pebble's ``certificateValidityPeriod``;
    notBefore is the moment of issuance).
    """
    missing = missing_pebble_binaries()
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed (Debian package 'pebble')")
    workdir.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = write_tls_files(workdir / "tls")
    acme_port, mgmt_port, chall_mgmt_port = free_port(), free_port(), free_port()
    dns_port = free_port(udp_too=True)
    config = {
        "pebble": {
            "listenAddress": f"{HOST}:{acme_port}",
            "managementListenAddress": f"{HOST}:{mgmt_port}",
            "certificate": str(cert_file),
            "privateKey": str(key_file),
            "httpPort": http01_port,
            "tlsPort": tls_port if tls_port is not None else free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
        }
    }
    if eab_keys:
        config["pebble"]["externalAccountMACKeys"] = dict(eab_keys)
    if validity_seconds is not None:
        config["pebble"]["certificateValidityPeriod"] = validity_seconds
    config_file = workdir / "pebble-config.json"
    config_file.write_text(json.dumps(config, indent=2))

    run_env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": str(authz_reuse), **(env or {})}
    running = RunningPebble(
        workdir=workdir,
        directory_url=f"https://{HOST}:{acme_port}/dir",
        ca_file=ca_file,
        management_url=f"https://{HOST}:{mgmt_port}",
        challtestsrv_management_url=f"http://{HOST}:{chall_mgmt_port}",
        http01_port=http01_port,
        dns_port=dns_port,
    )
    try:
        running.log_files["pebble-challtestsrv"] = workdir / "challtestsrv.log"
        running.processes["pebble-challtestsrv"] = _spawn(
            ["pebble-challtestsrv", "-defaultIPv4", HOST, "-defaultIPv6", "", "-dns01", f"{HOST}:{dns_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"{HOST}:{chall_mgmt_port}"],
            running.log_files["pebble-challtestsrv"], run_env)
        running.log_files["pebble"] = workdir / "pebble.log"
        running.processes["pebble"] = _spawn(
            ["pebble", "-config", str(config_file), "-strict=false", "-dnsserver", f"{HOST}:{dns_port}"],
            running.log_files["pebble"], run_env)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for name, proc in running.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{running.log_tail(name)}")
            if port_accepts(chall_mgmt_port) and _directory_answers(running.directory_url, ca_file):
                break
            if time.monotonic() >= deadline:
                raise RuntimeError(f"pebble did not come up within {START_TIMEOUT:.0f} s:\n"
                                   f"{running.log_tail('pebble')}\n{running.log_tail('pebble-challtestsrv')}")
            time.sleep(0.05)
    except BaseException:
        running.stop()
        raise
    return running


# a dns-01 hook command (add|del NAME VALUE): publishes the TXT record in Pebble's challtestsrv
DNS_HOOK = '''import json, sys, urllib.request
action, name, value = sys.argv[1:4]
management = sys.argv[4]
path, body = ("/set-txt", {"host": name + ".", "value": value}) if action == "add" else ("/clear-txt", {"host": name + "."})
request = urllib.request.Request(management + path, data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(request, timeout=5).read()
open(sys.argv[5], "a").write(f"{action} {name}\\n")
'''
