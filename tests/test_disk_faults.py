"""Faults of the disk, on real small file systems made in the test (no mocks): a full file system under the
state directory and the services' files, a read-only target directory, an immutable file.

Each case asserts the message, the exit code and that the live files are byte for byte unchanged; the
full-disk case also that reading (CLI, panel, API) works and that freeing space is the whole repair.
Mounting needs root: without it the tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from servers.smtp import smtp_inbox
from support import pki
from support.browser import log_in, row
from support.config import write_config
from support.mounts import ext4, fill, read_only_bind, tmpfs
from support.panel import ROOT_PASSWORD, csrf_token, make_panel
from support.process import PanelProcess
from support.web import logged_in, new_client
from svcssl.app import create_app
from svcssl.operations.context import open_context
from svcssl.operations.tokens import create_token

PAGE = "/scripts2/manageservicecrts"
HOST = "mail.example.com"


def hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but the filler and the locks) with its SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "filler" and "locks" not in p.parts}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "locks" not in p.parts)


def new_bundle(directory: Path, slot: int = 11) -> tuple[Path, Path, str]:
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(slot))
    cert_file, key_file = directory / "new.crt", directory / "new.key"
    cert_file.write_bytes(pki.pem(leaf) + pki.pem(ca.intermediate))
    key_file.write_bytes(pki.key_pem(key))
    from svcssl.x509.inspect import fingerprint
    return cert_file, key_file, fingerprint(leaf)


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs under tmp_path, unmounted afterwards whatever happens."""
    with tmpfs(tmp_path / "small") as point:
        yield point


def no_trace(text: str) -> None:
    assert "Traceback" not in text
    assert "disk I/O error" not in text


def test_full_disk_reads_work_writes_refuse_and_freeing_space_is_the_repair(run_cli, small_disk, tmp_path):
    panel = make_panel(small_disk)  # state directory and the services' files on the small file system
    ctx = open_context(panel.settings)
    _, token = create_token(ctx, "root", "reader", actor="test")
    ctx.store.close()
    app = create_app(panel.settings, live_check_ttl=0)
    app.config["TESTING"] = True
    browser = logged_in(app, "root", ROOT_PASSWORD)  # logged in before the disk fills
    cert_file, key_file, new_fp = new_bundle(tmp_path)
    assert run_cli("list", "--no-probe", config=panel.config).code == 0
    assert run_cli("install", "exim", "--cert", str(cert_file), "--key", str(key_file), config=panel.config).code == 0

    filler = fill(small_disk)
    live, state_files = hashes(panel.etc), listing(panel.state)

    # reading works and says that changes are impossible, and why
    result = run_cli("list", "--no-probe", config=panel.config)
    assert result.code == 0, result.err
    assert "dovecot" in result.out and "exim" in result.out
    assert f"Changes are impossible now: The file system holding {panel.state}" in result.err
    assert "is full (" in result.err
    assert run_cli("details", "dovecot", config=panel.config).code == 0
    checked = run_cli("check", config=panel.config)
    assert checked.code == 0 and "dovecot" in checked.out, checked.err
    listed = json.loads(run_cli("list", "--json", "--no-probe", config=panel.config).out)
    assert {row["service"] for row in listed} == {"cpanel", "dovecot", "exim", "ftp"}

    # the panel's table and Details for the logged-in user, with the banner
    table = browser.get(PAGE)
    assert table.status_code == 200
    assert "dovecot" in table.text and "Changes are impossible now" in table.text
    details = browser.get(PAGE + "/details/dovecot")
    assert details.status_code == 200 and "dovecot" in details.text
    # a new login is a write: refused in words, never a 500
    fresh = new_client(app)
    page = fresh.get("/login")
    assert page.status_code == 200

    # the API's read call answers; the keys are withheld without their audit entry
    api = new_client(app)
    response = api.get("/json-api/fetch_service_ssl_components?api.version=1",
                       headers={"Authorization": f"whm root:{token}"})
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["metadata"]["result"] == 1
    assert {s["service"] for s in body["data"]["services"]} == {"cpanel", "dovecot", "exim", "ftp"}
    assert all(s["certificate"] and not s["key"] for s in body["data"]["services"])
    assert "withheld" in body["metadata"]["output"]["warnings"][0]

    # writes refuse before they start: one sentence, exit 2, nothing changed
    for argv in (("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file)),
                 ("reset", "exim"), ("rollback", "exim"), ("token", "create", "root", "--name", "another")):
        result = run_cli(*argv, config=panel.config)
        assert result.code == 2, (argv, result.out, result.err)
        assert f"The file system holding {small_disk}" in result.err or f"holding {panel.state}" in result.err, result.err
        assert "is full (" in result.err and "Free some space and run the command again." in result.err
        no_trace(result.out + result.err)
        assert hashes(panel.etc) == live
        assert listing(panel.state) == state_files

    # the panel refuses an install in words (503), changing nothing
    install = browser.get(PAGE + "/install")
    assert install.status_code == 200
    posted = browser.post(PAGE + "/install", content_type="multipart/form-data", follow_redirects=True, data={
        "csrf_token": csrf_token(install.text), "services": ["dovecot"], "password": "",
        "crt": cert_file.read_text(), "key": key_file.read_text(), "cabundle": ""})
    assert posted.status_code == 503, posted.text
    assert "is full (" in posted.text and "Free some space" in posted.text
    assert hashes(panel.etc) == live and listing(panel.state) == state_files

    # freeing space is the whole repair
    filler.unlink()
    result = run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file), config=panel.config)
    assert result.code == 0, result.err
    listed = {row["service"]: row for row in json.loads(run_cli("list", "--json", "--no-probe",
                                                                 config=panel.config).out)}
    assert listed["dovecot"]["fingerprint"] == new_fp
    assert "Changes are impossible" not in browser.get(PAGE).text


