"""The disk incidents the administrator was already told about, kept where a full disk cannot stop it.

The database cannot record anything while its file system is full, so a mail "once per incident" would
go out on every run. This small file is made (at a fixed size) while there is room and afterwards only
rewritten in place: overwriting blocks a file already owns needs no free space.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..fsutil import atomic_write

SIZE = 4096


class IncidentLog:
    def __init__(self, path: Path):
        self.path = path

    def keys(self) -> set[str]:
        try:
            data = self.path.read_bytes().rstrip(b"\0 \n")
            return set(json.loads(data or b"[]"))
        except (OSError, ValueError):
            return set()

    def _write(self, keys: set[str]) -> bool:
        data = json.dumps(sorted(keys)).encode()
        while len(data) > SIZE and keys:  # never grow the file
            keys = set(sorted(keys)[1:])
            data = json.dumps(sorted(keys)).encode()
        padded = data.ljust(SIZE, b" ")
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except FileNotFoundError:
            try:
                atomic_write(self.path, padded, 0o600)  # needs room: made while there is some
                return True
            except OSError:
                return False
        except OSError:
            return False
        try:
            os.pwrite(fd, padded, 0)
            os.fsync(fd)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def record(self, key: str) -> bool:
        """Remember ``key`` (rewriting the file in place); False when it could not be kept."""
        return self._write(self.keys() | {key})

    def clear(self) -> bool:
        """The disk is fine again: forget the incidents (and make the file while there is room)."""
        if self.path.exists() and not self.keys():
            return True
        return self._write(set())
