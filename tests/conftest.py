"""The fixtures every test module shares, defined once (flaskr style): the panel and its Flask `app`,
`client`, `runner` and logged-in users; the `svcssl` command in-process; Chromium and served panels.

Helpers live in the `support` and `servers` packages (on the path through pyproject's `pythonpath`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.config import require_binaries, skip_or_fail, write_config
from support.panel import ALICE_PASSWORD, BOB_PASSWORD, ROOT_PASSWORD, make_panel
from support.process import PanelProcess
from support.releases import DATA, RELEASES
from support.web import logged_in, new_client
from svcssl import cli
from svcssl.app import create_app

CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]


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


# --- the panel through Flask's test client ------------------------------------------------------


@pytest.fixture
def panel(tmp_path):
    """A configured panel (settings, state, users root/alice/bob) under tmp_path."""
    return make_panel(tmp_path)


@pytest.fixture
def app(panel):
    app = create_app(panel.settings, live_check_ttl=0)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return new_client(app)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def root(app):
    return logged_in(app, "root", ROOT_PASSWORD)


@pytest.fixture
def alice(app):
    return logged_in(app, "alice", ALICE_PASSWORD)


@pytest.fixture
def bob(app):
    return logged_in(app, "bob", BOB_PASSWORD)


# --- Chromium against `svcssl serve` ----------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    require_binaries("chromium", install="bash scripts/test.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "missing the playwright Python package: run `bash scripts/test.sh` (the README's test command does)"
        skip_or_fail(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def shots(tmp_path):
    directory = Path(os.environ.get("SVCSSL_SCREENSHOTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> Path:
        path = directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot


@pytest.fixture
def start_panel(tmp_path):
    """Start `svcssl serve` for a config; every one started is stopped after the test."""
    started: list[PanelProcess] = []

    def start(config: Path) -> PanelProcess:
        server = PanelProcess(config, tmp_path / f"serve-{len(started)}.log").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- a state directory written by an earlier release (tests/data/upgrade-<version>/) -------------

@pytest.fixture(params=RELEASES)
def old_state(request, tmp_path):
    """The release's directory copied to tmp_path with the modes it had on disk (git keeps none)."""
    source = DATA / request.param
    target = tmp_path / request.param
    shutil.copytree(source, target)
    expected = json.loads((source / "expected.json").read_text())
    for relative, mode in expected["modes"].items():  # parents first: the list is sorted
        path = target / relative
        if not path.exists():  # an empty directory (git keeps none)
            path.mkdir(parents=True)
        path.chmod(int(mode, 8))
    return target, expected
