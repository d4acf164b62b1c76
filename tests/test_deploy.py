"""The deploy path: ownership, probe failures, crash recovery, and the per-service lock."""

from __future__ import annotations

import grp
import json
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from support import pki
from support.config import skip_or_fail, tree_state, write_config
from svcssl.deploy import deploy_files, render_files
from svcssl.errors import DeployError
from svcssl.operations.context import open_context
from svcssl.operations.install import install_certificate
from svcssl.operations.inventory import read_installed
from svcssl.settings import load_settings

HOST = "mail.example.com"


def _bundle_bytes(slot: int):
    leaf, key = pki.pki().leaf([HOST], key=pki.rsa_key(slot))
    return pki.pem(leaf, pki.pki().intermediate), pki.key_pem(key)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_owner_group_and_modes_are_applied(run_cli, tmp_path):
    if os.geteuid() != 0:
        skip_or_fail("chown needs root (CI runs the suite as root)")
    group = "nogroup" if _has_group("nogroup") else grp.getgrgid(0).gr_name
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "exim": {"kind": "exim", "cert_file": str(etc / "exim.crt"), "key_file": str(etc / "exim.key"),
                 "owner": "root", "group": group, "key_mode": "0640", "cert_mode": "0644"}})
    assert run_cli("list", config=config).code == 0
    st = (etc / "exim.key").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == grp.getgrnam(group).gr_gid
    assert (etc / "exim.crt").stat().st_gid == grp.getgrnam(group).gr_gid


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_unknown_owner_is_a_deploy_error_that_changes_nothing(run_cli, tmp_path):
    etc = tmp_path / "etc"
    services = {"dovecot": {"kind": "dovecot", "cert_file": str(etc / "c.pem"), "key_file": str(etc / "k.pem")}}
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services=services)
    run_cli("list", config=config)
    before = tree_state(etc)
    services["dovecot"]["owner"] = "no-such-user-svcssl"
    write_config(config, state_dir=tmp_path / "state", services=services)
    result = run_cli("reset", "dovecot", config=config)
    assert result.code == 1 and "no such user 'no-such-user-svcssl'" in result.err
    assert tree_state(etc) == before


def test_probe_that_never_sees_the_new_certificate_rolls_back(run_cli, tmp_path):
    etc = tmp_path / "etc"
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "c.pem"), "key_file": str(etc / "k.pem"),
                    "reload": ["true"], "probe": f"imap-starttls://127.0.0.1:{_closed_port()}"}},
        ).read_text().replace("probe_timeout = 5", "probe_timeout = 1")
    path = tmp_path / "c.toml"
    path.write_text(config)
    run_cli("list", config=path)
    before = tree_state(etc)
    result = run_cli("reset", "dovecot", config=path)
    assert result.code == 1
    assert "FAILED at probe" in result.err and "does not serve the new certificate" in result.err
    assert tree_state(etc) == before


def test_crash_after_swap_is_undone_on_next_start(run_cli, simple_config, tmp_path):
    """A deploy killed between the swap and recording leaves a journal; the next command puts the old files back."""
    assert run_cli("list", config=simple_config).code == 0
    etc = tmp_path / "etc"
    before = tree_state(etc)
    settings = load_settings(simple_config)
    ctx = open_context(settings)
    service = settings.services["dovecot"]
    crt, key = _bundle_bytes(20)
    from svcssl.operations.install import prepare_bundle
    bundle = prepare_bundle(ctx, crt, key).bundle

    class Crash(BaseException):
        pass

    def crash():
        raise Crash()

    with pytest.raises(Crash):
        deploy_files(service, render_files(service, bundle), fingerprint=bundle.fingerprint,
                     settings=settings.deploy, journal_dir=ctx.store.journal_dir("dovecot"), activate=crash)
    # the process "died" with the new files in place and the store still naming the old certificate
    assert read_installed(service).info.fingerprint == bundle.fingerprint
    assert (tmp_path / "state/journal/dovecot/journal.json").exists()

    rows = {r["service"]: r for r in json.loads(run_cli("list", "--json", config=simple_config).out)}
    assert tree_state(etc) == before
    assert rows["dovecot"]["fingerprint"] == rows["dovecot"]["active_fingerprint"] != bundle.fingerprint
    assert not (tmp_path / "state/journal/dovecot").exists()


def test_concurrent_installs_are_serialised(simple_config, tmp_path):
    """Two installs on one service at once: each deploy sees the files complete, the final state is one of them."""
    settings = load_settings(simple_config)
    open_context(settings)  # creates the state dir
    from svcssl.operations.firstrun import ensure_certificates
    ensure_certificates(open_context(settings))
    marker = tmp_path / "reloads.log"
    # the reload command records the certificate file's fingerprint as it sees it, slowly
    script = tmp_path / "reload.py"
    script.write_text(
        "import hashlib, sys, time\n"
        "from cryptography import x509\n"
        f"data = open({str(settings.services['dovecot'].cert_file)!r}, 'rb').read()\n"
        "time.sleep(0.3)\n"
        f"again = open({str(settings.services['dovecot'].cert_file)!r}, 'rb').read()\n"
        f"open({str(marker)!r}, 'a').write(('same' if data == again else 'CHANGED') + '\\n')\n"
    )
    text = simple_config.read_text().replace(
        'kind = "dovecot"', f'kind = "dovecot"\nreload = ["{sys.executable}", "{script}"]')
    simple_config.write_text(text)
    settings = load_settings(simple_config)
    results = []

    def install(slot):
        crt, key = _bundle_bytes(slot)
        ctx = open_context(settings)
        results.append(install_certificate(ctx, ["dovecot"], crt, key, actor="test")[1][0])

    threads = [threading.Thread(target=install, args=(slot,)) for slot in (21, 22, 23)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results), [r.message for r in results]
    assert marker.read_text().split() == ["same"] * 3
    ctx = open_context(settings)
    assert read_installed(settings.services["dovecot"]).info.fingerprint == ctx.store.active("dovecot").fingerprint
    assert len(ctx.store.history("dovecot")) == 4


def test_deploy_error_carries_stage_and_output(tmp_path):
    config = write_config(tmp_path / "c.toml", state_dir=tmp_path / "state", services={
        "ftp": {"kind": "pure-ftpd", "combined_file": str(tmp_path / "etc/ftp.pem"),
                "reload": [sys.executable, "-c", "print('cannot bind'); raise SystemExit(1)"]}})
    settings = load_settings(config)
    ctx = open_context(settings)
    crt, key = _bundle_bytes(24)
    from svcssl.operations.install import prepare_bundle
    bundle = prepare_bundle(ctx, crt, key).bundle
    service = settings.services["ftp"]
    with pytest.raises(DeployError) as caught:
        deploy_files(service, render_files(service, bundle), fingerprint=bundle.fingerprint, settings=settings.deploy,
                     journal_dir=ctx.store.journal_dir("ftp"), activate=lambda: None)
    assert caught.value.stage == "reload" and caught.value.rolled_back
    assert "cannot bind" in caught.value.output
    assert not Path(tmp_path / "etc/ftp.pem").exists()  # it did not exist before: it does not now
