"""The maintenance run with short certificates and several CAs, all real: two pebbles (the first refusing, the
second issuing 10-minute certificates behind the recording proxy that adds profiles and ARI), a real DNS server
for the hostname and CAA, a real SMTP server for the mail. The clock is the only thing moved."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509

from support.config import require_binaries, write_config
from servers.acme_proxy import start_acme_proxy
from servers.dns import start_dns_server
from servers.pebble import free_port, start_pebble
from servers.smtp import smtp_inbox
from svcssl.acme import ari_cert_id
from svcssl.maintenance.facts import certificate_facts
from svcssl.maintenance.run import run_maintenance
from svcssl.operations.context import open_context
from svcssl.operations.firstrun import ensure_certificates
from svcssl.operations.inventory import list_services
from svcssl.settings import load_settings
from svcssl.x509.inspect import fingerprint

HOST = "mail.example.test"
LIFETIME = 600  # seconds: pebble's certificateValidityPeriod; under 10 days, so renewed at half
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
PROFILES = {"classic": "90 days", "tlsserver": "45 days", "shortlived": "160 hours"}


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    """(refusing pebble: EAB required and svcssl has no key, issuing pebble), validating HTTP-01 on one port."""
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    port = free_port()
    quiet = {"PEBBLE_WFE_NONCEREJECT": "0"}
    refusing = start_pebble(tmp_path_factory.mktemp("pebble-a"), port, eab_keys={"kid-1": EAB_HMAC}, env=quiet)
    try:
        issuing = start_pebble(tmp_path_factory.mktemp("pebble-b"), port, env=quiet, validity_seconds=LIFETIME)
    except BaseException:
        refusing.stop()
        raise
    yield refusing, issuing
    issuing.stop()
    refusing.stop()


@pytest.fixture
def proxy(cas):
    running = start_acme_proxy(cas[1], profiles=dict(PROFILES))
    yield running
    running.stop()


@pytest.fixture
def dns_server():
    server = start_dns_server({HOST: {"A": ["127.0.0.1"]}})
    yield server
    server.stop()


@pytest.fixture
def inbox():
    with smtp_inbox() as running:
        yield running, running.port


def make_config(tmp_path: Path, cas, proxy, dns_server, smtp_port: int, *, first=None,
                acme_extra: str = "") -> Path:
    """Two [[acme.ca]]: the refusing pebble (or ``first``, a proxy in front of the issuing one), then ``proxy``."""
    refusing, issuing = cas
    etc = tmp_path / "etc"
    services = {"exim": {"kind": "exim", "cert_file": str(etc / "exim.crt"), "key_file": str(etc / "exim.key")},
                "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "pure-ftpd.pem")}}
    extra = f"""
[acme]
email = "hostmaster@example.test"
http01_listen = "127.0.0.1:{issuing.http01_port}"
key_type = "ecdsa-p256"
{acme_extra}

[[acme.ca]]
directory = "{first.directory_url if first else refusing.directory_url}"
verify = "{issuing.ca_file if first else refusing.ca_file}"
caa_identities = ["ca-a.test"]

[[acme.ca]]
directory = "{proxy.directory_url}"
verify = "{issuing.ca_file}"
caa_identities = ["ca-b.test"]

[dns]
nameservers = ["{dns_server.nameserver}"]
timeout = 2

