"""Benchmark: the service page with 5 CA-signed services, trust judged (issue 24) against not judged.

Run by hand (not collected by pytest):

    .venv/bin/python bench/trust.py [--requests 300]

Five file-only services hold certificates from a private CA (root → intermediate → leaf, chain on disk; the
root in [trust] ca_file, the system store on as well: 144+ anchors). The page is requested through Flask's
test client as root, in-process:

  * baseline: path validation replaced by "not judged" (the page as it was before trust paths);
  * trust:    the page as shipped (anchors parsed once, stat-keyed; findings reused within the minute);
  * cold:     every request judges every certificate again (the findings cache emptied before each one),
              which bounds the cost when nothing is cached.

Prints requests per second and the ratios (time per page, trust / baseline). Target: trust <= 1.10.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from svcssl.app import create_app  # noqa: E402
from svcssl.operations import inventory, trust  # noqa: E402
from svcssl.operations.context import open_context  # noqa: E402
from svcssl.operations.users import create_user  # noqa: E402
from svcssl.settings import load_settings  # noqa: E402

PAGE = "/scripts2/manageservicecrts"
PASSWORD = "bench-password-1"
HOST = "mail.example.com"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
NOW = datetime.now(timezone.utc)


def _ca(cn, key, issuer=None):
    issuer_cert, issuer_key = issuer or (None, key)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def _leaf(key, issuer, issuer_key):
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=80))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def _pem(*certs) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def build(directory: Path, services: int = 5) -> Path:
    root_key, int_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256R1())
    root = _ca("Bench Root", root_key)
    intermediate = _ca("Bench Intermediate", int_key, (root, root_key))
    (directory / "anchors.pem").write_bytes(_pem(root))
    lines = ["[server]", f'hostname = "{HOST}"', f'state_dir = "{directory / "state"}"', "",
             "[trust]", f'ca_file = "{directory / "anchors.pem"}"', ""]
    for i in range(services):
        name = f"svc{i}"
        etc = directory / "etc" / name
        etc.mkdir(parents=True)
        key = ec.generate_private_key(ec.SECP256R1())
        (etc / "cert.pem").write_bytes(_pem(_leaf(key, intermediate, int_key), intermediate))
        (etc / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
        (etc / "key.pem").chmod(0o600)
        lines += [f"[services.{name}]", 'kind = "generic"', f'cert_file = "{etc / "cert.pem"}"',
                  f'key_file = "{etc / "key.pem"}"', ""]
    config = directory / "svcssl.toml"
    config.write_text("\n".join(lines))
    ctx = open_context(load_settings(config))
    create_user(ctx, "root", "root", PASSWORD, actor="bench")
    ctx.store.close()
    return config


def client_for(config: Path):
    app = create_app(load_settings(config), live_check_ttl=3600)
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = "https://localhost/"
    token = CSRF.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"username": "root", "password": PASSWORD, "csrf_token": token}).status_code == 302
    return client


def measure(client, requests: int, before=None) -> float:
    for _ in range(10):
        assert client.get(PAGE).status_code == 200
    start = time.perf_counter()
    for _ in range(requests):
        if before:
            before()
        client.get(PAGE)
    return (time.perf_counter() - start) / requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp))
        client = client_for(config)
        page = client.get(PAGE).text
        assert page.count("not trusted") == 0, "the bench's certificates should be trusted"
        real = inventory.judge_trust
        results = {}
        for _round in range(3):  # interleaved rounds: the best of each
            inventory.judge_trust = lambda *a, **k: trust.TrustFinding(trust.UNCHECKED)
            base = measure(client, args.requests)
            inventory.judge_trust = real
            on = measure(client, args.requests)
            cold = measure(client, args.requests, before=trust._FINDINGS.clear)
            for name, value in (("baseline", base), ("trust", on), ("cold", cold)):
                results[name] = min(results.get(name, value), value)
    base = results["baseline"]
    print(f"service page, 5 CA-signed services ({args.requests} requests, best of 3):")
    for name in ("baseline", "trust", "cold"):
        print(f"  {name:9s} {1 / results[name]:8.1f} pages/s  {results[name] * 1000:6.2f} ms/page  "
              f"ratio {results[name] / base:.3f}")
    print(f"trust on / off: {results['trust'] / base:.3f} (target <= 1.10); uncached: {results['cold'] / base:.3f}")


if __name__ == "__main__":
    main()