def test_serve_starts_on_a_full_disk_and_shows_the_table(small_disk, tmp_path):
    panel = make_panel(small_disk)
    filler = fill(small_disk)
    before = listing(panel.state)
    server = PanelProcess(panel.config, tmp_path / "serve.log").start()
    try:
        import requests
        session = requests.Session()
        login = session.get(server.url + "/login", timeout=10, verify=False)
        assert login.status_code == 200
        refused = session.post(server.url + "/login", timeout=10, verify=False, headers={"Referer": server.url + "/login"},
                               data={"username": "root", "password": ROOT_PASSWORD, "csrf_token": csrf_token(login.text)})
        assert refused.status_code == 503, refused.text  # logging in is a write: refused in words
        assert f"The file system holding {panel.state}" in refused.text and "is full (" in refused.text
        assert listing(panel.state) == before  # starting and answering wrote nothing
    finally:
        server.stop()
    assert "Traceback" not in server.output()
    filler.unlink()


def test_a_run_on_a_full_disk_reports_it_and_mails_once_per_incident(run_cli, small_disk):
    with smtp_inbox() as inbox:
        notify = (f'\n[dns]\nnameservers = ["127.0.0.1:9"]\ntimeout = 1\n\n[notify]\nsmtp_host = "127.0.0.1"\n'
                  f'smtp_port = {inbox.port}\nrecipient = "admin@example.test"\n')
        panel = make_panel(small_disk, extra=notify)
        filler = fill(small_disk)
        live, state_files = hashes(panel.etc), hashes(panel.state)

        first = run_cli("maintenance", "run", config=panel.config)
        assert first.code == 1, first.err
        no_trace(first.out + first.err)
        assert f"disk: The file system holding {panel.state}" in first.out and "is full (" in first.out
        assert "cannot renew: the state directory cannot be written" in first.out
        assert "svcssl cannot renew certificates: a file system refused the write — sent" in first.out
        assert "This report could not be kept in the history: The file system holding" in first.out
        assert len(inbox.messages) == 1
        mail = inbox.messages[0]
        assert "a file system refused the write" in mail["Subject"]
        body = mail.get_content()
        assert f"The file system holding {panel.state}" in body and "Not renewed." in body

        again = run_cli("maintenance", "run", "--json", config=panel.config)
        assert again.code == 1
        report = json.loads(again.out)
        assert [(p["cause"], p["file_system"]) for p in report["disk"]] == [("full", str(small_disk))]
        assert report["not_saved"]
        assert [n["result"] for n in report["notifications"]] == ["already sent"]
        assert len(inbox.messages) == 1  # once per incident
        assert hashes(panel.etc) == live
        changed = {k for k in hashes(panel.state).keys() | state_files.keys()
                   if hashes(panel.state).get(k) != state_files.get(k)}
        assert changed == {"incidents.json"}  # only the incident file, rewritten in place at its size
        assert (panel.state / "incidents.json").stat().st_size == 4096
        os.truncate(filler, filler.stat().st_size - 64 * 1024)  # a little space, still under the margin
        third = json.loads(run_cli("maintenance", "run", "--json", config=panel.config).out)
        assert "(64 KB free)" in third["disk"][0]["message"]
        assert [n["result"] for n in third["notifications"]] == ["already sent"]  # the same incident
        assert len(inbox.messages) == 1

        filler.unlink()  # the incident ends; the next run works and forgets it
        healthy = run_cli("maintenance", "run", "--json", config=panel.config)
        assert json.loads(healthy.out)["disk"] == []
        assert len(inbox.messages) == 1

        filler = fill(small_disk)  # a new incident: one new mail
        run_cli("maintenance", "run", config=panel.config)
        assert len(inbox.messages) == 2
        filler.unlink()