[notify]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
recipient = "admin@example.test"
"""
    path = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services=services,
                        anchors=[refusing.roots_pem(), issuing.roots_pem()])
    text = path.read_text().replace(f'hostname = "{HOST}"', f'hostname = "{HOST}"\nmain_ip = "127.0.0.1"')
    path.write_text(text + extra)
    return path


def open_ctx(config: Path, clock=None):
    ctx = open_context(load_settings(config), clock) if clock else open_context(load_settings(config))
    ensure_certificates(ctx)
    return ctx


def exim_leaf(ctx) -> x509.Certificate:
    status = next(s for s in list_services(ctx) if s.service.name == "exim")
    return status.installed.leaf


def test_a_refusing_ca_is_skipped_the_next_issues_and_the_admin_hears_of_the_fallback_once(
        cas, proxy, dns_server, inbox, tmp_path, run_cli):
    config = make_config(tmp_path, cas, proxy, dns_server, inbox[1], acme_extra='profile = "shortlived"')
    ctx = open_ctx(config)
    report = run_maintenance(ctx)
    assert report.ok, report.summary
    order = report.order
    assert [a["outcome"] for a in order["attempts"]] == ["failed", "issued"]
    assert order["attempts"][0]["directory"] == cas[0].directory_url
    assert "External Account Binding" in order["attempts"][0]["reason"]
    assert order["directory"] == proxy.directory_url and order["fallback_used"] is True
    assert order["profile"] == "shortlived" and [o.get("profile") for o in proxy.orders] == ["shortlived"]
    leaf = exim_leaf(ctx)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(seconds=LIFETIME)
    assert ctx.store.acme_certificate(fingerprint(leaf)) == (
        proxy.directory_url, "shortlived")
    (mail,) = inbox[0].messages
    assert mail["Subject"] == f"[{HOST}] The hostname certificate came from a fallback CA"
    body = mail.get_payload(decode=True).decode()
    assert cas[0].directory_url in body and "What to do" in body and "External Account Binding" in body
    listed = {s["service"]: s for s in json.loads(run_cli("list", "--json", config=config).out)}
    assert listed["exim"]["profile"] == "shortlived" and listed["ftp"]["profile"] == "shortlived"
    from support.panel import ROOT_PASSWORD
    from support.web import logged_in
    from svcssl.app import create_app
    from svcssl.operations.users import create_user

    create_user(ctx, "root", "root", ROOT_PASSWORD, actor="test")
    client = logged_in(create_app(load_settings(config), live_check_ttl=0), "root", ROOT_PASSWORD)
    details = client.get("/scripts2/manageservicecrts/details/exim").text
    assert '<dt>ACME profile</dt><dd id="acme-profile">shortlived</dd>' in details


def test_caa_forbidding_the_first_ca_skips_it(cas, proxy, dns_server, inbox, tmp_path):
    dns_server.set_zone({HOST: {"A": ["127.0.0.1"]}, "example.test": {"CAA": [(0, "issue", "ca-b.test")]}})
    ctx = open_ctx(make_config(tmp_path, cas, proxy, dns_server, inbox[1]))
    report = run_maintenance(ctx)
    assert report.ok and report.hostname["blocker"] is None
    assert list(report.hostname["caa_forbidden"]) == [cas[0].directory_url]
    skipped, issued = report.order["attempts"]
    assert skipped["outcome"] == "skipped" and "CAA forbids it" in skipped["reason"] and "ca-b.test" in skipped["reason"]
    assert issued == {"directory": proxy.directory_url, "outcome": "issued", "reason": "issued"}
    assert len(proxy.orders) == 1

    dns_server.set_zone({HOST: {"A": ["127.0.0.1"]}, "example.test": {"CAA": [(0, "issue", "other.test")]}})
    ctx.store.set_order_backoff(None, HOST)
    later = datetime.now(timezone.utc) + timedelta(seconds=LIFETIME * 0.6)  # due again; every CA forbidden now
    report = run_maintenance(open_ctx(make_config(tmp_path, cas, proxy, dns_server, inbox[1]), lambda: later))
    assert report.order is None and 'IN CAA 0 issue "ca-a.test"' in report.hostname["blocker"]


def test_a_rate_limited_ca_is_remembered_until_its_retry_after(cas, proxy, dns_server, inbox, tmp_path):
    limited = start_acme_proxy(cas[1], refuse_order=lambda payload: (
        429, "rateLimited", "too many new orders recently", {"Retry-After": "7200"}))
    try:
        config = make_config(tmp_path, cas, proxy, dns_server, inbox[1], first=limited)
        ctx = open_ctx(config)
        report = run_maintenance(ctx)
        first, second = report.order["attempts"]
        assert first["outcome"] == "failed" and "too many new orders" in first["reason"]
        assert "asked us to wait until" in first["reason"] and second["outcome"] == "issued"
        until, why = ctx.store.ca_wait(limited.directory_url)
        assert timedelta(seconds=7100) < until - datetime.now(timezone.utc) <= timedelta(seconds=7200)
        assert "too many new orders" in why

        later = datetime.now(timezone.utc) + timedelta(seconds=LIFETIME * 0.6)  # due again, well before the wait ends
        report = run_maintenance(open_ctx(config, lambda: later))
        first, second = report.order["attempts"]
        assert first["outcome"] == "skipped" and "asked us to wait until" in first["reason"]
        assert second["outcome"] == "issued"
        assert len(limited.orders) == 1  # the limited CA was not asked again
    finally:
        limited.stop()


def test_short_certificates_renew_at_half_their_lifetime_with_replaces_and_no_mail(
        cas, proxy, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, cas, proxy, dns_server, inbox[1])
    ctx = open_ctx(config)
    run_maintenance(ctx)
    first = exim_leaf(ctx)
    issued_at = first.not_valid_before_utc
    early = issued_at + timedelta(seconds=LIFETIME / 2 - 30)
    report = run_maintenance(open_ctx(config, lambda: early))
    assert report.order is None and {s.action for s in report.services} == {"none"}
    assert all(s.verdict == "ok" for s in report.services)

    on_time = issued_at + timedelta(seconds=LIFETIME / 2 + 30)
    report = run_maintenance(open_ctx(config, lambda: on_time))
    assert report.ok and report.order["ok"], report.summary
    exim = {s.service: s for s in report.services}["exim"]
    assert exim.verdict == "expiring" and "less than half of its lifetime remains" in exim.reason
    assert proxy.orders[-1]["replaces"] == ari_cert_id(first) and report.order["replaces"] == ari_cert_id(first)
    assert exim_leaf(ctx).serial_number != first.serial_number
    assert [m["Subject"] for m in inbox[0].messages if "expire" in m["Subject"]] == []  # renewed on time: no mail


def test_the_ari_moment_is_chosen_once_inside_the_window_and_decides(cas, proxy, dns_server, inbox, tmp_path):
    config = make_config(tmp_path, cas, proxy, dns_server, inbox[1])
    ctx = open_ctx(config)
    run_maintenance(ctx)
    leaf = exim_leaf(ctx)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    window = (now + timedelta(seconds=60), now + timedelta(seconds=180))
    proxy.windows[ari_cert_id(leaf)] = window
    status = next(s for s in list_services(ctx) if s.service.name == "exim")
    facts = certificate_facts(ctx, status.installed)
    assert facts.renewal_window == window and window[0] <= facts.renewal_at <= window[1]
    assert certificate_facts(ctx, status.installed).renewal_at == facts.renewal_at  # chosen once, kept
    report = run_maintenance(open_ctx(config, lambda: now))
    fp = status.fingerprint
    assert report.certificates[fp]["renewal_at"] == facts.renewal_at.isoformat()
    assert report.order is None  # the window has not opened: not due, although the lifetime rule says nothing else

    after = facts.renewal_at + timedelta(seconds=1)
    report = run_maintenance(open_ctx(config, lambda: after))
    exim = {s.service: s for s in report.services}["exim"]
    assert "ACME Renewal Information" in exim.reason and exim.action == "installed the hostname certificate"


def test_a_failing_renewal_mails_once_only_when_a_third_of_the_lifetime_is_left(cas, dns_server, inbox, tmp_path):
    failing = start_acme_proxy(cas[1], refuse_order=lambda payload: (
        500, "serverInternal", "the CA is having a bad day", {}) if "replaces" in payload else None)
    try:
        config = make_config(tmp_path, cas, failing, dns_server, inbox[1])
        ctx = open_ctx(config)
        assert run_maintenance(ctx).order["ok"]
        inbox[0].messages.clear()  # the fallback notice
        issued_at = exim_leaf(ctx).not_valid_before_utc
        on_time = issued_at + timedelta(seconds=LIFETIME / 2 + 20)  # due, and it fails: the run tries again
        report = run_maintenance(open_ctx(config, lambda: on_time))
        assert report.order["ok"] is False and inbox[0].messages == []
        ctx.store.set_order_backoff(None, HOST)
        late = issued_at + timedelta(seconds=LIFETIME * 2 / 3 + 20)  # under a third left, still failing
        report = run_maintenance(open_ctx(config, lambda: late))
        assert report.order["ok"] is False
        assert inbox[0].subjects == [f"[{HOST}] Ordering the hostname certificate failed"]
        body = inbox[0].messages[0].get_payload(decode=True).decode()
        assert "the CA is having a bad day" in body and "What to do" in body
        assert "exim: expires on" in body and "ftp: expires on" in body  # one mail names every service waiting
    finally:
        failing.stop()


def test_maintenance_next_names_the_moment_and_the_reason(cas, proxy, dns_server, inbox, tmp_path, run_cli):
    config = make_config(tmp_path, cas, proxy, dns_server, inbox[1])
    ctx = open_ctx(config)
    run_maintenance(ctx)
    leaf = exim_leaf(ctx)
    half = leaf.not_valid_after_utc - (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
    result = run_cli("maintenance", "next", "--json", config=config)
    wake = json.loads(result.out)
    assert datetime.fromisoformat(wake["at"]) == half.replace(microsecond=0)
    assert wake["service"] == "exim" and wake["reason"].startswith("exim: renewal due ")
    assert "less than half of its lifetime remains" in wake["reason"]
    text = run_cli("maintenance", "next", config=config).out
    assert text.startswith(f"Next run: {half:%Y-%m-%d %H:%M} UTC — exim: ")


def test_under_serve_the_scheduler_wakes_when_a_certificate_becomes_due(cas, dns_server, inbox, tmp_path):
    """A 60-second certificate is due at 30 s: the scheduler plans a one-off run then, which renews it."""
    import time
    from svcssl.maintenance.scheduler import start_scheduler, wakeup_job

    short = start_pebble(tmp_path / "pebble-short", free_port(), env={"PEBBLE_WFE_NONCEREJECT": "0"},
                         validity_seconds=60)
    front = start_acme_proxy(short)
    scheduler = None
    try:
        config = make_config(tmp_path, (cas[0], short), front, dns_server, inbox[1])
        config.write_text(config.read_text() + '\n[maintenance]\nschedule = "17 3 * * *"\n')
        settings = load_settings(config)
        ctx = open_ctx(config)
        run_maintenance(ctx)
        first = exim_leaf(ctx)
        scheduler = start_scheduler(settings)
        deadline = time.monotonic() + 10  # planned in the scheduler's thread, right after the start
        while time.monotonic() < deadline and wakeup_job(scheduler) is None:
            time.sleep(0.1)
        job = wakeup_job(scheduler)
        assert job is not None, "no wake-up planned"
        due = first.not_valid_before_utc + timedelta(seconds=30)
        assert due <= job.next_run_time <= max(due, datetime.now(timezone.utc)) + timedelta(seconds=31)
        assert "exim: renewal due" in job.name
        assert scheduler.get_job("maintenance").next_run_time.strftime("%H:%M") == "03:17"  # the daily run stays
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(r.trigger == "wakeup" for r in ctx.store.runs(5)):
            time.sleep(0.5)
        woken = [r for r in ctx.store.runs(5) if r.trigger == "wakeup"]
        assert woken and woken[-1].report["order"]["ok"] is True
        assert exim_leaf(ctx).serial_number != first.serial_number
        renewed = exim_leaf(ctx)
        deadline = time.monotonic() + 10  # …and the next wake-up is planned for the new certificate
        while time.monotonic() < deadline and (wakeup_job(scheduler) is None
                                               or wakeup_job(scheduler).next_run_time <= renewed.not_valid_before_utc):
            time.sleep(0.2)
        assert wakeup_job(scheduler).next_run_time > renewed.not_valid_before_utc
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        front.stop()
        short.stop()


def test_the_maintenance_page_shows_the_next_run_as_the_cli_does(root, panel, run_cli):
    """A certificate from another CA reaching the 20-day expiry-mail threshold before the daily run: that is next."""
    import html
    import re

    from support import pki
    from svcssl.maintenance.wakeup import daily_run
    from svcssl.operations.install import install_certificate

    now = datetime.now(timezone.utc)
    halfway = (daily_run(panel.settings.maintenance.schedule, now) - now) / 2
    ca = pki.pki()
    leaf, key = ca.leaf([panel.settings.server.hostname], key=pki.rsa_key(31), not_before=now - timedelta(days=60),
                        not_after=now + timedelta(days=20) + halfway)
    ctx = open_context(panel.settings)
    prepared, outcomes = install_certificate(ctx, ["exim"], pki.pem(leaf, ca.intermediate) + pki.key_pem(key),
                                             actor="test")
    assert outcomes[0].ok
    threshold = leaf.not_valid_after_utc - timedelta(days=20)
    cli = run_cli("maintenance", "next", config=panel.config).out.strip()
    assert cli == (f"Next run: {threshold:%Y-%m-%d %H:%M} UTC — exim: expiry mail threshold (20 days) "
                   f"{threshold:%Y-%m-%d %H:%M} UTC")
    page = root.get("/scripts2/maintenance").text
    shown = re.search(r'<section class="card" id="next-run">.*?<p><strong>(.*?)</strong> — (.*?)\.</p>', page, re.S)
    assert shown and f"Next run: {shown.group(1)} — {html.unescape(shown.group(2))}" == cli


def test_the_home_banner_is_silent_while_the_run_renews_on_time(root, panel):
    from support import pki
    from svcssl.operations.install import install_certificate

    ca = pki.pki()
    ctx = open_context(panel.settings)
    now = datetime.now(timezone.utc)
    for slot, left, shown in ((32, timedelta(days=22), False), (33, timedelta(days=15), True)):
        leaf, key = ca.leaf([panel.settings.server.hostname], key=pki.rsa_key(slot),
                            not_before=now + left - timedelta(days=90), not_after=now + left)
        ctx.store.record_acme_certificate(fingerprint(leaf), "https://acme.example/dir", now)  # "ordered by us"
        assert install_certificate(ctx, ["exim"], pki.pem(leaf, ca.intermediate) + pki.key_pem(key),
                                   actor="test")[1][0].ok
        page = root.get("/scripts2/manageservicecrts").text
        assert ('“exim” expires in' in page) is shown, left  # 22 days: due (under 25) and on time: no banner
        assert 'data-code="expiring"' in root.get("/scripts2/manageservicecrts/details/exim").text


def test_an_unreachable_ca_is_passed_over(cas, proxy, dns_server, inbox, tmp_path):
    class Closed:  # nothing listens there
        directory_url = f"https://127.0.0.1:{free_port()}/dir"

    ctx = open_ctx(make_config(tmp_path, cas, proxy, dns_server, inbox[1], first=Closed))
    report = run_maintenance(ctx)
    first, second = report.order["attempts"]
    assert first["outcome"] == "failed" and "cannot reach the ACME server" in first["reason"]
    assert second["outcome"] == "issued" and report.ok
    assert ctx.store.ca_wait(Closed.directory_url) is None  # no Retry-After: tried first again next time


def test_a_run_from_the_panel_replans_the_wake_up(cas, proxy, dns_server, inbox, tmp_path):
    import time
    from support.panel import ROOT_PASSWORD, csrf_token
    from support.web import logged_in
    from svcssl.app import create_app
    from svcssl.maintenance.scheduler import start_scheduler, wakeup_job
    from svcssl.operations.users import create_user

    config = make_config(tmp_path, cas, proxy, dns_server, inbox[1])
    config.write_text(config.read_text() + '\n[maintenance]\nschedule = "17 3 * * *"\n')
    settings = load_settings(config)
    ctx = open_ctx(config)
    create_user(ctx, "root", "root", ROOT_PASSWORD, actor="test")
    scheduler = start_scheduler(settings)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and scheduler.get_job("wakeup-plan") is not None:
            time.sleep(0.1)
        time.sleep(0.5)  # (the plan job is removed as it starts: let it finish)
        assert wakeup_job(scheduler) is None  # self-signed everywhere: the daily run is next
        client = logged_in(create_app(settings, live_check_ttl=0), "root", ROOT_PASSWORD)
        page = client.get("/scripts2/maintenance")
        assert client.post("/scripts2/maintenance/run", data={"csrf_token": csrf_token(page.text)}).status_code == 303
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and wakeup_job(scheduler) is None:
            time.sleep(0.2)
        leaf = exim_leaf(ctx)
        half = leaf.not_valid_after_utc - (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
        assert wakeup_job(scheduler).next_run_time.replace(microsecond=0) == half.replace(microsecond=0)
    finally:
        scheduler.shutdown(wait=True)
