"""`svcssl serve` from any installed command (a wheel's venv, pipx, the checkout) as a child process.

Used by the packaging and fleet tests. It waits until the panel answers /login over HTTPS and is
stopped by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Sequence

import requests

from support.config import write_config
from servers.ports import free_port
from support.process import terminate

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def panel_config(directory: Path, *, hostname: str = "mail.example.com") -> Path:
    """A config with the four WHM services writing under ``directory``/etc (file-only, no reload)."""
    etc = directory / "etc"
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(directory / "svcssl.toml", hostname=hostname, state_dir=directory / "state", services={
        "cpanel": {"kind": "panel", "cert_file": str(etc / "panel/cert.pem"), "key_file": str(etc / "panel/key.pem"),
                   "chain_file": str(etc / "panel/chain.pem")},
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"), "key_file": str(etc / "dovecot/key.pem")},
        "exim": {"kind": "exim", "cert_file": str(etc / "exim/exim.crt"), "key_file": str(etc / "exim/exim.key"),
                 "key_mode": "0640"},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
    })


def https_session() -> requests.Session:
    """A session for the panel's self-signed certificate (REQUESTS_CA_BUNDLE must not override verify)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = False
    return session


class ServedPanel:
    def __init__(self, command: Sequence[str], config: Path, log: Path, *, cwd: Path, env: dict | None = None):
        self.command = list(command)
        self.config = config
        self.log = log
        self.cwd = cwd
        self.env = env
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 30.0) -> "ServedPanel":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*self.command, "--config", str(self.config), "serve", "--listen", f"127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.cwd,
                env={**(self.env if self.env is not None else os.environ), "PYTHONUNBUFFERED": "1"})
        session = https_session()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"svcssl serve exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if session.get(self.url + "/login", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"svcssl serve did not answer /login within {timeout} s:\n{self.output()}")

    def login(self, user: str, password: str) -> requests.Session:
        session = https_session()
        session.headers["Referer"] = self.url + "/"  # Flask-WTF checks it over HTTPS, as a browser sends it
        page = session.get(self.url + "/login", timeout=10)
        assert page.status_code == 200, page.text
        match = CSRF.search(page.text)
        assert match, "no CSRF token on the login page"
        done = session.post(self.url + "/login", data={"username": user, "password": password,
                                                      "csrf_token": match.group(1)}, allow_redirects=False, timeout=10)
        assert done.status_code == 302, (done.status_code, done.text[:500])
        return session

    def stop(self) -> None:
        terminate(self.proc)
