"""Opening a PKCS#12 file in a child process with a CPU-time limit.

pbe.py counts every key derivation it can see before anything is decrypted; a shrouded key bag
inside an encrypted part (EncryptedData) is not visible until that part is decrypted, and its own
count can be anything. So OpenSSL opens the file in a short-lived child process that limits its own
CPU time (RLIMIT_CPU): whatever is hidden inside, the work of one upload is bounded. The child
hands back the key (unencrypted PKCS#8 DER) and the certificates (DER) over a pipe, never a file.
"""

from __future__ import annotations

import json
import subprocess
import sys

CPU_SECONDS = 2  # of CPU for the child (its start, ~0.2 s, included); RLIMIT_CPU counts whole seconds
WALL_SECONDS = 20  # a child that waits for a CPU on a busy machine still ends

_CHILD = r"""
import base64, json, resource, sys, warnings
resource.setrlimit(resource.RLIMIT_CPU, (%d, %d))
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, pkcs12
data = sys.stdin.buffer.read()
request = json.loads(data[: data.index(b"\n")])
der = data[data.index(b"\n") + 1:]
for attempt in request["attempts"]:
    password = None if attempt is None else base64.b64decode(attempt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key, cert, extra = pkcs12.load_key_and_certificates(der, password)
        break
    except ValueError:
        continue
    except UnsupportedAlgorithm as exc:
        print(json.dumps({"unsupported": str(exc)}))
        sys.exit(0)
    except Exception as exc:
        print(json.dumps({"malformed": f"{type(exc).__name__}: {exc}"}))
        sys.exit(0)
else:
    print(json.dumps({"wrong_password": True}))
    sys.exit(0)
out = {"key": None, "cert": None, "extra": []}
if key is not None:
    out["key"] = base64.b64encode(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())).decode()
if cert is not None:
    out["cert"] = base64.b64encode(cert.public_bytes(Encoding.DER)).decode()
out["extra"] = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in extra]
print(json.dumps(out))
""" % (CPU_SECONDS, CPU_SECONDS + 1)


class TooCostly(Exception):
    """The child ran out of CPU time (or wall time)."""


def open_pkcs12(data: bytes, attempts: list[bytes | None]) -> dict:
    """The child's answer: {"key", "cert", "extra"} (base64 DER), or one of "wrong_password",
    "unsupported", "malformed". Raises TooCostly when the limit ended it."""
    import base64

    request = json.dumps({"attempts": [None if a is None else base64.b64encode(a).decode() for a in attempts]})
    try:
        result = subprocess.run([sys.executable, "-I", "-c", _CHILD], input=request.encode() + b"\n" + data,
                                capture_output=True, timeout=WALL_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise TooCostly() from None
    if result.returncode < 0 or not result.stdout.strip():
        raise TooCostly()
    return json.loads(result.stdout)
