"""Debian's own Dovecot, Exim and pure-ftpd, set up the README's way and started by their init scripts.

The README's "Pointing svcssl at Debian's Dovecot, Exim and pure-ftpd", proven: TLS switched on
in /etc (MAIN_TLS_ENABLE for Exim, conf/TLS for pure-ftpd; Dovecot's 10-ssl.conf already reads
/etc/dovecot/private/), svcssl's first run writes the files, `/etc/init.d/* start` brings the
daemons up on 143, 25 and 21, and `config.example.toml` with only the hostname and the state
directory changed drives them (and `svcssl serve` on 2087 for the panel's own service): two
certificates in turn, a rollback, a reset, `svcssl check`. After each step every port is probed
by this test itself and must serve what svcssl reports.

It changes the machine, so: it holds a lock (one run at a time), refuses to start when anything
already listens on those ports or a pidfile names a live daemon, stops only the daemons it
started (each by its init script, which stops by the pidfile in /run — never by name, so the
Dovecot, Exim and pure-ftpd instances other tests run on loopback ports are untouched), and puts
back every file it or svcssl changed under /etc/dovecot, /etc/exim4, /etc/pure-ftpd,
/etc/ssl/private, /var/lib/exim4 and /var/lib/svcssl: bytes, modes and owners, checked.
Under CI=true it runs (root there); elsewhere it skips unless root.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import pki
from support.config import REPO_ROOT, require_binaries, skip_or_fail, private_ca_anchors_pem

HOSTNAME = "mail.example.com"
TOUCHED = [Path(p) for p in ("/etc/dovecot", "/etc/exim4", "/etc/pure-ftpd", "/etc/ssl/private", "/var/lib/exim4",
                             "/var/lib/svcssl")]
PORTS = {"dovecot": 143, "exim": 25, "ftp": 21, "cpanel": 2087}
PIDFILES = {"dovecot": Path("/run/dovecot/master.pid"), "exim4": Path("/run/exim4/exim.pid"),
            "pure-ftpd": Path("/run/pure-ftpd/pure-ftpd.pid")}
INIT = {"dovecot": "/etc/init.d/dovecot", "exim4": "/etc/init.d/exim4", "pure-ftpd": "/etc/init.d/pure-ftpd"}
LOCK = Path("/run/lock/svcssl-test-debian-daemons.lock")
SERVICES = ("cpanel", "dovecot", "exim", "ftp")


# --- what the test changes, and putting it back -------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # "dir", "file", "link"
    data: bytes | str | None
    mode: int
    uid: int
    gid: int


def snapshot(roots: list[Path]) -> dict[str, Entry | None]:
    state: dict[str, Entry | None] = {}
    for root in roots:
        if not root.exists() and not root.is_symlink():
            state[str(root)] = None
            continue
        for path in [root, *sorted(root.rglob("*"))]:
            st = path.lstat()
            if path.is_symlink():
                entry = Entry("link", os.readlink(path), 0, st.st_uid, st.st_gid)
            elif path.is_dir():
                entry = Entry("dir", None, st.st_mode & 0o7777, st.st_uid, st.st_gid)
            else:
                entry = Entry("file", path.read_bytes(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
            state[str(path)] = entry
    return state


def restore(saved: dict[str, Entry | None], roots: list[Path]) -> None:
    """Remove what was added, write back what changed (bytes, mode, owner); parents before children."""
    for root in roots:
        if saved.get(str(root)) is None:
            if root.is_dir() and not root.is_symlink():
                shutil.rmtree(root)
            elif root.exists() or root.is_symlink():
                root.unlink()
            continue
        for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if str(path) not in saved:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
    for name, entry in saved.items():
        if entry is None:
            continue
        path = Path(name)
        if entry.kind == "dir":
            path.mkdir(exist_ok=True)
        elif entry.kind == "link":
            if not path.is_symlink() or os.readlink(path) != entry.data:
                if path.exists() or path.is_symlink():
                    path.unlink()
                os.symlink(entry.data, path)
        elif not path.is_file() or path.is_symlink() or path.read_bytes() != entry.data:
            if path.is_symlink():
                path.unlink()
            path.write_bytes(entry.data)
        os.lchown(path, entry.uid, entry.gid)
        if entry.kind != "link":
            os.chmod(path, entry.mode)


# --- running things -----------------------------------------------------------------------------


class Runner:
    """Commands with their output in files: a daemon started underneath must not hold a pipe open."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.count = 0

    def __call__(self, argv: list[str], *, check: bool = True, timeout: float = 180) -> tuple[int, str]:
        self.count += 1
        out_path, err_path = (self.directory / f"cmd-{self.count}.{ext}" for ext in ("out", "err"))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            code = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  timeout=timeout, cwd=self.directory).returncode
        text, errors = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
        assert "Traceback" not in errors, errors
        if check:
            assert code == 0, f"{' '.join(argv)} exited {code}:\n{text}\n{errors}"
        return code, text


def port_listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --- an independent probe: what does each port serve? ---------------------------------------------


