"""Benchmark: matching a stored key without re-validating it vs. the full RSA validation.

Run by hand: .venv/bin/python bench/keys.py — prints the ratio (not collected by pytest).
"""

import time

from cryptography.hazmat.primitives.asymmetric import rsa

from svcssl.x509.encode import key_pem
from svcssl.x509.parse import read_private_key

N = 20


def timed(fn) -> float:
    start = time.perf_counter()
    for _ in range(N):
        fn()
    return (time.perf_counter() - start) / N


def main() -> None:
    pem = key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    full = timed(lambda: read_private_key(pem, validate=True))
    fast = timed(lambda: read_private_key(pem, validate=False))
    print(f"RSA-2048 load with validation:    {full * 1e3:8.3f} ms")
    print(f"RSA-2048 load without validation: {fast * 1e3:8.3f} ms")
    print(f"ratio (validated / stored-key path): {full / fast:.0f}x")


if __name__ == "__main__":
    main()
