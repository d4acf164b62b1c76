"""`svcssl check --nagios` as Nagios/Icinga run it: a child process whose one line follows the Monitoring Plugins
output grammar and whose exit code is the plugin state, for states giving each code."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support import pki
from support.config import REPO_ROOT
from support.panel import HOST, make_panel
from servers.ports import free_port
from svcssl.operations.context import open_context
from svcssl.operations.install import install_certificate

# The plugin output grammar (Monitoring Plugins Development Guidelines, "Plugin Output" and "Performance data")
STATUS_LINE = re.compile(r"^SVCSSL (?P<word>OK|WARNING|CRITICAL|UNKNOWN) - (?P<text>[^|\n]+?)(?: \| (?P<perf>[^|\n]+))?$")
RANGE = r"@?(?:~|-?\d+(?:\.\d+)?)?(?::(?:-?\d+(?:\.\d+)?)?)?"
PERF_ITEM = re.compile(r"^(?P<label>'[^']+'|[^=' ]+)=(?P<value>-?\d+(?:\.\d+)?|U)(?P<uom>[a-zA-Z%]*)"
                       rf"(?:;(?P<warn>{RANGE}))?(?:;(?P<crit>{RANGE}))?(?:;(?P<min>-?[\d.]*))?(?:;(?P<max>-?[\d.]*))?$")
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass
class PluginRun:
    code: int
    word: str
    text: str
    perf: dict[str, tuple[str, str, str, str]]  # label → (value, uom, warn, crit)
    seconds: float
    stderr: str


def run_plugin(config: Path, *args: str, timeout: float = 60) -> PluginRun:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "svcssl.cli", "--config", str(config), "check", "--nagios", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.monotonic() - started
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr  # one line, nothing else on stdout
    assert "Traceback" not in done.stderr, done.stderr
    match = STATUS_LINE.match(lines[0])
    assert match, lines[0]
    perf = {}
    for item in (match["perf"] or "").split():
        parsed = PERF_ITEM.match(item)
        assert parsed, item
        perf[parsed["label"]] = (parsed["value"], parsed["uom"], parsed["warn"], parsed["crit"])
    assert done.returncode == CODES[match["word"]], (done.returncode, lines[0])
    return PluginRun(done.returncode, match["word"], match["text"], perf, seconds, done.stderr)


def days_left_per_openssl(path: Path) -> int:
    """Days left of the certificate in ``path``, read by openssl (the independent reading)."""
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)], capture_output=True, text=True,
                         check=True).stdout
    end = datetime.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    return int((end - datetime.now(timezone.utc)).total_seconds() / 86400)  # whole days, toward zero


def install_days(ctx, service: str, days: float, slot: int) -> None:
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(slot), not_before=pki.NOW - timedelta(days=30),
                        not_after=datetime.now(timezone.utc) + timedelta(days=days))
    _, outcomes = install_certificate(ctx, [service], pki.pem(leaf, ca.intermediate) + pki.key_pem(key), actor="test")
    assert outcomes[0].ok, outcomes[0].message


@pytest.fixture
def healthy(tmp_path):
    """Every service with a CA-signed certificate for the hostname, 60 days left."""
    panel = make_panel(tmp_path)
    ctx = open_context(panel.settings)
    for slot, name in enumerate(("cpanel", "dovecot", "exim", "ftp")):
        install_days(ctx, name, 60.5, 70 + slot)
    yield panel, ctx
    ctx.store.close()


def cert_path(panel, name: str) -> Path:
    service = panel.settings.services[name]
    return Path(service.cert_file or service.combined_file)


def test_ok_with_days_and_thresholds_for_every_service(healthy):
    panel, _ = healthy
    result = run_plugin(panel.config)
    assert result.word == "OK" and result.code == 0
    assert "4 services fine" in result.text
    for name in ("cpanel", "dovecot", "exim", "ftp"):
        value, uom, warn, crit = result.perf[name]
        assert (uom, warn, crit) == ("d", "20:", "3:")  # [notify] expiry_days, [maintenance] other_renew_days
        assert int(value) == days_left_per_openssl(cert_path(panel, name)) == 60


def test_warning_under_the_warning_days_and_thresholds_from_the_options(healthy):
    panel, ctx = healthy
    install_days(ctx, "exim", 5.5, 80)
    result = run_plugin(panel.config)
    assert result.word == "WARNING" and result.text == "exim expires in 5 days"
    assert result.perf["exim"][:1] == ("5",) and result.perf["dovecot"][0] == "60"
    assert run_plugin(panel.config, "--warning", "4", "--critical", "2").word == "OK"
    critical = run_plugin(panel.config, "--warning", "70", "--critical", "10")
    assert critical.word == "CRITICAL" and critical.perf["exim"][2:] == ("70:", "10:")
    assert critical.text.startswith("exim expires in 5 days; ")  # the critical one first, then the warnings


def test_critical_when_expired_or_under_the_critical_days(healthy):
    panel, ctx = healthy
    install_days(ctx, "dovecot", 2.5, 81)
    result = run_plugin(panel.config)
    assert result.word == "CRITICAL" and result.text == "dovecot expires in 2 days"
    expired = cert_path(panel, "ftp")
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(82), not_before=pki.NOW - timedelta(days=90),
                        not_after=pki.NOW - timedelta(days=1, hours=1))
    expired.write_bytes(pki.key_pem(key) + pki.pem(leaf, ca.intermediate))  # put there behind svcssl's back
    result = run_plugin(panel.config)
    assert result.word == "CRITICAL"
    assert f"ftp expired on {leaf.not_valid_after_utc:%Y-%m-%d}" in result.text
    assert int(result.perf["ftp"][0]) == days_left_per_openssl(expired) < 0


def test_a_port_that_does_not_answer_is_a_warning(healthy):
    panel, _ = healthy
    closed = free_port()
    text = panel.config.read_text()
    panel.config.write_text(text.replace('kind = "dovecot"',
                                         f'kind = "dovecot"\nprobe = "imap-starttls://127.0.0.1:{closed}"'))
    result = run_plugin(panel.config, "dovecot", "exim")  # the services named, as `svcssl check` takes them
    assert result.word == "WARNING" and result.text.startswith("dovecot's port does not answer")
    assert set(result.perf) == {"dovecot", "exim"}


def test_self_signed_is_a_warning(tmp_path):
    panel = make_panel(tmp_path)  # the first start's self-signed certificates
    result = run_plugin(panel.config, "exim")
    assert result.word == "WARNING" and result.text == "exim: replace (self-signed)"


def test_unknown_when_the_config_cannot_be_read(tmp_path):
    missing = run_plugin(tmp_path / "nowhere.toml")
    assert missing.word == "UNKNOWN" and "cannot read configuration file" in missing.text and missing.perf == {}
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    assert "not valid TOML" in run_plugin(broken).text


def test_unknown_when_the_state_directory_is_missing_and_it_is_not_made(tmp_path):
    config = tmp_path / "svcssl.toml"
    config.write_text(f'[server]\nhostname = "{HOST}"\nstate_dir = "{tmp_path / "state"}"\n')
    result = run_plugin(config)
    assert result.word == "UNKNOWN" and f"the state directory {tmp_path / 'state'} is missing" in result.text
    assert not (tmp_path / "state").exists()


def test_unknown_when_the_check_does_not_finish_within_the_timeout(healthy):
    panel, _ = healthy
    holder = sqlite3.connect(panel.state / "svcssl.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a stuck writer: the check waits for the database
    try:
        result = run_plugin(panel.config, "--timeout", "1.5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.word == "UNKNOWN" and result.text == "the check did not finish within 1.5 s"
    assert result.seconds < 6
    assert run_plugin(panel.config).word == "OK"


def test_critical_above_warning_is_unknown(healthy):
    panel, _ = healthy
    result = run_plugin(panel.config, "--warning", "3", "--critical", "10")
    assert result.word == "UNKNOWN" and "--critical (10 days) must not be more than --warning (3 days)" in result.text


def test_the_thresholds_go_with_nagios_only(healthy, run_cli):
    panel, _ = healthy
    refused = run_cli("check", "--warning", "5", config=panel.config)
    assert refused.code == 2 and "--warning, --critical and --timeout go with --nagios" in refused.err
