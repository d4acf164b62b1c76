"""What the panel's process needs from the system: file descriptors, its listening socket, re-exec.

*Restart the panel* re-executes the same program, never code from the working directory: the
interpreter gets `-P` (no working directory or script directory in front of sys.path), and if
the running `svcssl` package would not be found that way it is pinned by absolute path. The
listening socket is passed on to the new process (SVCSSL_LISTEN_FD), so that clients who connect
during the restart wait in the backlog instead of being refused.
"""

from __future__ import annotations

import importlib.machinery
import logging
import os
import resource
import socket
import stat
import sys
from pathlib import Path

log = logging.getLogger(__name__)

LISTEN_FD = "SVCSSL_LISTEN_FD"
RESERVED_FDS = 256  # for files, the database, probes and the thread pool


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def connection_budget(fd_limit: int) -> int:
    """How many client connections to hold at most under this file-descriptor limit."""
    return max(64, fd_limit - RESERVED_FDS)


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket passed on by the process this one replaced (same address), else a new one."""
    inherited = _inherited_socket(host, port)
    if inherited is not None:
        return inherited
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _inherited_socket(host: str, port: int) -> socket.socket | None:
    text = os.environ.pop(LISTEN_FD, "")
    if not text.isdigit():
        return None
    fd = int(text)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        bound = sock.getsockname()
    except OSError:
        listening, bound = 0, None
    wanted = {ai[4][:2] for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    if not listening or sock.type != socket.SOCK_STREAM or bound is None or tuple(bound[:2]) not in wanted:
        sock.detach()  # not ours: leave the descriptor alone
        return None
    os.set_inheritable(fd, False)
    return sock


def restart_command() -> tuple[list[str], dict[str, str]]:
    """argv and the environment changes that run this same program again, whatever the working directory."""
    argv = [sys.executable, "-P", *sys.orig_argv[1:]]
    changes: dict[str, str] = {}
    root = _package_root()
    if not _found_without_working_directory(root):
        # started from a checkout that is not installed: pin that checkout by absolute path
        changes["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")]))
    return argv, changes


def _package_root() -> Path:
    import svcssl

    return Path(svcssl.__file__).resolve().parent.parent


def _found_without_working_directory(root: Path) -> bool:
    """Would `import svcssl` under `-P` find the package this process runs?"""
    entries = [entry for entry in sys.path[0 if sys.flags.safe_path else 1:] if entry]
    spec = importlib.machinery.PathFinder.find_spec("svcssl", entries)
    if spec is None:
        for finder in sys.meta_path:
            if finder is importlib.machinery.PathFinder or not hasattr(finder, "find_spec"):
                continue
            try:
                spec = finder.find_spec("svcssl", None)
            except Exception:  # noqa: BLE001 - a third-party finder: treat as not found
                spec = None
            if spec is not None:
                break
    if spec is None or not spec.origin:
        return False
    return Path(spec.origin).resolve().parent.parent == root


def reexec(sock: socket.socket) -> None:
    """Replace this process by a fresh start of the same program, keeping the listening socket."""
    argv, changes = restart_command()
    changes[LISTEN_FD] = str(sock.fileno())
    os.set_inheritable(sock.fileno(), True)
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    finally:  # only if exec failed: leave the environment as it was
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.set_inheritable(sock.fileno(), False)
