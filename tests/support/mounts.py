"""Small real file systems for fault tests: a tmpfs or a loop-mounted ext4 of a few MB under tmp_path, filled
with a file; a read-only bind mount. They need root; without it (or without mount) the test skips locally and
fails under CI=true. Every mount is undone in the fixture's teardown, even when the test failed."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from support.config import skip_or_fail


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise OSError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def require_mounting() -> None:
    if os.geteuid() != 0:
        skip_or_fail("mounting a small file system needs root (the test command runs as root)")
    missing = [name for name in ("mount", "umount", "mkfs.ext4", "chattr") if shutil.which(name) is None]
    if missing:
        skip_or_fail(f"missing {', '.join(missing)}: run `bash scripts/install.sh --test`")


def mounted(point: Path) -> bool:
    """Whether something is mounted on ``point`` (a bind mount of the same file system too, which
    os.path.ismount cannot see)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return any(line.split(" ")[4] == str(point) for line in handle)


def unmount(point: Path) -> None:
    while mounted(point):
        if subprocess.run(["umount", str(point)], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=60)
            break


@contextmanager
def tmpfs(point: Path, size: str = "8m") -> Iterator[Path]:
    require_mounting()
    point.mkdir(parents=True, exist_ok=True)
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point))
    except OSError as exc:
        skip_or_fail(str(exc))
    try:
        yield point
    finally:
        unmount(point)


@contextmanager
def ext4(point: Path, image: Path, megabytes: int = 8) -> Iterator[Path]:
    """A loop-mounted ext4 (supports chattr +i, unlike tmpfs on every kernel)."""
    require_mounting()
    point.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as handle:
        handle.truncate(megabytes * 1024 * 1024)
    try:
        _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        _run("mount", "-o", "loop", str(image), str(point))
    except OSError as exc:
        skip_or_fail(str(exc))
    try:
        yield point
    finally:
        unmount(point)


@contextmanager
def read_only_bind(source: Path, point: Path) -> Iterator[Path]:
    """``source`` seen read-only at ``point``."""
    require_mounting()
    point.mkdir(parents=True, exist_ok=True)
    try:
        _run("mount", "--bind", str(source), str(point))
        _run("mount", "-o", "remount,bind,ro", str(point))
    except OSError as exc:
        unmount(point)
        skip_or_fail(str(exc))
    try:
        yield point
    finally:
        unmount(point)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write a file until the file system is full (ENOSPC); return it. Removing it frees the space."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1024 * 1024, 64 * 1024, 4096, 512, 1):
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
