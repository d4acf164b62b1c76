"""An installable package: the wheel (and `pipx install .`) carries the templates and the CSS.

The wheel is built from a copy of the checkout, installed into a fresh venv (dependencies from the
package index, as an administrator gets them), and `svcssl serve` runs from an unrelated
directory with no PYTHONPATH: the login page, the CSS and the service table must load. The builds
are made once per session.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from support.config import IN_CI, REPO_ROOT
from support.serve import ServedPanel, https_session, panel_config
from servers.ports import free_port

SERVICES = ("cpanel", "dovecot", "exim", "ftp")
PASSWORD = "packaged-root-password-1"
TOP_LEVEL_DATA = ("templates", "static")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(argv, *, cwd: Path | None = None, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env or clean_env())
    if done.returncode != 0:
        message = f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        if not IN_CI and ("Could not find a version" in done.stderr or "NewConnectionError" in done.stderr):
            pytest.skip(f"no package index here: {message}")
        raise AssertionError(message)
    return done


def copy_checkout(target: Path) -> Path:
    """The source tree as a release would have it: no venv, state, build output or caches."""
    shutil.copytree(REPO_ROOT, target, ignore=shutil.ignore_patterns(
        ".git", ".venv", "state", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "node_modules"))
    return target


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("source") / "svcssl")


@pytest.fixture(scope="session")
def wheel(source_copy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source_copy])
    (built,) = out.glob("svcssl-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("wheel-venv") / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin/python", "-m", "pip", "install", "-q", wheel])
    return venv


@pytest.fixture(scope="session")
def pipx_bin(source_copy, tmp_path_factory) -> Path:
    """pipx from the package index in its own venv; `pipx install` of the source tree into a private home."""
    base = tmp_path_factory.mktemp("pipx")
    run([sys.executable, "-m", "venv", base / "tool"])
    run([base / "tool/bin/python", "-m", "pip", "install", "-q", "pipx"])
    env = {**clean_env(), "PIPX_HOME": str(base / "home"), "PIPX_BIN_DIR": str(base / "bin"),
           "PIPX_MAN_DIR": str(base / "man")}
    run([base / "tool/bin/pipx", "install", source_copy], env=env)
    return base / "bin"


def test_the_wheel_holds_the_templates_and_static_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in TOP_LEVEL_DATA:
        expected = {f"svcssl/{p.relative_to(REPO_ROOT).as_posix()}" for p in (REPO_ROOT / folder).rglob("*") if p.is_file()}
        assert expected, folder
        assert expected <= names, sorted(expected - names)
    assert "svcssl/templates/errors/error.html" in names
    assert "svcssl/static/svcssl.css" in names
    # and the checkout keeps them at the top level
    assert (REPO_ROOT / "templates/base.html").is_file() and (REPO_ROOT / "static/svcssl.css").is_file()


def check_installed_panel(svcssl: Path, tmp_path: Path) -> None:
    """`svcssl serve` of an installed command, run from a directory that has nothing of the checkout."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = panel_config(tmp_path / "panel")
    (tmp_path / "root.password").write_text(PASSWORD + "\n")
    run([svcssl, "--config", config, "user", "add", "root", "--role", "root", "--password-file",
         tmp_path / "root.password"], cwd=elsewhere)
    panel = ServedPanel([str(svcssl)], config, tmp_path / "serve.log", cwd=elsewhere, env=clean_env()).start()
    try:
        css = https_session().get(panel.url + "/static/svcssl.css", timeout=10)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
        assert css.content == (REPO_ROOT / "static/svcssl.css").read_bytes()

        session = panel.login("root", PASSWORD)
        table = session.get(panel.url + "/scripts2/manageservicecrts", timeout=30)
        assert table.status_code == 200, table.text[:2000]
        for service in SERVICES:
            assert service in table.text
        assert "svcssl.css" in table.text
        missing = session.get(panel.url + "/no-such-page", timeout=10)
        assert missing.status_code == 404  # the error template is there too
        assert "<html" in missing.text.lower()
    finally:
        panel.stop()
    log = panel.output()
    assert "Traceback" not in log and "TemplateNotFound" not in log, log


