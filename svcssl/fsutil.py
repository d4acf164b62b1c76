"""File-system primitives: staged atomic writes, file snapshots, locks, bounded reads."""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, InputTooLargeError, LockTimeoutError


@dataclass(frozen=True)
class FileSnapshot:
    """What a file was: its bytes, mode and owner, or that it did not exist."""

    path: Path
    exists: bool
    data: bytes = b""
    mode: int = 0
    uid: int = -1
    gid: int = -1


def snapshot(path: Path) -> FileSnapshot:
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return FileSnapshot(path=path, exists=False)
    return FileSnapshot(path=path, exists=True, data=data, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)


def resolve_owner(owner: str | None, group: str | None) -> tuple[int, int]:
    """Numeric uid/gid for names; -1 leaves that part unchanged."""
    uid = gid = -1
    if owner:
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise LookupError(f"no such user '{owner}' on this system") from None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"no such group '{group}' on this system") from None
    return uid, gid


def stage_file(target: Path, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> Path:
    """Write ``data`` to a temp file beside ``target`` with its final mode and owner; return its path.

    The file never exists with wider permissions than ``mode``: it is created 0600
    by mkstemp, chowned, then chmodded.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".svcssl-new")
    try:
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_staged(staged: Path, target: Path) -> None:
    os.replace(staged, target)
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes, mode: int = 0o600, uid: int = -1, gid: int = -1) -> None:
    commit_staged(stage_file(target, data, mode, uid, gid), target)


def restore(snap: FileSnapshot) -> None:
    """Put a file back as the snapshot saw it (or remove it if it did not exist)."""
    if snap.exists:
        uid = snap.uid if os.geteuid() == 0 else -1
        gid = snap.gid if os.geteuid() == 0 else -1
        atomic_write(snap.path, snap.data, snap.mode, uid, gid)
    else:
        try:
            os.unlink(snap.path)
        except FileNotFoundError:
            pass


@contextmanager
def file_lock(path: Path, timeout: float = 120.0) -> Iterator[None]:
    """An exclusive flock on ``path``, shared by every process using the same state directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(f"another svcssl process holds {path.name}; try again shortly") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def read_bounded(path: str | os.PathLike[str], limit: int, field: str | None = None, what: str = "certificate input") -> bytes:
    """Read a user-named input file: a regular file of at most ``limit`` bytes, else a clear InputError."""
    try:
        return read_regular(path, limit)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise InputTooLargeError(f"{os.fspath(path)} is larger than the {limit:,}-byte limit for {what}",
                                     field=field) from None
        raise InputError(f"cannot read {os.fspath(path)}: {exc.strerror}", field=field) from None


def read_regular(path: str | bytes | os.PathLike, limit: int, *, follow: bool = True, dir_fd: int | None = None,
                 check: Callable[[os.stat_result], str | None] | None = None) -> bytes:
    """Read a regular file of at most ``limit`` bytes; raise OSError (with a strerror a person reads) otherwise.

    Never blocks on a FIFO or device (O_NONBLOCK, then fstat). With ``follow=False`` a symbolic
    link is refused (O_NOFOLLOW), and what is read is the file that was checked: use it, with
    ``dir_fd``, for files in directories other users can write to. ``check`` sees the open file's
    stat and may refuse it by returning the reason.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise OSError(errno.ELOOP, "a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "a directory, not a file" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes")
        refused = check(st) if check else None
        if refused:
            raise OSError(errno.EPERM, refused)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def stat_signature(*paths: str | bytes | os.PathLike) -> tuple | None:
    """What changes whenever one of the files changes (device, inode, size, mtime, ctime), or None if one is missing.

    Every install swaps files with os.replace (a new inode), so an unchanged signature means unchanged bytes.
    """
    signature = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        signature.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(signature)


class StatCache:
    """Values computed from files, kept while the files' stat signature is unchanged: an unchanged file costs
    one stat instead of a read and a parse. Bounded; thread-safe."""

    def __init__(self, size: int = 256):
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict = {}

    def get(self, key, paths: tuple, load: Callable[[], object]):
        """The cached value for ``key`` if ``paths`` are unchanged since it was loaded, else ``load()``
        (kept only when the files did not change while it ran)."""
        signature = stat_signature(*paths)
        if signature is not None:
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None and entry[0] == signature:
                return entry[1]
        value = load()
        if signature is not None and signature == stat_signature(*paths):
            with self._lock:
                if len(self._entries) >= self._size:
                    self._entries.clear()
                self._entries[key] = (signature, value)
        return value
