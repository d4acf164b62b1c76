from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from svcssl import cli  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binaries(*names: str, install: str) -> None:
    """Skip (locally) or fail (under CI=true) when a real program is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        message = f"missing {', '.join(missing)}: run `{install}` (the README's test command does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run the `svcssl` command in-process with the given config."""

    def run(*args: str, config: Path | None = None) -> CliResult:
        argv = (["--config", str(config)] if config else []) + list(args)
        capsys.readouterr()
        code = cli.main(argv)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, *, hostname: str = "mail.example.com", state_dir: Path, services: dict[str, dict],
                 extra: str = "") -> Path:
    lines = ["[server]", f"hostname = {toml_value(hostname)}", f"state_dir = {toml_value(str(state_dir))}",
             "", "[deploy]", "probe_timeout = 5", "command_timeout = 30", ""]
    for name, table in services.items():
        lines.append(f"[services.{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
        lines.append("")
    path.write_text("\n".join(lines) + extra)
    return path


@pytest.fixture
def simple_config(tmp_path) -> Path:
    """Two file-only services (no reload), under tmp_path/etc."""
    etc = tmp_path / "etc"
    return write_config(
        tmp_path / "svcssl.toml",
        state_dir=tmp_path / "state",
        services={
            "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"),
                        "key_file": str(etc / "dovecot/private/key.pem")},
            "exim": {"kind": "exim", "cert_file": str(etc / "exim/exim.crt"), "key_file": str(etc / "exim/exim.key"),
                     "key_mode": "0640", "cert_mode": "0644"},
            "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
        },
    )


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and mode (to prove nothing changed)."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "locks" not in path.parts:
            st = path.stat()
            result[str(path.relative_to(root))] = (path.read_bytes(), stat.S_IMODE(st.st_mode))
    return result
