"""Benchmark: Autofill through the index vs a naive scan that loads every key file.

Run by hand (not collected by pytest):

    .venv/bin/python bench/autofill.py --accounts 10000
    .venv/bin/python bench/autofill.py --accounts 500 --keep /tmp/tree   # keep the tree to look at

It makes N hosting accounts under a throw-away home root, each with 5 certificates and their keys in
cPanel's layout (<home>/<user>/ssl/certs/*.crt, ssl/keys/*.key; ECDSA P-256 keys, which are quick
to make, issued by one intermediate kept in a [cabundles] directory), then measures

  * the cold index build (every file read and parsed) and the warm refresh (nothing changed: a stat
    per file, no read, no parse), each the median of a few runs for the warm one;
  * Autofill by certificate (svcssl.operations.autofill.autofill_certificate, as root) for random
    certificates: the key by its SPKI hash from the index, then that one file read and checked, and
    the CA bundle built: p50 and p99;
  * the same answer found naively: walk every account, load every key file (without the slow RSA
    check, the fastest a naive scan can be), compare public keys, then build the bundle the same way.

Targets at 10,000 accounts (50,000 certificates and keys): autofill p50 <= 10 ms, >= 100x faster
than the naive scan, warm refresh <= 2 s. The last line is:

    autofill p50=… ms p99=… ms naive=… ms speedup=…x refresh=… s
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svcssl.operations.autofill import autofill_certificate  # noqa: E402
from svcssl.operations.browse import refresh_index  # noqa: E402
from svcssl.operations.context import open_context  # noqa: E402
from svcssl.settings import build_settings  # noqa: E402
from svcssl.x509.inspect import spki_der  # noqa: E402
from svcssl.x509.parse import read_certificate_input, read_private_key  # noqa: E402

PER_ACCOUNT = 5
NOW = datetime.now(timezone.utc)
PEM = serialization.Encoding.PEM


def make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(1).not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Bench Issuing CA")])
    intermediate = (x509.CertificateBuilder().subject_name(name).issuer_name(root_name)
                    .public_key(key.public_key()).serial_number(2).not_valid_before(NOW - timedelta(days=1))
                    .not_valid_after(NOW + timedelta(days=3650))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                   critical=False)
                    .sign(root_key, hashes.SHA256()))
    return intermediate, key, root


def make_tree(home: Path, accounts: int, ca: x509.Certificate, ca_key) -> list[bytes]:
    """N accounts × 5 certificates and keys; returns every certificate's PEM (the queries are drawn from them)."""
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    certificates = []
    started = time.perf_counter()
    for number in range(accounts):
        user = f"user{number:05d}"
        certs, keys = home / user / "ssl" / "certs", home / user / "ssl" / "keys"
        certs.mkdir(parents=True)
        keys.mkdir()
        for site in range(PER_ACCOUNT):
            domain = f"site{site}.{user}.example"
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
                    .issuer_name(ca.subject).public_key(key.public_key())
                    .serial_number(x509.random_serial_number()).not_valid_before(NOW - timedelta(days=1))
                    .not_valid_after(NOW + timedelta(days=90))
                    .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain), x509.DNSName("www." + domain)]),
                                   critical=False)
                    .add_extension(aki, critical=False)
                    .sign(ca_key, hashes.SHA256()))
            pem = cert.public_bytes(PEM)
            stem = domain.replace(".", "_")
            (certs / f"{stem}.crt").write_bytes(pem)
            (keys / f"{stem}.key").write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                                                  serialization.NoEncryption()))
            certificates.append(pem)
        if number and number % 1000 == 0:
            print(f"  … {number:,} accounts ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return certificates


def naive_autofill(home: Path, ca_dir: Path, pem: bytes) -> tuple[Path | None, list[x509.Certificate]]:
    """What Autofill would cost without the index: load every key file, then read the CA directory."""
    leaf = read_certificate_input(pem).certificates[0]
    want = spki_der(leaf.public_key())
    found = None
    for user in sorted(os.listdir(home)):
        directory = home / user / "ssl" / "keys"
        for name in sorted(os.listdir(directory)):
            key = read_private_key((directory / name).read_bytes(), validate=False)
            if found is None and spki_der(key.public_key()) == want:
                found = directory / name
    chain = []
    for name in sorted(os.listdir(ca_dir)):
        for cert in read_certificate_input((ca_dir / name).read_bytes()).certificates:
            if cert.subject == leaf.issuer:
                leaf.verify_directly_issued_by(cert)
                chain.append(cert)
    return found, chain


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300, help="autofill calls measured through the index")
    parser.add_argument("--naive-runs", type=int, default=3, help="naive scans measured (each loads every key)")
    parser.add_argument("--keep", metavar="DIR", help="build the tree in DIR and keep it")
    args = parser.parse_args()

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="svcssl-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    home, ca_dir, state = base / "home", base / "ca", base / "state"
    try:
        print(f"Making {args.accounts:,} accounts × {PER_ACCOUNT} certificates and keys under {home} …", file=sys.stderr)
        ca, ca_key, _ = make_ca()
        ca_dir.mkdir()
        (ca_dir / "bench-issuing-ca.pem").write_bytes(ca.public_bytes(PEM))
        made = time.perf_counter()
        certificates = make_tree(home, args.accounts, ca, ca_key)
        print(f"  made {len(certificates):,} certificates and keys in {time.perf_counter() - made:.1f} s",
              file=sys.stderr)
        settings = build_settings({
            "server": {"hostname": "bench.example", "state_dir": str(state)},
            "accounts": {"home_root": str(home)},
            "apache": {"config_file": str(base / "no-apache.conf")},
            "cabundles": {"dirs": [str(ca_dir)]},
            "services": {},
        }, base_dir=base)
        ctx = open_context(settings)

        started = time.perf_counter()
        cold = refresh_index(ctx)
        cold_seconds = time.perf_counter() - started
        warm_runs = []
        for _ in range(3):
            started = time.perf_counter()
            warm = refresh_index(ctx)
            warm_runs.append(time.perf_counter() - started)
        warm_seconds = statistics.median(warm_runs)
        assert warm.parsed == 0, warm
        print(f"cold index build: {cold_seconds:.2f} s ({cold.files:,} files, {cold.parsed:,} parsed)")
        print(f"warm refresh:     {warm_seconds:.3f} s ({warm.unchanged:,} unchanged, {warm.parsed} parsed; "
              f"runs {', '.join(f'{r:.3f}' for r in warm_runs)} s)")

        rng = random.Random(5)
        queries = [rng.choice(certificates) for _ in range(args.queries)]
        autofill_certificate(ctx, None, queries[0])  # warm the caches a server would have warm
        times = []
        for pem in queries:
            started = time.perf_counter()
            choice = autofill_certificate(ctx, None, pem)
            times.append((time.perf_counter() - started) * 1000)
            assert choice.key is not None and len(choice.chain) == 1 and not choice.missing, choice.missing
        p50, p99 = percentile(times, 0.50), percentile(times, 0.99)
        print(f"autofill (index): p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(times)} calls")

        naive_times = []
        for pem in queries[:args.naive_runs]:
            started = time.perf_counter()
            found, chain = naive_autofill(home, ca_dir, pem)
            naive_times.append((time.perf_counter() - started) * 1000)
            assert found is not None and len(chain) == 1
        naive = statistics.median(naive_times)
        print(f"autofill (naive scan of {len(certificates):,} key files): median {naive:.0f} ms over "
              f"{len(naive_times)} calls")
        ctx.store.close()
        print(f"autofill p50={p50:.2f} ms p99={p99:.2f} ms naive={naive:.0f} ms speedup={naive / p50:.0f}x "
              f"refresh={warm_seconds:.2f} s")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
