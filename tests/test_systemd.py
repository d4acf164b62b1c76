"""contrib/systemd: the panel unit, the daily maintenance timer, and log lines made for journald."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.config import REPO_ROOT, require_binaries, write_config
from svcssl.cli import parse
from svcssl.settings import load_settings

UNITS = REPO_ROOT / "contrib" / "systemd"
UNIT_NAMES = ("svcssl.service", "svcssl-maintenance.service", "svcssl-maintenance.timer")
INSTALLED = "/usr/local/bin/svcssl"
SVCSSL = Path(sys.executable).parent / "svcssl"  # the console script of the venv running the tests
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\b\d\d:\d\d:\d\d\b")


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def verify(directory: Path, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *(str(directory / n) for n in names)],
                          capture_output=True, text=True, timeout=60)


def units_with_this_svcssl(tmp_path: Path) -> Path:
    """The units as shipped, with ExecStart pointing at this venv's svcssl (verify checks it exists)."""
    assert SVCSSL.is_file(), f"no console script at {SVCSSL}"
    target = tmp_path / "units"
    target.mkdir()
    for name in UNIT_NAMES:
        text = (UNITS / name).read_text()
        assert name.endswith(".timer") or f"ExecStart={INSTALLED} " in text, name
        (target / name).write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={SVCSSL} "))
    return target


def test_systemd_analyze_verify_passes_on_all_three_units_without_a_warning(tmp_path):
    require_binaries("systemd-analyze", install="apt-get install systemd")
    units = units_with_this_svcssl(tmp_path)
    done = verify(units, *UNIT_NAMES)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr

    # the check sees mistakes: an unknown key warns, a missing program fails
    broken = units / "svcssl-maintenance.service"
    broken.write_text(broken.read_text().replace("Nice=10", "Nicety=10"))
    assert "Unknown key 'Nicety'" in verify(units, "svcssl-maintenance.service").stderr
    broken.write_text(broken.read_text().replace(f"ExecStart={SVCSSL} ", "ExecStart=/nonexistent/svcssl "))
    assert verify(units, "svcssl-maintenance.service").returncode != 0


def test_the_units_run_svcssl_the_way_the_command_line_takes_it():
    panel = read_unit(UNITS / "svcssl.service")["Service"]
    job = read_unit(UNITS / "svcssl-maintenance.service")["Service"]
    timer = read_unit(UNITS / "svcssl-maintenance.timer")["Timer"]

    serve = parse(panel["ExecStart"][0].split()[1:])
    assert serve.command == ("serve",) and serve.log_level == "info"
    run = parse(job["ExecStart"][0].split()[1:])
    assert (run.command, run.args.dry_run) == (("maintenance", "run"), False)
    assert panel["Restart"] == ["on-failure"]
    assert job["Type"] == ["oneshot"] and "Restart" not in job
    for unit in (panel, job):
        assert unit["Environment"] == ["SVCSSL_CONFIG=/etc/svcssl/config.toml"]
        assert unit["ProtectSystem"] == ["strict"] and unit["PrivateTmp"] == ["yes"]
        assert unit["NoNewPrivileges"] == ["yes"]
    assert timer["Unit"] == ["svcssl-maintenance.service"]
    assert timer["Persistent"] == ["true"] and timer["RandomizedDelaySec"] == ["6h"]
    assert timer["OnCalendar"] == ["*-*-* 00:00:00"]  # daily


def test_the_sandbox_lets_svcssl_write_every_file_of_the_example_config():
    """ProtectSystem=strict: every directory config.example.toml writes to must be in ReadWritePaths."""
    settings = load_settings(REPO_ROOT / "config.example.toml")
    for name in ("svcssl.service", "svcssl-maintenance.service"):
        service = read_unit(UNITS / name)["Service"]
        writable = [Path(p.lstrip("-")) for line in service["ReadWritePaths"] for p in line.split()]
        assert service["StateDirectory"] == ["svcssl"]  # /var/lib/svcssl, created by systemd
        needed = {settings.server.state_dir}
        for svc in settings.services.values():
            for path in (svc.cert_file, svc.key_file, svc.chain_file, svc.combined_file):
                if path is not None:
                    needed.add(path.parent)
        uncovered = sorted(str(d) for d in needed if not any(d == w or w in d.parents for w in writable))
        assert not uncovered, f"{name}: not writable under ProtectSystem=strict: {uncovered}"


# --- logging ----------------------------------------------------------------------------------


def run_svcssl(tmp_path: Path, *args: str, journal: bool) -> tuple[int, str]:
    """Run the installed command with stderr in a file; with ``journal``, JOURNAL_STREAM names that file
    (what systemd does when it connects stderr to journald)."""
    err_path = tmp_path / f"stderr-{len(list(tmp_path.glob('stderr-*')))}"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err_path, "wb") as err:
        if journal:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        done = subprocess.run([str(SVCSSL), *args], stdout=subprocess.DEVNULL, stderr=err, env=env, timeout=120,
                              cwd=tmp_path)
    return done.returncode, err_path.read_text()


@pytest.fixture
def file_config(tmp_path) -> Path:
    etc = tmp_path / "etc"
    return write_config(tmp_path / "svcssl.toml", state_dir=tmp_path / "state", services={
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "cert.pem"), "key_file": str(etc / "key.pem")}})


def test_log_lines_for_journald_carry_the_priority_and_no_timestamp(tmp_path, file_config):
    code, err = run_svcssl(tmp_path, "--config", str(file_config), "--log-level", "info", "list", "--no-probe",
                           journal=True)
    assert code == 0, err
    lines = err.splitlines()
    assert lines and all(line.startswith("<6>") for line in lines), err  # info = syslog priority 6
    assert any("service dovecot: deployed" in line for line in lines), err
    assert not TIMESTAMP.search(err), err  # journald stamps each entry itself

    # an error printed by the command line: priority 3
    code, err = run_svcssl(tmp_path, "--config", str(tmp_path / "missing.toml"), "list", journal=True)
    assert code == 2
    assert err.startswith("<3>svcssl: configuration error"), err


def test_log_lines_on_a_terminal_name_the_level_and_log_level_filters(tmp_path, file_config):
    code, err = run_svcssl(tmp_path, "--config", str(file_config), "--log-level", "debug", "list", "--no-probe",
                           journal=False)
    assert code == 0, err
    assert "svcssl: INFO: service dovecot: deployed" in err
    assert "<6>" not in err and not TIMESTAMP.search(err), err
    shutil.rmtree(tmp_path / "state")
    code, err = run_svcssl(tmp_path, "--config", str(file_config), "--log-level", "warning", "list", "--no-probe",
                           journal=False)
    assert code == 0 and "INFO" not in err, err
    code, err = run_svcssl(tmp_path, "--log-level", "loud", "list", journal=False)
    assert code == 2 and "invalid choice: 'loud'" in err
