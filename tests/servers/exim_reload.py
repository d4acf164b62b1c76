"""A reload for the test Exim that does not depend on a HUP coming back: wait for Exim's own reload.

Exim 4.96 notices changed certificate files by itself (about 5 s after the swap; measured on these machines,
see /work/shared/real-parts.md). A HUP makes it re-execute itself; started with ``-C`` (a config not in
TRUSTED_CONFIG_LIST) it has already given up root, and under load the re-executed daemon was seen not to come back
("lost privilege for using -C"), and a stop-and-start under load was seen to exit 0 without the daemon ever
listening. So the DANE tests' reload signals nothing at first: it waits (up to ``WAIT`` s) until the port serves
the leaf now in the certificate file. Only if it does not, it sends one HUP and waits again for the port to listen
and serve it. Exit 0 when served, 1 otherwise (svcssl then rolls back, as for any failed reload). Every step goes
to ``reload.out`` beside Exim's logs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .daemons import HOST, RunningDaemon

WAIT = 12.0

_SCRIPT = r'''#!/usr/bin/env python3
import hashlib, json, os, signal, socket, ssl, sys, time

CONFIG = json.loads(%(config)r)
LOG = open(CONFIG["log"], "a")


def say(text):
    LOG.write("%%s %%s\n" %% (time.strftime("%%H:%%M:%%S"), text))
    LOG.flush()


def wanted():
    data = open(CONFIG["cert_file"], "rb").read()
    body = data.split(b"-----BEGIN CERTIFICATE-----", 1)[1].split(b"-----END CERTIFICATE-----", 1)[0]
    import base64
    return hashlib.sha256(base64.b64decode(b"".join(body.split()))).hexdigest()


def served():
    try:
        with socket.create_connection((CONFIG["host"], CONFIG["port"]), timeout=3) as sock:
            reader = sock.makefile("rb")
            if not reader.readline().startswith(b"220"):
                return None
            sock.sendall(b"EHLO reload\r\n")
            while True:
                line = reader.readline()
                if not line or line[3:4] == b" ":
                    break
            sock.sendall(b"STARTTLS\r\n")
            if not reader.readline().startswith(b"220"):
                return None
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with context.wrap_socket(sock) as tls:
                return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    except (OSError, ssl.SSLError):
        return None


def wait(target, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served() == target:
            return True
        time.sleep(0.25)
    return False


def main():
    target = wanted()
    say("waiting for %%s" %% target[:16])
    if wait(target, CONFIG["wait"]):
        say("served (Exim reloaded by itself)")
        return 0
    try:
        pid = int(open(CONFIG["pid_file"]).read().split()[0])
        os.kill(pid, signal.SIGHUP)
        say("not served after %%g s: sent HUP to %%d" %% (CONFIG["wait"], pid))
    except (OSError, ValueError, IndexError) as exc:
        say("cannot HUP: %%s" %% exc)
    if wait(target, CONFIG["wait"]):
        say("served after the HUP")
        return 0
    say("not served")
    print("exim does not serve the new certificate on %%s:%%d" %% (CONFIG["host"], CONFIG["port"]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def settle_reload(daemon: RunningDaemon, cert_file: Path) -> list[str]:
    """The argv of a reload that waits until ``daemon`` (a test Exim from ``start_exim``) serves ``cert_file``."""
    config = json.dumps({"cert_file": str(Path(cert_file).absolute()), "pid_file": str(daemon.pid_file),
                         "host": HOST, "port": daemon.port, "wait": WAIT,
                         "log": str(daemon.workdir / "log" / "reload.out")})
    script = Path(daemon.workdir) / "reload-exim.py"
    script.write_text(_SCRIPT % {"config": config})
    script.chmod(0o755)
    return [sys.executable, str(script)]