class Dialogue:
    def __init__(self, sock: socket.socket):
        self.sock = sock

    def line(self) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise OSError(f"connection closed after {data!r}")
            data += chunk
        return data

    def reply(self, code: bytes) -> bytes:
        """An SMTP/FTP reply: lines `CODE-…` until `CODE …`."""
        while True:
            line = self.line()
            if line[:3] != code:
                raise OSError(f"expected {code!r}, got {line!r}")
            if line[3:4] == b" ":
                return line


def served_fingerprint(service: str) -> str:
    port = PORTS[service]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        talk = Dialogue(sock)
        if service == "dovecot":
            assert talk.line().startswith(b"* OK")
            sock.sendall(b"a1 STARTTLS\r\n")
            while not (line := talk.line()).startswith(b"a1 "):
                pass
            assert line.startswith(b"a1 OK"), line
        elif service == "exim":
            talk.reply(b"220")
            sock.sendall(b"EHLO probe.example.com\r\n")
            talk.reply(b"250")
            sock.sendall(b"STARTTLS\r\n")
            talk.reply(b"220")
        elif service == "ftp":
            talk.reply(b"220")
            sock.sendall(b"AUTH TLS\r\n")
            talk.reply(b"234")
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(sock) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
    finally:
        sock.close()


def probe_with_retries(service: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return served_fingerprint(service)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- the fixture: Debian's daemons, the README's way ---------------------------------------------


@dataclass
class Debian:
    run: Runner
    config: Path
    svcssl: list[str]
    work: Path

    def cli(self, *args: str, check: bool = True) -> tuple[int, str]:
        return self.run([*self.svcssl, "--config", str(self.config), *args], check=check)

    def installed(self) -> dict[str, str]:
        _, out = self.cli("list", "--json", "--no-probe")
        return {s["service"]: s["fingerprint"] for s in json.loads(out)}

    def assert_every_port_serves_what_svcssl_says(self) -> dict[str, str]:
        installed = self.installed()
        served = {service: probe_with_retries(service) for service in SERVICES}
        assert served == installed
        code, out = self.cli("check", "--json", check=False)
        checks = json.loads(out)
        assert code == 0, out
        assert {c["service"]: (c["state"], c["served_fingerprint"]) for c in checks} == {
            s: ("match", fp) for s, fp in installed.items()}
        return installed


def exim_macros_file() -> Path:
    conf = Path("/etc/exim4/update-exim4.conf.conf").read_text()
    split = re.search(r"^dc_use_split_config='?true'?", conf, re.M) is not None
    return Path("/etc/exim4/conf.d/main/000_localmacros") if split else Path("/etc/exim4/exim4.conf.localmacros")


@pytest.fixture
def debian(tmp_path):
    if os.geteuid() != 0:
        skip_or_fail("needs root: it starts Debian's daemons with their init scripts and changes /etc")
    require_binaries("dovecot", "doveadm", "doveconf", "exim4", "update-exim4.conf", "pure-ftpd",
                     "pure-ftpd-wrapper", "start-stop-daemon",
                     install="apt-get install dovecot-imapd dovecot-pop3d exim4-daemon-light pure-ftpd")
    for script in INIT.values():
        assert os.access(script, os.X_OK), f"{script} is missing"

    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "w")
    deadline = time.monotonic() + 600
    while True:  # another run of this test (another checkout) holds the machine's standard ports
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.monotonic() < deadline, "another run of the Debian daemons test held the lock for 10 minutes"
            time.sleep(1)

    busy = [f"{name} ({port})" for name, port in PORTS.items() if port_listens(port)]
    running = [f"{name} (pid {pid_alive(p)}, {p})" for name, p in PIDFILES.items() if pid_alive(p)]
    if busy or running:
        lock.close()
        pytest.fail(f"ports in use: {', '.join(busy) or 'none'}; daemons already running: {', '.join(running) or 'none'}"
                    " — this test starts Debian's own daemons and will not touch ones it did not start")

    saved = snapshot(TOUCHED)
    run = Runner(tmp_path)
    started: list[str] = []
    panel: subprocess.Popen | None = None
    try:
        # the README's set-up: TLS on for Exim and pure-ftpd (Dovecot's 10-ssl.conf already reads the files)
        macros = exim_macros_file()
        existing = macros.read_text() if macros.exists() else ""
        macros.write_text(existing + ("" if existing.endswith("\n") or not existing else "\n") + "MAIN_TLS_ENABLE = yes\n")
        run(["update-exim4.conf"])
        Path("/etc/pure-ftpd/conf/TLS").write_text("1\n")

        # config.example.toml with only the hostname and the state directory changed
        example = (REPO_ROOT / "config.example.toml").read_text()
        config_text = re.sub(r'(?m)^hostname = ".*"$', f'hostname = "{HOSTNAME}"', example, count=1)
        config_text = re.sub(r'(?m)^state_dir = ".*"$', f'state_dir = "{tmp_path / "state"}"', config_text, count=1)
        # …and the tests' private CA as a trust anchor (clients of these tests trust it; svcssl must be told)
        anchors = tmp_path / "test-anchors.pem"
        anchors.write_bytes(private_ca_anchors_pem())
        config_text = re.sub(r'(?ms)^(\[trust\].*?^)ca_file = ""$', lambda m: f'{m.group(1)}ca_file = "{anchors}"',
                             config_text, count=1)
        changed = [(a, b) for a, b in zip(example.splitlines(), config_text.splitlines()) if a != b]
        assert len(changed) == 3, changed
        config = tmp_path / "config.toml"
        config.write_text(config_text)

        svcssl = [sys.executable, "-m", "svcssl.cli"]
        deb = Debian(run, config, svcssl, tmp_path)
        # svcssl's first run writes every file before the daemons start (/etc/dovecot/private/ starts empty)
        deb.cli("list", "--no-probe")
        for name in ("dovecot", "exim4", "pure-ftpd"):
            started.append(name)
            run([INIT[name], "start"])
        for service in ("dovecot", "exim", "ftp"):
            wait_for(lambda: port_listens(PORTS[service]), 30, f"{service} on port {PORTS[service]}")
        with open(tmp_path / "serve.log", "wb") as log:
            panel = subprocess.Popen([*svcssl, "--config", str(config), "serve"], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=tmp_path)
        wait_for(lambda: port_listens(PORTS["cpanel"]) or panel.poll() is not None, 30, "svcssl serve on 2087")
        assert panel.poll() is None, (tmp_path / "serve.log").read_text()
        yield deb
    finally:
        problems = []
        if panel is not None and panel.poll() is None:
            panel.send_signal(signal.SIGTERM)
            try:
                panel.wait(timeout=20)
            except subprocess.TimeoutExpired:
                panel.kill()
                panel.wait(timeout=5)
        for name in reversed(started):  # each by its init script: by the pidfile, never by process name
            code, out = run([INIT[name], "stop"], check=False, timeout=120)
            if code != 0:
                problems.append(f"{INIT[name]} stop: {out}")
        for name in started:
            try:
                wait_for(lambda: pid_alive(PIDFILES[name]) is None, 30, f"{name} to stop")
            except AssertionError as exc:
                problems.append(str(exc))
        restore(saved, TOUCHED)
        after = snapshot(TOUCHED)
        lock.close()
        assert not problems, problems
        differ = sorted(k for k in set(saved) | set(after) if saved.get(k) != after.get(k))
        assert not differ, f"not restored: {differ}"


