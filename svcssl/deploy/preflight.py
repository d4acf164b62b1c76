"""Before a deployment writes anything: every target can be replaced and every file system involved has
room for the new files, their backups in the journal and the state directory's share, plus a margin.

A refusal (``FileSystemError``, one sentence naming the path and what to do) changes nothing. A write
that still fails midway is undone from the journal by ``deployer``.
"""

from __future__ import annotations

from pathlib import Path

from ..filesystem import require_room, require_writable
from .layout import TargetFile

MARGIN = 1024 * 1024  # kept free on every file system a deployment writes to
STATE_OVERHEAD = 256 * 1024  # the journal's index, the database's rollback journal and rows, the bundle's folder


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_deploy(files: tuple[TargetFile, ...], state_dir: Path, *, bundle_bytes: int) -> None:
    """Refuse before anything is written when a target or the state directory cannot take the deployment."""
    for target in files:
        require_writable(target.path)
    require_writable(state_dir / "svcssl.db")
    needs: dict[Path, int] = {}
    for target in files:
        needs[target.path.parent] = needs.get(target.path.parent, 0) + len(target.data)
    backups = sum(_size(target.path) for target in files)  # the journal keeps the previous files
    needs[state_dir] = needs.get(state_dir, 0) + bundle_bytes + backups + STATE_OVERHEAD
    require_room(needs, MARGIN)