def expired_bundle_pem(directory: Path) -> tuple[bytes, bytes]:
    """An expired certificate for the hostname and its key, as files put in place outside svcssl would be."""
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(13), not_before=pki.NOW - timedelta(days=30),
                        not_after=pki.NOW - timedelta(days=1))
    return pki.pem(leaf) + pki.pem(ca.intermediate), pki.key_pem(key)


def test_a_read_only_target_is_refused_before_anything_is_written(run_cli, panel, tmp_path):
    cert_file, key_file, _ = new_bundle(tmp_path)
    exim = panel.etc / "exim"
    crt, key = expired_bundle_pem(tmp_path)
    (exim / "exim.crt").write_bytes(crt)  # expired: the maintenance run must try to replace it
    (exim / "exim.key").write_bytes(key)
    with read_only_bind(exim, exim):
        live, state_files = hashes(panel.etc), listing(panel.state)
        for argv in (("install", "exim", "--cert", str(cert_file), "--key", str(key_file)), ("reset", "exim"),
                     ("install", "dovecot", "exim", "--cert", str(cert_file), "--key", str(key_file))):
            result = run_cli(*argv, config=panel.config)
            assert result.code == 2, (argv, result.err)
            assert (f"The file system holding {exim / 'exim.key'} (mounted on {exim}) is read-only. "
                    f"Remount it read-write (mount -o remount,rw {exim}) and run the command again.") in result.err
            no_trace(result.err)
            assert hashes(panel.etc) == live  # dovecot untouched too: every target is checked first
            assert listing(panel.state) == state_files

        run = run_cli("maintenance", "run", "--json", config=panel.config)
        report = {s["service"]: s for s in json.loads(run.out)["services"]}
        assert run.code == 1
        assert report["exim"]["outcome"] == "failed" and "is read-only" in report["exim"]["detail"]
        assert hashes(panel.etc)["exim/exim.crt"] == live["exim/exim.crt"]


@pytest.fixture
def ext4_disk(tmp_path):
    with ext4(tmp_path / "ext4", tmp_path / "ext4.img") as point:
        yield point
        subprocess.run(["chattr", "-R", "-i", str(point)], capture_output=True)


def test_an_immutable_target_file_is_refused_naming_it(run_cli, ext4_disk, tmp_path):
    panel = make_panel(ext4_disk)
    cert_file, key_file, _ = new_bundle(tmp_path)
    target = panel.etc / "exim" / "exim.crt"
    subprocess.run(["chattr", "+i", str(target)], check=True)
    live, state_files = hashes(panel.etc), listing(panel.state)
    result = run_cli("install", "exim", "--cert", str(cert_file), "--key", str(key_file), config=panel.config)
    assert result.code == 2, result.err
    assert (f"{target} is immutable (chattr +i), so svcssl cannot replace it. Remove the flag with "
            f"`chattr -i {target}` and run the command again.") in result.err
    assert hashes(panel.etc) == live and listing(panel.state) == state_files
    subprocess.run(["chattr", "-i", str(target)], check=True)
    assert run_cli("install", "exim", "--cert", str(cert_file), "--key", str(key_file), config=panel.config).code == 0


def test_full_target_file_system_is_refused_naming_it(run_cli, small_disk, tmp_path):
    etc = small_disk / "etc"
    config = write_config(tmp_path / "svcssl.toml", state_dir=tmp_path / "state", services={
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"),
                    "key_file": str(etc / "dovecot/key.pem")}})
    assert run_cli("list", "--no-probe", config=config).code == 0
    cert_file, key_file, _ = new_bundle(tmp_path)
    filler = fill(small_disk)
    live, state_files = hashes(etc), listing(tmp_path / "state")
    result = run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file), config=config)
    assert result.code == 2, result.err
    assert f"The file system holding {etc / 'dovecot'} (mounted on {small_disk}) is full (0 bytes free" in result.err
    assert hashes(etc) == live and listing(tmp_path / "state") == state_files
    filler.unlink()
    assert run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file), config=config).code == 0


def test_a_disk_that_fills_during_the_deployment_is_undone_and_never_recorded(run_cli, small_disk, tmp_path):
    """The preflight passes; the reload fills the state directory's file system, so recording the install fails:
    the previous files are put back from the journal and the store still calls the old certificate active."""
    state = small_disk / "state"
    etc = tmp_path / "etc"
    filler = small_disk / "filler"
    config = write_config(tmp_path / "svcssl.toml", state_dir=state, services={
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"), "key_file": str(etc / "dovecot/key.pem"),
                    "reload": ["sh", "-c", f"cat /dev/zero > {filler} 2>/dev/null; true"]}})
    before = json.loads(run_cli("list", "--json", "--no-probe", config=config).out)[0]
    cert_file, key_file, new_fp = new_bundle(tmp_path)
    live = hashes(etc)
    result = run_cli("install", "dovecot", "--cert", str(cert_file), "--key", str(key_file), config=config)
    assert result.code == 1, result.err
    assert "FAILED at activate" in result.err and "the previous certificate was put back" in result.err
    no_trace(result.err)
    assert hashes(etc) == live
    filler.unlink()  # space back: the store never recorded the install that did not happen
    after = json.loads(run_cli("list", "--json", "--no-probe", config=config).out)[0]
    assert after["active_fingerprint"] == before["active_fingerprint"] == after["fingerprint"] != new_fp
    assert not (state / "journal" / "dovecot").exists()