def write_bundle(directory: Path, name: str, crt, key, chain) -> tuple[Path, Path, Path]:
    paths = (directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}-chain.pem")
    paths[0].write_bytes(pki.pem(crt))
    paths[1].write_bytes(pki.key_pem(key))
    paths[2].write_bytes(pki.pem(chain))
    return paths


def test_debian_daemons_serve_what_svcssl_installs_rolls_back_and_resets(debian):
    started = time.monotonic()
    first_run = debian.assert_every_port_serves_what_svcssl_says()  # the first run's self-signed certificates

    ca = pki.pki(7)
    crt_a, key_a = ca.leaf([HOSTNAME, "imap.example.com", "smtp.example.com"], key=pki.rsa_key(71))
    crt_b, key_b = ca.leaf([HOSTNAME], key=pki.ec_key(72))
    bundles = {"a": write_bundle(debian.work, "a", crt_a, key_a, ca.intermediate),
               "b": write_bundle(debian.work, "b", crt_b, key_b, ca.intermediate)}
    fingerprints = {"a": hashlib.sha256(pki.der(crt_a)).hexdigest(), "b": hashlib.sha256(pki.der(crt_b)).hexdigest()}

    for name in ("a", "b"):  # two certificates in turn, on every service
        crt, key, chain = bundles[name]
        debian.cli("install", *SERVICES, "--cert", str(crt), "--key", str(key), "--cabundle", str(chain))
        assert debian.assert_every_port_serves_what_svcssl_says() == {s: fingerprints[name] for s in SERVICES}

    # the files where Debian's daemons read them, with the owners and modes they need
    exim_key = Path("/etc/exim4/exim.key").stat()
    assert (exim_key.st_mode & 0o777, exim_key.st_uid, exim_key.st_gid) == (0o640, 0, _gid("Debian-exim"))
    assert Path("/etc/dovecot/private/dovecot.key").stat().st_mode & 0o777 == 0o600
    assert Path("/etc/ssl/private/pure-ftpd.pem").stat().st_mode & 0o777 == 0o600
    assert pki.pem(crt_b) + pki.pem(ca.intermediate) == Path("/etc/dovecot/private/dovecot.pem").read_bytes()
    debian.run(["doveconf", "-n"])

    for service in SERVICES:
        debian.cli("rollback", service)
    assert debian.assert_every_port_serves_what_svcssl_says() == {s: fingerprints["a"] for s in SERVICES}

    debian.cli("reset", *SERVICES)
    reset = debian.assert_every_port_serves_what_svcssl_says()
    assert not set(reset.values()) & (set(fingerprints.values()) | set(first_run.values()))

    code, out = debian.cli("check")
    assert code == 0 and out.count("match") == len(SERVICES), out
    print(f"Debian daemons: two installs, a rollback and a reset in {time.monotonic() - started:.1f} s")


def _gid(group: str) -> int:
    import grp

    return grp.getgrnam(group).gr_gid