def test_a_wheel_installed_in_a_fresh_venv_serves_the_panel(wheel_venv, tmp_path):
    where = run([wheel_venv / "bin/python", "-c", "import svcssl.app as a; print(a.__file__); "
                 "print(a.resource_dir('templates')); print(a.resource_dir('static'))"], cwd=tmp_path).stdout.split()
    site = str(wheel_venv)
    assert all(line.startswith(site) for line in where), where  # the installed copy, not the checkout
    check_installed_panel(wheel_venv / "bin/svcssl", tmp_path)


def test_pipx_install_of_the_checkout_serves_the_panel(pipx_bin, tmp_path):
    svcssl = pipx_bin / "svcssl"
    assert run([svcssl, "--version"], cwd=tmp_path).stdout.startswith("svcssl ")
    check_installed_panel(svcssl, tmp_path)


def unit_command(name: str, svcssl: Path) -> tuple[list[str], dict[str, str]]:
    """ExecStart (with this install's svcssl) and Environment of a contrib/systemd unit."""
    command, environment = None, {}
    for line in (REPO_ROOT / "contrib/systemd" / name).read_text().splitlines():
        if line.startswith("ExecStart="):
            command = line.removeprefix("ExecStart=").split()
        elif line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            environment[key] = value
    assert command and command[0] == "/usr/local/bin/svcssl", name
    return [str(svcssl), *command[1:]], environment


def test_the_systemd_units_command_lines_run_the_wheel(wheel_venv, tmp_path):
    """What systemd would start: each unit's ExecStart and Environment (SVCSSL_CONFIG pointed at a test
    config), stderr connected the way journald's stream is (JOURNAL_STREAM), stopped by SIGTERM."""
    svcssl = wheel_venv / "bin/svcssl"
    config = panel_config(tmp_path / "panel")
    port = free_port()
    config.write_text(config.read_text().replace("[server]\n", f'[server]\nlisten = "127.0.0.1:{port}"\n', 1)
                      + '\n[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 1\n')
    (tmp_path / "root.password").write_text(PASSWORD + "\n")
    run([svcssl, "--config", config, "user", "add", "root", "--role", "root", "--password-file",
         tmp_path / "root.password"], cwd=tmp_path)

    def start(name: str, log: Path) -> subprocess.Popen:
        argv, unit_env = unit_command(name, svcssl)
        assert unit_env["SVCSSL_CONFIG"] == "/etc/svcssl/config.toml"
        with open(log, "wb") as err:
            st = os.fstat(err.fileno())
            env = {**clean_env(), **unit_env, "SVCSSL_CONFIG": str(config), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
            return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                    cwd="/")

    panel = start("svcssl.service", tmp_path / "panel.log")
    try:
        session = https_session()
        deadline = time.monotonic() + 30
        while True:
            assert panel.poll() is None, (tmp_path / "panel.log").read_text()
            try:
                if session.get(f"https://127.0.0.1:{port}/login", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline, (tmp_path / "panel.log").read_text()
                time.sleep(0.2)
    finally:
        panel.send_signal(signal.SIGTERM)  # systemctl stop (KillSignal=SIGTERM, TimeoutStopSec=30s)
        code = panel.wait(timeout=30)
    assert code in (0, -signal.SIGTERM), code  # systemd counts both as a clean stop: no Restart=on-failure
    panel_log = (tmp_path / "panel.log").read_text()
    assert "Traceback" not in panel_log
    lines = [line for line in panel_log.splitlines() if line.strip()]
    assert lines and all(re.match(r"<[2-7]>", line) for line in lines), panel_log  # a priority on every log line

    # the maintenance unit's one-shot run (no hostname certificate: the touch file, as an offline test must)
    (tmp_path / "panel/state/disable_auto_hostname_certificate").touch()
    job = start("svcssl-maintenance.service", tmp_path / "maintenance.log")
    assert job.wait(timeout=120) == 0, (tmp_path / "maintenance.log").read_text()
    job_log = (tmp_path / "maintenance.log").read_text()
    assert "<6>maintenance run finished: ok" in job_log, job_log
    assert "Traceback" not in job_log
