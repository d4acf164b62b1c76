"""`svcssl serve` as a child process on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from servers.ports import free_port

REPO = Path(__file__).resolve().parent.parent.parent
PANEL_URL = re.compile(r"svcssl panel: https://")


def terminate(proc: subprocess.Popen | None) -> bool:
    """SIGTERM, then SIGKILL after 15 s: whether the process (if still running) obeyed SIGTERM."""
    if proc is None or proc.poll() is not None:
        return True
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
        return True
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        return False


class PanelProcess:
    """`svcssl serve` as a child process; its stdout and stderr go to a log file."""

    def __init__(self, config: Path, log: Path):
        self.config = config
        self.log = log
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PanelProcess":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "svcssl.cli", "--config", str(self.config), "serve",
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.wait_until_serving(starts=1)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self, starts: int, timeout: float = 20.0) -> None:
        """Until the URL line was printed `starts` times and a TLS handshake succeeds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"svcssl serve exited ({self.proc.returncode}):\n{self.output()}"
            if len(PANEL_URL.findall(self.output())) >= starts:
                try:
                    self.served_certificate()
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"svcssl serve did not come up within {timeout} s:\n{self.output()}")

    def served_certificate(self) -> bytes:
        """The DER certificate a new TLS connection to the panel gets."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            with context.wrap_socket(raw) as tls:
                return tls.getpeercert(binary_form=True)

    def served_fingerprint(self) -> str:
        return hashlib.sha256(self.served_certificate()).hexdigest()

    def stop(self) -> None:
        if not terminate(self.proc):
            raise AssertionError(f"svcssl serve ignored SIGTERM:\n{self.output()}")
