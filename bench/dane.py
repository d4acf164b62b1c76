"""Benchmark: what DANE adds. Matching TLSA records against a certificate and chain (pure), against parsing the
certificate (the baseline every surface pays), and a validated TLSA lookup through a real Unbound (DO+AD, warm
cache) against a plain A lookup through the same resolver.

Run by hand: .venv/bin/python bench/dane.py — prints ratios (not collected by pytest). Needs nsd, unbound and
ldnsutils (scripts/install.sh --test).
"""

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from servers.dnssec import start_dnssec  # noqa: E402
from support import pki  # noqa: E402
from svcssl.dane import TlsaRecord, lookup_tlsa, make_dane_resolver, matches_certificate, record_for_key  # noqa: E402
from svcssl.dnscheck import make_resolver  # noqa: E402

N = 2000
LOOKUPS = 200


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    leaf, key = pki.pki(1).leaf(["mail.example.test"])
    chain = (pki.pki(1).intermediate,)
    der = leaf.public_bytes(Encoding.DER)
    records = [TlsaRecord(u, s, m, "00" * 32) for u in (2, 3) for s in (0, 1) for m in (1, 2)]
    records.append(record_for_key(leaf.public_key()))
    parse = timed(lambda: x509.load_der_x509_certificate(der), N)
    match = timed(lambda: [matches_certificate(r, leaf, chain) for r in records], N)
    print(f"parse one certificate:                  {parse * 1e6:8.1f} µs")
    print(f"match {len(records)} TLSA records (leaf+chain):   {match * 1e6:8.1f} µs")
    print(f"ratio (matching / parsing):             {match / parse:8.2f}x")

    work = Path(tempfile.mkdtemp(prefix="svcssl-bench-dane-"))
    dnssec = start_dnssec(work, "example.test", {"mail": [("A", "127.0.0.1")],
                                                 "_25._tcp.mail": [("TLSA", records[-1].text)]}, ttl=300)
    try:
        validating = make_dane_resolver([dnssec.resolver])
        plain = make_resolver([dnssec.resolver])
        assert lookup_tlsa("mail.example.test", validating).validated
        tlsa = timed(lambda: lookup_tlsa("mail.example.test", validating), LOOKUPS)
        a = timed(lambda: plain.resolve("mail.example.test.", "A", search=False), LOOKUPS)
        print(f"validated TLSA lookup (Unbound, warm):  {tlsa * 1e3:8.3f} ms")
        print(f"plain A lookup (same resolver, warm):   {a * 1e3:8.3f} ms")
        print(f"ratio (TLSA with DO+AD / A):            {tlsa / a:8.2f}x")
    finally:
        dnssec.stop()


if __name__ == "__main__":
    main()