def test_a_read_only_state_directory_still_reads_and_says_why_it_cannot_write(run_cli, panel, root, tmp_path):
    assert run_cli("list", "--no-probe", config=panel.config).code == 0
    confirm = root.get(PAGE + "/reset/exim")  # logged in, before the file system turns read-only
    (tmp_path / "password").write_text("a-new-password-1\n")
    with read_only_bind(panel.state, panel.state):
        live, state_files = hashes(panel.etc), hashes(panel.state)
        listed = run_cli("list", "--no-probe", config=panel.config)
        assert listed.code == 0 and "dovecot" in listed.out
        assert f"Changes are impossible now: The file system holding {panel.state} is read-only." in listed.err
        for argv in (("reset", "exim"), ("user", "passwd", "root", "--password-file", str(tmp_path / "password"))):
            result = run_cli(*argv, config=panel.config)
            assert result.code == 2, (argv, result.err)
            assert "is read-only. Remount it read-write (mount -o remount,rw" in result.err
            no_trace(result.err)
        table = root.get(PAGE)
        assert table.status_code == 200 and "is read-only" in table.text and "dovecot" in table.text
        refused = root.post(PAGE + "/reset/exim", data={"csrf_token": csrf_token(confirm.text)})
        assert refused.status_code == 503 and "is read-only. Remount it read-write" in refused.text
        assert hashes(panel.etc) == live and hashes(panel.state) == state_files


def test_in_chromium_the_table_and_details_work_on_a_full_disk_and_a_reset_is_refused_in_words(
        small_disk, start_panel, context, shots):
    panel = make_panel(small_disk)
    server = start_panel(panel.config)
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)  # logged in before the disk fills
    filler = fill(small_disk)
    live = hashes(panel.etc)

    page.goto(server.url + PAGE)
    banner = page.locator("#read-only")
    assert banner.is_visible()
    assert f"The file system holding {panel.state}" in banner.inner_text() and "is full (" in banner.inner_text()
    for service in ("cpanel", "dovecot", "exim", "ftp"):
        assert row(page, service).is_visible()
    shots(page, "full-disk-table")
    row(page, "dovecot").get_by_role("link", name="Certificate Details").click()
    page.wait_for_load_state()
    assert "dovecot" in page.locator("main").inner_text() and page.locator("#read-only").is_visible()

    page.goto(server.url + PAGE)
    row(page, "exim").get_by_role("link", name="Reset Certificate").click()
    page.get_by_role("button", name="Reset Certificate").click()
    page.wait_for_load_state()
    text = page.locator("main").inner_text()
    assert "is full (" in text and "Free some space" in text and "Internal error" not in text
    shots(page, "full-disk-reset-refused")
    assert hashes(panel.etc) == live

    filler.unlink()
    page.goto(server.url + PAGE)
    assert page.locator("#read-only").count() == 0


def test_a_service_added_while_the_disk_is_full_waits_and_the_others_still_read(run_cli, small_disk):
    panel = make_panel(small_disk)
    filler = fill(small_disk)
    postfix = panel.etc / "postfix"
    with open(panel.config, "a") as config:  # a service configured now, never set up
        config.write(f'\n[services.postfix]\nkind = "generic"\ncert_file = "{postfix}/cert.pem"\n'
                     f'key_file = "{postfix}/key.pem"\n')
    live = hashes(panel.etc)
    listed = run_cli("list", "--json", "--no-probe", config=panel.config)
    assert listed.code == 0, listed.err
    rows = {r["service"]: r for r in json.loads(listed.out)}
    assert rows["postfix"]["fingerprint"] is None and rows["dovecot"]["fingerprint"]
    assert "No such file" in rows["postfix"]["problem"]  # said in the table: it has no certificate yet
    no_trace(listed.err)
    assert hashes(panel.etc) == live
    filler.unlink()  # space back: the next command sets it up with no other step
    rows = {r["service"]: r for r in json.loads(run_cli("list", "--json", "--no-probe", config=panel.config).out)}
    assert rows["postfix"]["fingerprint"] and rows["postfix"]["active_fingerprint"] == rows["postfix"]["fingerprint"]
