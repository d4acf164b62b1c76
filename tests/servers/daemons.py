"""Start the real Dovecot, Exim and pure-ftpd on 127.0.0.1 for tests, and stop them by PID.

Each ``start_*`` writes a config under ``workdir``, starts the daemon on free high ports, waits
until its ports accept connections (about 10 s at most) and returns a :class:`RunningDaemon`
with the probe address, the reload and config-test argvs to give svcssl, and ``stop()``.
A daemon that does not come up raises ``RuntimeError`` with the tail of its logs.

Facts this relies on (measured on Debian 12; see /work/shared/real-parts.md):

* Dovecot 2.3 daemonises; ``doveadm -c CONF reload`` applies new certificate files at once.
* Exim 4.96 with ``-C`` gives up root and runs as ``Debian-exim``: the key is made
  ``root:Debian-exim 0640``, the certificate group-readable, spool/log/pid directories are owned by
  ``Debian-exim``, and every directory above them gets ``o+x`` (search only, no listing) so that
  user can reach them -- pytest's ``/tmp/pytest-of-root`` is 0700.  A HUP re-executes the daemon
  (same PID); for a moment the port is closed, so probe with retries afterwards.
* pure-ftpd reads its certificate once at start and SIGHUP kills it, so its ``reload`` argv runs a
  small restart script written into ``workdir`` (stop by PID, start again, wait for the port; exit 1
  if it does not come back -- a key that does not match makes it exit silently, logging only to a
  syslog that does not exist here).
* PID 1 on these machines does not reap orphans: a daemon that exited stays as a zombie.  A PID
  counts as running only while ``/proc/PID`` is not a zombie and its executable is the daemon's own
  binary, so a stale pid file whose PID was reused never gets an unrelated process killed.

Daemons are started in their own session (``start_new_session``) with stdio on a file, so they
keep no pipe of the caller (svcssl's runner reads the reload command's output up to EOF).
"""

from __future__ import annotations

from .ports import free_port, port_accepts  # noqa: F401 (free_port is part of this module's API)

import json
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
EXIM_USER = "Debian-exim"
_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --------------------------------------------------------------------------- binaries and ports

def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + _SBIN_PATH)


def _exim_binary() -> str | None:
    return _which("exim4") or _which("exim")


def missing_daemon_binaries() -> list[str]:
    """Names of the daemon programs this module needs that are not installed."""
    missing = [name for name in ("dovecot", "doveadm", "doveconf") if _which(name) is None]
    if _exim_binary() is None:
        missing.append("exim4")
    if _which("pure-ftpd") is None:
        missing.append("pure-ftpd")
    return missing


def _require(name: str) -> str:
    path = _exim_binary() if name == "exim4" else _which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed on this machine")
    return path




# --------------------------------------------------------------------------- processes by PID

