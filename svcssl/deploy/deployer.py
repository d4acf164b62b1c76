"""The one deploy path (DESIGN.md §5), certbot's installer contract made atomic.

stage → config test → journal + swap → reload → probe → activate; on any failure
the previous files are put back byte for byte and mode for mode, the daemon is
reloaded again, and a DeployError names the stage and the daemon's output.

The journal (backups of the previous files, written before the first swap and
removed only after the store has recorded the outcome) makes a crash at any point
recoverable: ``recover_interrupted`` puts the previous files back, so the files
always match what the store calls active.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DeployError
from ..fsutil import FileSnapshot, atomic_write, commit_staged, resolve_owner, restore, snapshot, stage_file
from ..settings import DeploySettings, ServiceSettings
from .kinds import kind_of
from .layout import TargetFile
from .probe import wait_for_fingerprint
from .runner import CommandResult, run_command

log = logging.getLogger(__name__)

JOURNAL = "journal.json"


@dataclass(frozen=True)
class DeployReport:
    service: str
    fingerprint: str
    files: tuple[str, ...]
    reloaded: bool
    probed: bool
    served_fingerprint: str | None
    output: str


def _write_journal(directory: Path, snapshots: list[FileSnapshot]) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(mode=0o700, parents=True)
    entries = []
    for index, snap in enumerate(snapshots):
        entry = {"path": str(snap.path), "exists": snap.exists}
        if snap.exists:
            backup = f"{index}.bak"
            atomic_write(directory / backup, snap.data, 0o600)
            entry.update(backup=backup, mode=snap.mode, uid=snap.uid, gid=snap.gid)
        entries.append(entry)
    atomic_write(directory / JOURNAL, json.dumps(entries).encode(), 0o600)


def _clear_journal(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _journal_snapshots(directory: Path) -> list[FileSnapshot]:
    entries = json.loads((directory / JOURNAL).read_text())
    snapshots = []
    for entry in entries:
        path = Path(entry["path"])
        if entry["exists"]:
            data = (directory / entry["backup"]).read_bytes()
            snapshots.append(FileSnapshot(path, True, data, entry["mode"], entry["uid"], entry["gid"]))
        else:
            snapshots.append(FileSnapshot(path, False))
    return snapshots


def recover_interrupted(service: ServiceSettings, journal_dir: Path, settings: DeploySettings) -> bool:
    """If a deployment of ``service`` was interrupted, put its previous files back. Call under the service lock."""
    if not (journal_dir / JOURNAL).exists():
        _clear_journal(journal_dir)  # a journal that never got its index: no file was swapped yet
        return False
    for snap in _journal_snapshots(journal_dir):
        restore(snap)
    log.warning("service %s: an interrupted deployment was found; the previous files were put back", service.name)
    if service.reload:
        result = run_command(service.reload, settings.command_timeout)
        if not result.ok:
            log.warning("service %s: reload after recovery failed: %s", service.name, result.describe())
    _clear_journal(journal_dir)
    return True


def _fail(service: str, stage: str, message: str, output: str = "", rolled_back: bool = True) -> DeployError:
    log.error("service %s: deploy failed at %s (%s)", service, stage, "rolled back" if rolled_back else "NOT rolled back")
    return DeployError(message, service=service, stage=stage, rolled_back=rolled_back, output=output)


def deploy_files(
    service: ServiceSettings,
    files: tuple[TargetFile, ...],
    *,
    fingerprint: str,
    settings: DeploySettings,
    journal_dir: Path,
    activate: Callable[[], None],
    reload: bool = True,
    server_name: str | None = None,
) -> DeployReport:
    """Install ``files`` for ``service`` and make sure the daemon serves ``fingerprint``.

    ``activate`` is called once the daemon serves the new certificate (it records
    the new state in the store); until it returns, a crash is undone by
    ``recover_interrupted``. ``reload=False`` only writes the files (first run,
    when the daemons are not started yet).
    """
    name = service.name
    # 1. stage: temp files beside each target with final owner, group and mode
    try:
        uid, gid = resolve_owner(service.owner, service.group)
    except LookupError as exc:
        raise _fail(name, "stage", f"Cannot install for {name}: {exc}.") from None
    staged: list[tuple[Path, TargetFile]] = []
    try:
        for target in files:
            staged.append((stage_file(target.path, target.data, target.mode, uid, gid), target))
    except OSError as exc:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise _fail(name, "stage", f"Cannot write the files of {name}: {exc.strerror} ({exc.filename or ''}).") from None

    def discard_staged() -> None:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)

    # 2. config test, where the daemon has one
    if service.config_test:
        result = run_command(service.config_test, settings.command_timeout)
        if not result.ok:
            discard_staged()
            raise _fail(name, "config_test", f"The configuration test of {name} failed; nothing was changed. "
                        f"{result.describe()}", result.output)

    # 3. journal the previous files, then swap every file
    snapshots = [snapshot(target.path) for _, target in staged]
    try:
        _write_journal(journal_dir, snapshots)
    except OSError as exc:
        discard_staged()
        raise _fail(name, "stage", f"Cannot write the deploy journal for {name}: {exc.strerror}.") from None

    outputs: list[str] = []

    def roll_back(stage: str, message: str) -> DeployError:
        restored = True
        for snap in snapshots:
            try:
                restore(snap)
            except OSError as exc:  # pragma: no cover - disk trouble while restoring
                restored = False
                outputs.append(f"could not restore {snap.path}: {exc.strerror}")
        if reload and service.reload:
            again = run_command(service.reload, settings.command_timeout)
            outputs.append(f"reload after restoring: {again.describe()}")
        if restored:
            _clear_journal(journal_dir)
        output = "\n".join(outputs)
        state = "the previous certificate was put back" if restored else "restoring the previous files FAILED"
        return _fail(name, stage, f"{message} {state}.", output, rolled_back=restored)

    try:
        for temp, target in staged:
            commit_staged(temp, target.path)
    except OSError as exc:
        discard_staged()
        raise roll_back("swap", f"Swapping the files of {name} failed ({exc.strerror});") from None

    # 4. reload, 5. probe
    reloaded = probed = False
    served: str | None = None
    if reload and service.reload:
        result: CommandResult = run_command(service.reload, settings.command_timeout)
        outputs.append(result.describe())
        if not result.ok:
            raise roll_back("reload", f"Reloading {name} failed: {result.describe()};")
        reloaded = True
    if reload and service.probe is not None:
        timeout = settings.probe_timeout * (2 if kind_of(service.kind).restarts else 1)
        matched, last = wait_for_fingerprint(service.probe, fingerprint, timeout, server_name)
        if not matched:
            raise roll_back("probe", f"{service.probe} does not serve the new certificate after {timeout:g} s ({last});")
        probed, served = True, last

    # 6. only success makes the new certificate active
    try:
        activate()
    except Exception:
        raise roll_back("activate", f"Recording the new certificate of {name} failed;") from None
    _clear_journal(journal_dir)
    log.info("service %s: deployed %s (%d files%s%s)", name, fingerprint[:16], len(staged),
             ", reloaded" if reloaded else "", ", probe matched" if probed else "")
    return DeployReport(
        service=name, fingerprint=fingerprint, files=tuple(str(t.path) for _, t in staged),
        reloaded=reloaded, probed=probed, served_fingerprint=served, output="\n".join(outputs),
    )
