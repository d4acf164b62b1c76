"""Hosting accounts' SSL storage, cPanel's layout: ``<home_root>/<user>/ssl/certs/*.crt`` and ``ssl/keys/*.key``.

svcssl runs as root and these directories belong to the accounts' users, who can plant symbolic
links in them (to ``/etc/shadow``, to another account's key). Nothing here follows a link below
``home_root``: each directory and file is opened relative to its parent's descriptor with
``O_NOFOLLOW``, so the file read is the file that was checked. A link is reported, not followed.
A hard link to a file the user could not read (root's key) looks like a regular file: a file is
read only when it has one link and belongs to the account's user, the owner of its home directory.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..fsutil import read_regular
from .index import Candidate, Stamp

ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
STORAGE_DIRS = {"certs": b".crt", "keys": b".key"}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def valid_account_name(name: str) -> bool:
    return bool(ACCOUNT_NAME.match(name))


@dataclass(frozen=True)
class AccountScan:
    """One account's SSL storage as it is now: its files (with stamps), or why it cannot be read."""

    account: str
    has_storage: bool
    problem: str | None
    files: tuple[Candidate, ...]


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a symbolic link or not a directory (not followed)"
    return exc.strerror or str(exc)


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def storage_path(home_root: Path, account: str, sub: str, name: bytes = b"") -> bytes:
    path = os.fsencode(home_root) + b"/" + os.fsencode(account) + b"/ssl/" + sub.encode()
    return path + b"/" + name if name else path


def storage_file_problem(st: os.stat_result, account_uid: int) -> str | None:
    """Why a file in an account's storage must not be read, or None: only the user's own, singly linked files."""
    if st.st_nlink != 1:
        return f"has {st.st_nlink} hard links: a file with more than one link in an account's SSL storage is not read"
    if st.st_uid != account_uid:
        return (f"belongs to uid {st.st_uid}, not to the account's user (uid {account_uid}): "
                "files of other users in an account's SSL storage are not read")
    return None


def read_storage_file(home_root: Path, account: str, sub: str, name: bytes, limit: int) -> bytes:
    """Read ``<home_root>/<account>/ssl/<sub>/<name>`` without following any link below home_root.

    Only a regular file with one link, owned by the owner of ``<home_root>/<account>``, is read.
    """
    if not valid_account_name(account) or sub not in STORAGE_DIRS or b"/" in name or name in (b"", b".", b".."):
        raise OSError(errno.EINVAL, "not a file of an account's SSL storage")
    fds: list[int] = []
    try:
        fds.append(os.open(home_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        for part in (account, "ssl", sub):
            try:
                fds.append(_open_dir(part, fds[-1]))
            except OSError as exc:
                raise OSError(exc.errno, _reason(exc)) from None
        account_uid = os.fstat(fds[1]).st_uid
        return read_regular(name, limit, follow=False, dir_fd=fds[-1],
                            check=lambda st: storage_file_problem(st, account_uid))
    finally:
        for fd in fds:
            os.close(fd)


def account_exists(home_root: Path, account: str) -> bool:
    """True when ``<home_root>/<account>`` is a directory (not a link to one)."""
    if not valid_account_name(account):
        return False
    try:
        return stat.S_ISDIR(os.lstat(os.path.join(home_root, account)).st_mode)
    except OSError:
        return False


def _scan_dir(home_root: Path, account: str, sub: str, fd: int, limit: int, account_uid: int) -> list[Candidate]:
    suffix = STORAGE_DIRS[sub]
    files = []
    with os.scandir(fd) as entries:
        for entry in entries:
            name = os.fsencode(entry.name)
            if not name.lower().endswith(suffix) or name.startswith(b"."):
                continue
            path = storage_path(home_root, account, sub, name)

            def read(name=name) -> bytes:
                return read_storage_file(home_root, account, sub, name, limit)

            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                files.append(Candidate(path, "account", account, None, read, f"cannot read: {exc.strerror}"))
                continue
            problem = None
            if stat.S_ISLNK(st.st_mode):
                problem = "a symbolic link: links in an account's SSL storage are not followed"
            elif not stat.S_ISREG(st.st_mode):
                problem = "not a regular file"
            elif st.st_size > limit:
                problem = f"larger than {limit:,} bytes"
            else:
                problem = storage_file_problem(st, account_uid)
            files.append(Candidate(path, "account", account, Stamp.of(st), read, problem))
    return files


def scan_account(home_root: Path, account: str, limit: int, home_fd: int | None = None) -> AccountScan:
    own_fd = home_fd is None
    fds: list[int] = []
    try:
        if own_fd:
            home_fd = os.open(home_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fds.append(_open_dir(account, home_fd))
        except OSError as exc:
            return AccountScan(account, False, f"{account}: {_reason(exc)}", ())
        try:
            fds.append(_open_dir("ssl", fds[0]))
        except FileNotFoundError:
            return AccountScan(account, False, None, ())
        except OSError as exc:
            return AccountScan(account, False, f"ssl: {_reason(exc)}", ())
        files: list[Candidate] = []
        problems = []
        for sub in STORAGE_DIRS:
            try:
                fd = _open_dir(sub, fds[1])
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"ssl/{sub}: {_reason(exc)}")
                continue
            try:
                files.extend(_scan_dir(home_root, account, sub, fd, limit, os.fstat(fds[0]).st_uid))
            except OSError as exc:
                problems.append(f"ssl/{sub}: {_reason(exc)}")
            finally:
                os.close(fd)
        return AccountScan(account, True, "; ".join(problems) or None, tuple(files))
    finally:
        for fd in fds:
            os.close(fd)
        if own_fd and home_fd is not None:
            os.close(home_fd)


def scan_accounts(home_root: Path, limit: int) -> Iterator[AccountScan]:
    """Every account under ``home_root`` (a directory with a valid account name), in name order.

    A missing or unreadable home_root yields nothing; the caller reports it.
    """
    home_fd = os.open(home_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with os.scandir(home_fd) as entries:
            names = sorted(e.name for e in entries
                           if valid_account_name(e.name) and e.is_dir(follow_symlinks=False))
        for name in names:
            yield scan_account(home_root, name, limit, home_fd)
    finally:
        os.close(home_fd)
