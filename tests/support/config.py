"""Configuration files, snapshots of a tree, and the real programs a test needs."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(message: str) -> None:
    """A test that cannot run here skips locally and fails under CI=true (where everything must run)."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_binaries(*names: str, install: str) -> None:
    """Skip (locally) or fail (under CI=true) when a real program is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        message = f"missing {', '.join(missing)}: run `{install}` (the README's test command does)"
        skip_or_fail(message)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


TEST_PKI_SLOTS = range(10)


def private_ca_anchors_pem() -> bytes:
    """The roots of the tests' own private CAs (support/pki.py): clients of the tests trust them, so every test
    configuration names them in [trust] ca_file (a private CA is never trusted by default)."""
    from support.pki import pem, pki
    return b"".join(pem(pki(slot).root) for slot in TEST_PKI_SLOTS)


def write_anchors(path: Path, *extra: bytes) -> Path:
    """A [trust] ca_file: the test PKI's roots and ``extra`` PEM (e.g. Pebble's root, new at every start)."""
    path.write_bytes(private_ca_anchors_pem() + b"".join(extra))
    return path


def write_config(path: Path, *, hostname: str = "mail.example.com", state_dir: Path, services: dict[str, dict],
                 extra: str = "", anchors: tuple[bytes, ...] | list[bytes] = (), trust: bool = True) -> Path:
    """A config file; with ``trust`` its [trust] ca_file holds the test PKI's roots and ``anchors``."""
    lines = ["[server]", f"hostname = {toml_value(hostname)}", f"state_dir = {toml_value(str(state_dir))}",
             "", "[deploy]", "probe_timeout = 5", "command_timeout = 30", ""]
    if trust and "[trust]" not in extra:
        ca_file = write_anchors(path.parent / f"{path.stem}-anchors.pem", *anchors)
        lines += ["[trust]", f"ca_file = {toml_value(str(ca_file))}", ""]
    for name, table in services.items():
        lines.append(f"[services.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
        lines.append("")
    path.write_text("\n".join(lines) + extra)
    return path


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mode (to prove nothing changed)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "locks" not in path.parts:
            st = path.stat()
            result[str(path.relative_to(root))] = (path.read_bytes(), stat.S_IMODE(st.st_mode))
    return result
