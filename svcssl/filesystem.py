"""What a file system says when it cannot take a write, in one sentence a person can act on.

Full (ENOSPC, SQLite's FULL), over quota (EDQUOT), read-only (EROFS, SQLite's READONLY), an immutable
file (chattr +i) and I/O errors (EIO, SQLite's IOERR) become a ``FileSystemError`` naming the path, the
file system's mount point and what to do. ``require_room`` and ``require_writable`` check before a
write starts (the deploy preflight), so a refusal changes nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sqlite3
import struct
from pathlib import Path

from .errors import FileSystemError

FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, 64-bit
FS_IMMUTABLE_FL, FS_APPEND_FL = 0x10, 0x20
FULL_BELOW = 64 * 1024  # an I/O error on a file system with less free than this is taken for a full one


def existing_ancestor(path: Path | str) -> Path:
    """``path`` or its nearest existing parent (a target directory may not exist yet)."""
    here = Path(os.path.abspath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def _mount_points() -> list[Path]:
    """Every mount point of this process (bind mounts too, which os.path.ismount cannot see)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
            fields = [line.split(" ")[4] for line in handle if line.count(" ") >= 5]
    except OSError:
        return []
    return [Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)) for field in fields]


def mount_point(path: Path | str) -> Path:
    """The mount point of the file system holding ``path`` (the longest mount point above it)."""
    here = existing_ancestor(path).resolve()
    above = [point for point in _mount_points() if here == point or point in here.parents]
    if above:
        return max(above, key=lambda point: len(point.parts))
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def free_bytes(path: Path | str) -> int:
    """Bytes this process may still write on the file system holding ``path`` (root may use the reserve)."""
    st = os.statvfs(existing_ancestor(path))
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


def is_read_only(path: Path | str) -> bool:
    return bool(os.statvfs(existing_ancestor(path)).f_flag & os.ST_RDONLY)


def size_words(count: int) -> str:
    """0 bytes, 512 bytes, 12 KB, 3.4 MB, 2.1 GB (powers of 1024)."""
    if count < 1024:
        return f"{count} byte{'' if count == 1 else 's'}"
    for unit in ("KB", "MB", "GB", "TB"):
        count /= 1024
        if count < 1024 or unit == "TB":
            return f"{count:.1f} {unit}".replace(".0 ", " ")
    raise AssertionError("unreachable")  # pragma: no cover


def _holding(path: Path | str) -> str:
    mount = mount_point(path)
    return f"The file system holding {path}" + ("" if str(mount) == str(path) else f" (mounted on {mount})")


def full(path: Path | str, needed: int | None = None) -> FileSystemError:
    free = free_bytes(path)
    need = f", {size_words(needed)} needed" if needed is not None and needed > free else ""
    return FileSystemError(f"{_holding(path)} is full ({size_words(free)} free{need}). "
                           "Free some space and run the command again.", path=str(path), cause="full")


def over_quota(path: Path | str) -> FileSystemError:
    return FileSystemError(f"{_holding(path)} has no quota left for this user. Free some space or raise the "
                           "quota, and run the command again.", path=str(path), cause="quota")


def read_only(path: Path | str) -> FileSystemError:
    mount = mount_point(path)
    return FileSystemError(f"{_holding(path)} is read-only. Remount it read-write (mount -o remount,rw {mount}) "
                           "and run the command again.", path=str(path), cause="read-only")


def immutable(path: Path | str) -> FileSystemError:
    return FileSystemError(f"{path} is immutable (chattr +i), so svcssl cannot replace it. Remove the flag with "
                           f"`chattr -i {path}` and run the command again.", path=str(path), cause="immutable")


def io_failure(path: Path | str, detail: str) -> FileSystemError:
    return FileSystemError(f"{_holding(path)} reported an I/O error ({detail}). Check the disk (dmesg, smartctl) "
                           "and run the command again.", path=str(path), cause="io")


def _full_or_io(path: Path | str, detail: str) -> FileSystemError:
    try:
        if free_bytes(path) < FULL_BELOW:
            return full(path)
        if is_read_only(path):
            return read_only(path)
    except OSError:
        pass
    return io_failure(path, detail)


def from_os_error(exc: OSError, path: Path | str | None = None) -> FileSystemError | None:
    """The sentence for an OSError a file system raised, or None when it is not one of those."""
    where = path if path is not None else exc.filename
    if where is None:
        return None
    if exc.errno == errno.ENOSPC:
        return full(where)
    if exc.errno == errno.EDQUOT:
        return over_quota(where)
    if exc.errno == errno.EROFS:
        return read_only(where)
    if exc.errno == errno.EIO:
        return _full_or_io(where, exc.strerror or "EIO")
    if exc.errno == errno.EPERM and has_immutable_flag(where):
        return immutable(where)
    return None


def from_sqlite_error(exc: sqlite3.Error, database: Path | str) -> FileSystemError | None:
    """The sentence for SQLite's FULL, READONLY and IOERR errors on ``database``, or None."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        return full(Path(database).parent)
    if name.startswith("SQLITE_READONLY"):
        return read_only(Path(database).parent) if is_read_only(Path(database).parent) else None
    if name.startswith("SQLITE_IOERR"):
        return _full_or_io(Path(database).parent, f"SQLite: {exc}, {name}")
    if name == "SQLITE_CANTOPEN":
        parent = Path(database).parent
        if is_read_only(parent):
            return read_only(parent)
        if free_bytes(parent) < FULL_BELOW:
            return full(parent)
    return None


def has_immutable_flag(path: Path | str) -> bool:
    """True when ``path`` carries the immutable or append-only attribute (false where attributes are unknown)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))


def require_writable(path: Path | str) -> None:
    """Refuse (FileSystemError) when ``path`` cannot be replaced: its file system is read-only, or the file or
    its directory is immutable."""
    target = Path(path)
    if is_read_only(target):
        raise read_only(target)
    for candidate in (target, target.parent):
        if candidate.exists() and has_immutable_flag(candidate):
            raise immutable(candidate)


def require_room(needs: dict[Path, int], margin: int) -> None:
    """Refuse (FileSystemError) when a file system holding one of ``needs``' paths has less free than the
    bytes asked for there (summed per file system) plus ``margin``."""
    per_device: dict[int, tuple[Path, int]] = {}
    for path, count in needs.items():
        device = os.stat(existing_ancestor(path)).st_dev
        first, total = per_device.get(device, (path, 0))
        per_device[device] = (first, total + count)
    for path, count in per_device.values():
        if free_bytes(path) < count + margin:
            raise full(path, count + margin)


def write_problem(directory: Path | str, margin: int) -> FileSystemError | None:
    """Why nothing can be written in ``directory`` now (read-only, or less than ``margin`` free), or None."""
    try:
        if is_read_only(directory):
            return read_only(directory)
        if free_bytes(directory) < margin:
            return full(directory)
    except OSError as exc:
        return from_os_error(exc, directory)
    return None