def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (PID 1 here does not reap orphans)."""
    info = _proc_stat(pid)
    if info is None or info[0] in ("Z", "X"):
        try:  # reap it if it happens to be our own child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def _exe(pid: int) -> str | None:
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc_stat(int(entry))
            if info is not None and info[0] not in ("Z", "X"):
                children.setdefault(info[1], []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _terminate_tree(pid: int, grace: float = STOP_GRACE) -> None:
    """SIGTERM ``pid`` and everything it forked; SIGKILL what is left after ``grace`` seconds.

    The children get the signal too: a Dovecot master otherwise waits for login processes that
    wait (up to 5 s) for an auth or stats process that has already gone.
    """
    family = set(_descendants(pid))
    _signal([pid, *family], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _running(pid):
        new = set(_descendants(pid)) - family
        family |= new
        if time.monotonic() >= deadline:
            _signal([pid, *family], signal.SIGKILL)
            _wait_gone([pid], 2.0)
            break
        _signal(new, signal.SIGTERM)
        time.sleep(0.02)
    left = _wait_gone(sorted(family), 1.0)
    _signal(left, signal.SIGKILL)
    _wait_gone(left, 2.0)


# --------------------------------------------------------------------------- the handle

@dataclass
class RunningDaemon:
    name: str  # "dovecot" | "exim" | "pure-ftpd"
    workdir: Path
    port: int  # the STARTTLS port: IMAP (dovecot), SMTP (exim), FTP (pure-ftpd)
    probe: str  # e.g. "imap-starttls://127.0.0.1:PORT"
    reload: list[str]  # argv that makes the daemon use the current certificate files
    config_test: list[str]  # argv that checks the config ([] for pure-ftpd: it has none)
    pid_file: Path
    executable: str  # realpath of the daemon binary; a PID with another exe is not ours
    log_files: list[Path] = field(default_factory=list)
    pop3_port: int | None = None  # dovecot only
    cleanup_dirs: list[Path] = field(default_factory=list)  # removed by stop() (short dovecot base_dir)

    @property
    def pop3_probe(self) -> str | None:
        return None if self.pop3_port is None else f"pop3-starttls://{HOST}:{self.pop3_port}"

    def pid(self) -> int | None:
        """The daemon's (master) PID from its pid file, if that process runs and is this daemon."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid <= 1 or not _running(pid) or _exe(pid) != self.executable:
            return None
        return pid

    def stop(self) -> None:
        """Stop the daemon by PID (and whatever it forked) and wait until gone; idempotent."""
        pid = self.pid()
        if pid is not None:
            _terminate_tree(pid)
        for directory in self.cleanup_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in [self.workdir / "start.out", *self.log_files]:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                parts.append(f"--- {path}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) or "(no log output)"


def _pipe_closed(fd: int) -> bool:
    """True once every holder of the pipe's write end (the daemon and its forks) has exited."""
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable) and os.read(fd, 1) == b""


def _start(daemon: RunningDaemon, argv: list[str], ports: list[int], *, death_pipe: bool = False,
           hint: str = "") -> RunningDaemon:
    """Run the daemonising ``argv``; wait until every port accepts and the pid file names it.

    With ``death_pipe`` the daemon inherits the write end of a pipe (pure-ftpd keeps it open),
    so a daemon that dies during start-up is noticed at once instead of after the timeout.
    """
    out = daemon.workdir / "start.out"
    read_fd, write_fd = os.pipe() if death_pipe else (-1, -1)
    try:
        try:
            with open(out, "ab") as sink:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                      cwd=daemon.workdir, start_new_session=True, timeout=START_TIMEOUT,
                                      check=False, pass_fds=(write_fd,) if death_pipe else ())
            problem = f"`{' '.join(argv)}` exited {proc.returncode}" if proc.returncode != 0 else ""
        except subprocess.TimeoutExpired:
            problem = f"`{' '.join(argv)}` did not return within {START_TIMEOUT:g} s"
        if death_pipe:
            os.close(write_fd)
        deadline = time.monotonic() + START_TIMEOUT
        while not problem:
            if daemon.pid() is not None and all(port_accepts(p) for p in ports):
                return daemon
            if death_pipe and _pipe_closed(read_fd):
                problem = f"{daemon.name} exited during start-up{hint}"
            elif time.monotonic() >= deadline:
                problem = (f"{daemon.name} did not listen on {', '.join(f'{HOST}:{p}' for p in ports)} "
                           f"within {START_TIMEOUT:g} s{hint}")
            else:
                time.sleep(0.02)
    finally:
        if death_pipe:
            os.close(read_fd)
    tail = daemon.log_tail()
    daemon.stop()
    raise RuntimeError(f"{problem}\n{tail}")


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------- Dovecot

def start_dovecot(workdir: Path, cert_file: Path, key_file: Path) -> RunningDaemon:
    """Dovecot with IMAP (``port``) and POP3 (``pop3_port``), STARTTLS on both, in its own base_dir."""
    dovecot, doveadm, doveconf = _require("dovecot"), _require("doveadm"), _require("doveconf")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    imap_port, pop3_port = free_port(), free_port()
    cleanup: list[Path] = []
    base_dir = workdir / "run"
    # base_dir holds unix sockets (sun_path: 108 bytes); a deep pytest tmp_path may be too long.
    if len(str(base_dir)) > 70:
        base_dir = Path(tempfile.mkdtemp(prefix="svcssl-dovecot-", dir="/tmp"))
        os.chmod(base_dir, 0o755)  # what Dovecot wants (it warns and fixes it otherwise)
        cleanup.append(base_dir)
    base_dir.mkdir(exist_ok=True)
    (workdir / "state").mkdir(exist_ok=True)
    dh = Path("/usr/share/dovecot/dh.pem")
    conf = _write(workdir / "dovecot.conf", f"""\
# svcssl test instance (Dovecot 2.3 syntax)
base_dir = {base_dir}
state_dir = {workdir / 'state'}
instance_name = svcssl-test-{imap_port}
log_path = {workdir / 'dovecot.log'}
info_log_path = {workdir / 'dovecot.log'}
listen = {HOST}
protocols = imap pop3
ssl = yes
ssl_cert = <{Path(cert_file).absolute()}
ssl_key = <{Path(key_file).absolute()}
{f'ssl_dh = <{dh}' if dh.exists() else ''}
auth_mechanisms = plain
# no stats-writer connections: they make a stop right after a connection wait ~5 s
stats_writer_socket_path =
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password=test
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={workdir / 'home'}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {HOST}
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
    daemon = RunningDaemon(
        name="dovecot", workdir=workdir, port=imap_port, probe=f"imap-starttls://{HOST}:{imap_port}",
        reload=[doveadm, "-c", str(conf), "reload"], config_test=[doveconf, "-c", str(conf), "-n"],
        pid_file=base_dir / "master.pid", executable=os.path.realpath(dovecot),
        log_files=[workdir / "dovecot.log"], pop3_port=pop3_port, cleanup_dirs=cleanup,
    )
    return _start(daemon, [dovecot, "-c", str(conf)], [imap_port, pop3_port])


# --------------------------------------------------------------------------- Exim

def _let_user_reach(path: Path, uid: int, gid: int) -> None:
    """Give ``o+x`` (search, not read) to every directory above ``path`` that uid/gid cannot pass."""
    for directory in [path, *path.parents] if path.is_dir() else list(path.parents):
        st = directory.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == uid and mode & stat.S_IXUSR:
            continue
        if st.st_gid == gid and mode & stat.S_IXGRP:
            continue
        if not mode & stat.S_IXOTH:
            os.chmod(directory, mode | stat.S_IXOTH)


def start_exim(workdir: Path, cert_file: Path, key_file: Path) -> RunningDaemon:
    """Exim accepting SMTP on ``port`` and advertising STARTTLS; it relays nothing (no RCPT ACL)."""
    exim = _require("exim4")
    workdir = Path(workdir).absolute()
    cert_file, key_file = Path(cert_file).absolute(), Path(key_file).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwnam(EXIM_USER)
    uid, gid = user.pw_uid, user.pw_gid
    port = free_port()
    for name in ("spool", "log", "run"):
        (workdir / name).mkdir(exist_ok=True)
        os.chown(workdir / name, uid, gid)
        os.chmod(workdir / name, 0o750)
    for path in (workdir / "spool", cert_file, key_file):
        _let_user_reach(path, uid, gid)
    os.chown(key_file, 0, gid)
    os.chmod(key_file, 0o640)
    if not stat.S_IMODE(cert_file.stat().st_mode) & stat.S_IROTH:
        os.chown(cert_file, -1, gid)
        os.chmod(cert_file, stat.S_IMODE(cert_file.stat().st_mode) | stat.S_IRGRP)
    conf = _write(workdir / "exim.conf", f"""\
# svcssl test instance (Exim 4.96); no routers: every RCPT is refused (no acl_smtp_rcpt)
keep_environment =
primary_hostname = svcssl-test.invalid
qualify_domain = svcssl-test.invalid
daemon_smtp_ports = {port}
local_interfaces = {HOST}
spool_directory = {workdir / 'spool'}
log_file_path = {workdir / 'log'}/%slog
pid_file_path = {workdir / 'run' / 'exim.pid'}
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = {cert_file}
tls_privatekey = {key_file}
""")
    pid_file = workdir / "run" / "exim.pid"
    daemon = RunningDaemon(
        name="exim", workdir=workdir, port=port, probe=f"smtp-starttls://{HOST}:{port}",
        reload=[sys.executable, "-c",
                f"import os,signal;os.kill(int(open({str(pid_file)!r}).read()),signal.SIGHUP)"],
        config_test=[exim, "-bV", "-C", str(conf)],
        pid_file=pid_file, executable=os.path.realpath(exim),
        log_files=[workdir / "log" / "mainlog", workdir / "log" / "paniclog"],
    )
    return _start(daemon, [exim, "-C", str(conf), "-bd"], [port])


# --------------------------------------------------------------------------- pure-ftpd

_RESTART_SCRIPT = r'''#!/usr/bin/env python3
"""Restart this test's pure-ftpd (it reads its certificate only at start; HUP kills it).

Stops the daemon by the PID in its pid file, starts it again with the same argv and waits until
the port answers with a 220 greeting.  Exits 1 if it does not within TIMEOUT seconds: a key that
does not match the certificate makes pure-ftpd exit silently (it logs only to syslog).
"""
import json, os, select, signal, socket, subprocess, sys, time

CONFIG = json.loads(%(config)r)
TIMEOUT = CONFIG["timeout"]


def running(pid):
    try:
        with open("/proc/%%d/stat" %% pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2:].split()[0] not in ("Z", "X")


def ours(pid):
    try:
        return running(pid) and os.path.realpath(os.readlink("/proc/%%d/exe" %% pid)) == CONFIG["exe"]
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not running(pid)


def stop():
    try:
        with open(CONFIG["pid_file"]) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid > 1 and ours(pid):
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, TIMEOUT):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 2.0)


def greets():
    try:
        with socket.create_connection((CONFIG["host"], CONFIG["port"]), timeout=1.0) as sock:
            return sock.makefile("rb").readline(512).startswith(b"220")
    except OSError:
        return False


def main():
    stop()
    # pure-ftpd keeps this pipe's write end open: EOF on the read end means it has exited.
    read_fd, write_fd = os.pipe()
    proc = subprocess.run(CONFIG["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True, timeout=TIMEOUT,
                          pass_fds=(write_fd,))
    os.close(write_fd)
    if proc.returncode != 0:
        print("pure-ftpd exited %%d at start" %% proc.returncode, file=sys.stderr)
        return 1
    where = "%%s:%%d" %% (CONFIG["host"], CONFIG["port"])
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if greets():
            print("pure-ftpd restarted, listening on " + where)
            return 0
        if select.select([read_fd], [], [], 0)[0] and os.read(read_fd, 1) == b"":
            print("pure-ftpd exited during start-up and does not listen on %%s (it logs only to syslog; "
                  "does the key match the certificate?)" %% where, file=sys.stderr)
            return 1
        time.sleep(0.02)
    print("pure-ftpd did not come back listening on %%s within %%g s (a key that does not match "
          "the certificate makes it exit silently)" %% (where, TIMEOUT), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def start_pure_ftpd(workdir: Path, combined_file: Path) -> RunningDaemon:
    """pure-ftpd on ``port`` with optional TLS (AUTH TLS); ``reload`` restarts it."""
    binary = _require("pure-ftpd")
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    pid_file = workdir / "pure-ftpd.pid"
    low = 40000 + (port % 20) * 1000  # passive range: bound only on PASV/EPSV, which tests do not use
    argv = [binary, "-S", f"{HOST},{port}", "-Y", "1", "-2", str(Path(combined_file).absolute()), "-E",
            "-l", "unix", "-p", f"{low}:{low + 999}", "-g", str(pid_file), "-B"]
    executable = os.path.realpath(binary)
    config = json.dumps({"argv": argv, "pid_file": str(pid_file), "exe": executable, "host": HOST,
                         "port": port, "timeout": START_TIMEOUT})
    script = _write(workdir / "restart-pure-ftpd.py", _RESTART_SCRIPT % {"config": config}, 0o755)
    daemon = RunningDaemon(
        name="pure-ftpd", workdir=workdir, port=port, probe=f"ftp-auth-tls://{HOST}:{port}",
        reload=[sys.executable, str(script)], config_test=[],
        pid_file=pid_file, executable=executable,
    )
    return _start(daemon, argv, [port], death_pipe=True,
                  hint=" (pure-ftpd logs only to syslog; a key that does not match the certificate "
                       "makes it exit silently)")
