"""/metrics with the real tools: promtool checks a real scrape of the running panel and a real Prometheus server
scrapes it with a metrics token; refusals name nothing; the values agree with the one assessment, the store's
runs and the audit log."""

from __future__ import annotations

import html
import json
import re
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from support import pki
from support.config import REPO_ROOT, require_binaries
from support.panel import HOST, csrf_token, make_panel
from support.process import PanelProcess
from support.serve import https_session
from support.wait import wait_until
from servers.dns import start_dns_server
from servers.pebble import start_pebble
from servers.ports import free_port
from servers.prometheus import start_prometheus
from svcssl.app import create_app
from svcssl.errors import ConfigError
from svcssl.maintenance.metrics import exposition
from svcssl.maintenance.run import run_maintenance
from svcssl.operations.context import open_context
from svcssl.operations.install import install_certificate
from svcssl.operations.tokens import create_token, revoke_token
from svcssl.operations.users import set_service_ssl_privilege
from svcssl.settings import load_settings
from svcssl.statedir import NO_MANAGEMENT

SERVICES = ("cpanel", "dovecot", "exim", "ftp")
RULES = REPO_ROOT / "contrib/prometheus/svcssl.rules.yml"
NAMED_NOTHING = (*SERVICES, HOST, "svcssl_")


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value of every sample in an exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    """The one sample ``name`` whose labels include ``labels`` (None when there is none)."""
    matches = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) <= 1, (name, labels, matches)
    return matches[0] if matches else None


def not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()


def promtool_check_metrics(body: bytes) -> None:
    checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked


def assert_names_nothing(text: str) -> None:
    for word in NAMED_NOTHING:
        assert word not in text, (word, text)
    assert "Traceback" not in text


# --- the real tools against the running panel ----------------------------------------------------


def test_a_real_prometheus_scrapes_the_running_panel_with_a_metrics_token(tmp_path, run_cli):
    require_binaries("prometheus", "promtool", install="bash scripts/test.sh")
    panel_process = PanelProcess(tmp_path / "svcssl.toml", tmp_path / "serve.log")  # its port, for the probe
    closed = free_port()  # nothing listens there: dovecot's port is "unreachable"
    panel = make_panel(tmp_path, extra_services={
        "cpanel": {"kind": "panel", "cert_file": str(tmp_path / "etc/panel/cert.pem"),
                   "key_file": str(tmp_path / "etc/panel/key.pem"), "chain_file": str(tmp_path / "etc/panel/chain.pem"),
                   "probe": f"tls://127.0.0.1:{panel_process.port}"},
        "dovecot": {"kind": "dovecot", "cert_file": str(tmp_path / "etc/dovecot/cert.pem"),
                    "key_file": str(tmp_path / "etc/dovecot/key.pem"), "probe": f"tls://127.0.0.1:{closed}"},
    })
    created = run_cli("token", "create", "root", "--name", "prometheus", "--metrics-only", config=panel.config)
    assert created.code == 0, created.err
    token = created.out.strip().splitlines()[-1]
    api_token = run_cli("token", "create", "root", "--name", "scripts", config=panel.config).out.strip().splitlines()[-1]
    listed = json.loads(run_cli("token", "list", "--json", config=panel.config).out)
    assert {t["name"]: t["kind"] for t in listed} == {"prometheus": "metrics", "scripts": "api"}
    files = {name: Path(panel.settings.services[name].cert_file or panel.settings.services[name].combined_file)
             for name in SERVICES}
    panel_process.start()
    prometheus = None
    try:
        session = https_session()
        url = panel_process.url + "/metrics"
        # refused over the real socket: no token, an ordinary API token, a wrong one; the body names nothing
        for headers, status in (({}, 401), ({"Authorization": f"Bearer {api_token}"}, 403),
                                ({"Authorization": "Bearer NOT-A-TOKEN"}, 401),
                                ({"Authorization": f"whm root:{token}"}, 401)):
            refused = session.get(url, headers=headers, timeout=10)
            assert refused.status_code == status, (headers, refused.status_code, refused.text)
            assert_names_nothing(refused.text)
        bearer = {"Authorization": f"Bearer {token}"}

        def probed() -> bool:  # `svcssl serve` probes every port as it starts
            found = samples(session.get(url, headers=bearer, timeout=10).text)
            return value(found, "svcssl_probe_timestamp_seconds", service="dovecot") is not None

        assert wait_until(probed, timeout=20), panel_process.output()
        scrape = session.get(url, headers=bearer, timeout=10)
        assert scrape.status_code == 200 and scrape.headers["Content-Type"].startswith("text/plain")
        promtool_check_metrics(scrape.content)
        found = samples(scrape.text)
        for name in SERVICES:
            assert value(found, "svcssl_certificate_not_after_timestamp_seconds", service=name) == not_after(files[name])
        assert value(found, "svcssl_served_certificate_matches", service="cpanel") == 1  # the panel serves it
        assert value(found, "svcssl_served_certificate_matches", service="dovecot") == 0  # nothing listens
        assert value(found, "svcssl_served_certificate_matches", service="exim") is None  # no probe configured

        # a real Prometheus scrapes it: bearer token from a file, the panel's certificate as the CA, the rules loaded
        token_file = tmp_path / "prometheus-token"
        token_file.write_text(token + "\n")
        prometheus = start_prometheus(tmp_path / "prometheus", [{
            "job_name": "svcssl", "scheme": "https",
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            "tls_config": {"ca_file": str(files["cpanel"]), "server_name": HOST},
            "static_configs": [{"targets": [f"127.0.0.1:{panel_process.port}"]}],
        }], rule_files=[RULES])

        def scraped() -> list[dict]:
            return prometheus.query("svcssl_certificate_not_after_timestamp_seconds")

        assert wait_until(lambda: len(scraped()) == len(SERVICES), timeout=30), prometheus.output()
        for result in scraped():
            labels = result["metric"]
            assert labels["job"] == "svcssl" and labels["subject_cn"] == HOST
            assert float(result["value"][1]) == not_after(files[labels["service"]]), result
        assert [r["value"][1] for r in prometheus.query('up{job="svcssl"}')] == ["1"]

        # the shipped rules evaluate against the real series: every rule healthy; self-signed certificates
        # (verdict replace) and the unreachable dovecot make their alerts pending
        def pending() -> set[tuple[str, str]]:
            alerts = prometheus.get("/api/v1/alerts")["alerts"]
            return {(a["labels"]["alertname"], a["labels"].get("service", "")) for a in alerts}

        expected = {("SvcsslCertificateNeedsAction", name) for name in SERVICES}
        expected.add(("SvcsslServedCertificateDiffers", "dovecot"))
        assert wait_until(lambda: pending() >= expected, timeout=30), (pending(), prometheus.output())
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(rules) == 6 and all(r["health"] == "ok" for r in rules), rules
    finally:
        if prometheus is not None:
            prometheus.stop()
        panel_process.stop()


def test_promtool_checks_and_unit_tests_the_shipped_rules():
    require_binaries("promtool", install="bash scripts/test.sh")
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, checked
    tested = subprocess.run(["promtool", "test", "rules", RULES.with_name("svcssl.rules.test.yml").name],
                            capture_output=True, text=True, timeout=120, cwd=RULES.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_readme_scrape_config_passes_promtool_check_config(tmp_path):
    """The README's Prometheus configuration, with its paths moved under tmp_path, is what promtool accepts, and
    it names the job the rules expect."""
    require_binaries("promtool", install="bash scripts/test.sh")
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Monitoring"):]
    section = section[:section.index("\n## ")]
    assert "--metrics-only" in section and "check --nagios" in section
    block = section[section.index("    rule_files:"):]
    block = "\n".join(line[4:] for line in block[:block.index("\n\n")].splitlines())
    assert "job_name: svcssl" in block and 'job="svcssl"' in RULES.read_text()
    (tmp_path / "svcssl.rules.yml").write_bytes(RULES.read_bytes())
    (tmp_path / "svcssl.token").write_text("TOKEN\n")
    config = tmp_path / "prometheus.yml"
    config.write_text(block.replace("/etc/prometheus/", f"{tmp_path}/"))
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS: 1 rule files found" in checked.stdout, checked


# --- who may read /metrics ---------------------------------------------------------------------


@pytest.fixture
def tokens(panel):
    ctx = open_context(panel.settings)
    _, metrics = create_token(ctx, "root", "prometheus", actor="test", metrics_only=True)
    _, api = create_token(ctx, "root", "scripts", actor="test")
    _, bobs = create_token(ctx, "bob", "bobs-metrics", actor="test", metrics_only=True)
    _, old = create_token(ctx, "root", "old", actor="test", metrics_only=True)
    revoke_token(ctx, "old", actor="test")
    yield {"metrics": metrics, "api": api, "bob": bobs, "revoked": old, "ctx": ctx}
    ctx.store.close()


def test_only_a_metrics_token_reads_metrics_and_refusals_name_nothing(client, tokens):
    for headers, status in (
        ({}, 401),
        ({"Authorization": f"Bearer {tokens['api']}"}, 403),  # an ordinary API token: valid, but not for this
        ({"Authorization": f"Bearer {tokens['revoked']}"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": f"Basic {tokens['metrics']}"}, 401),
        ({"Authorization": f"whm root:{tokens['api']}"}, 401),
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == status, (headers, response.status_code, response.text)
        assert response.mimetype == "text/plain"
        assert_names_nothing(response.text)
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['metrics']}"})
    assert response.status_code == 200 and "svcssl_certificate_not_after_timestamp_seconds{" in response.text
    assert client.get("/metrics", headers={"Authorization": f"Bearer {tokens['bob']}"}).status_code == 200
    set_service_ssl_privilege(tokens["ctx"], "bob", False, actor="test")  # bob may no longer see them
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert refused.status_code == 401
    assert_names_nothing(refused.text)


def test_the_json_api_refuses_a_metrics_token(client, tokens):
    refused = client.get("/json-api/fetch_service_ssl_components?api.version=1",
                         headers={"Authorization": f"whm root:{tokens['metrics']}"})
    assert refused.status_code == 403
    body = refused.json
    assert body["metadata"]["result"] == 0 and "data" not in body and "metrics-only" in body["metadata"]["reason"]
    allowed = client.get("/json-api/fetch_service_ssl_components?api.version=1",
                         headers={"Authorization": f"whm root:{tokens['api']}"})
    assert allowed.status_code == 200 and allowed.json["metadata"]["result"] == 1


def test_root_creates_a_metrics_token_on_the_tokens_page_and_it_reads_metrics(root, client):
    page = root.get("/scripts/tokens")
    created = root.post("/scripts/tokens", data={"csrf_token": csrf_token(page.text), "user": "root",
                                                 "name": "prometheus", "metrics_only": "y"})
    assert created.status_code == 303
    shown = root.get(created.headers["Location"])
    secret = re.search(r'id="new-token">([A-Z0-9]{32})<', shown.text).group(1)
    assert f"Authorization: Bearer {secret}" in shown.text  # the page shows how to scrape, not an API call
    row = re.search(r'<tr data-token="prometheus">.*?</tr>', shown.text, re.S).group(0)
    assert "metrics only" in row
    assert client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    refused = root.post("/scripts/tokens", data={"csrf_token": csrf_token(page.text), "user": "alice",
                                                 "metrics_only": "y"})
    assert refused.status_code == 400 and "grant the service-SSL privilege first" in html.unescape(refused.text)


def test_a_reseller_without_the_privilege_gets_no_metrics_token(panel, run_cli):
    before = run_cli("token", "list", "--json", config=panel.config).out
    refused = run_cli("token", "create", "alice", "--metrics-only", config=panel.config)
    assert refused.code == 2 and "grant the service-SSL privilege first" in refused.err
    assert run_cli("token", "list", "--json", config=panel.config).out == before


def test_addresses_in_allow_read_without_a_token_and_others_are_refused(tmp_path):
    panel = make_panel(tmp_path, extra='\n[metrics]\nallow = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]\n')
    client = create_app(panel.settings).test_client()
    for address, status in (("10.1.2.3", 200), ("192.0.2.7", 200), ("2001:db8::5", 200), ("::ffff:10.9.9.9", 200),
                            ("192.0.2.8", 401), ("127.0.0.1", 401), ("11.0.0.1", 401)):
        response = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
        assert response.status_code == status, (address, response.status_code)
        if status != 200:
            assert_names_nothing(response.text)
        else:
            assert 'service="exim"' in response.text
    # without the section even loopback needs the token
    (tmp_path / "plain").mkdir()
    plain = create_app(make_panel(tmp_path / "plain").settings).test_client()
    assert plain.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 401


def test_the_running_panel_lets_an_allowed_peer_scrape_without_a_token(tmp_path, start_panel):
    panel = make_panel(tmp_path, extra='\n[metrics]\nallow = ["127.0.0.0/8"]\n')
    served = start_panel(panel.config)
    scrape = https_session().get(served.url + "/metrics", timeout=10)
    assert scrape.status_code == 200 and 'svcssl_certificate_verdict{kind="exim"' in scrape.text


@pytest.mark.parametrize("allow", ['["10.0.0.0/33"]', '["mail.example.com"]', '[""]'])
def test_a_bad_allow_entry_is_refused_naming_the_key(tmp_path, allow):
    config = tmp_path / "svcssl.toml"
    config.write_text(f'[server]\nhostname = "{HOST}"\n\n[metrics]\nallow = {allow}\n')
    with pytest.raises(ConfigError, match=r"'metrics\.allow'.*not an address or network"):
        load_settings(config)


# --- what the values say -------------------------------------------------------------------------


def install(ctx, service: str, leaf, key, *chain) -> None:
    _, outcomes = install_certificate(ctx, [service], pki.pem(leaf, *chain) + pki.key_pem(key), actor="test")
    assert outcomes[0].ok, outcomes[0].message


def test_the_scrape_shows_the_one_assessment_and_never_probes(tmp_path, run_cli):
    listener = socket.create_server(("127.0.0.1", 0))  # a port that would notice a probe
    listener.setblocking(False)
    port = listener.getsockname()[1]
    panel = make_panel(tmp_path, extra_services={
        "ftp": {"kind": "pure-ftpd", "combined_file": str(tmp_path / "etc/ftp/pure-ftpd.pem"),
                "probe": f"ftp-auth-tls://127.0.0.1:{port}"}})
    ctx = open_context(panel.settings)
    ca = pki.pki()
    soon, soon_key = ca.leaf([HOST], key=pki.rsa_key(61), not_before=pki.NOW - timedelta(days=80),
                             not_after=pki.NOW + timedelta(days=5, hours=1))
    install(ctx, "exim", soon, soon_key, ca.intermediate)
    good, good_key = ca.leaf([HOST], key=pki.rsa_key(62), not_before=pki.NOW - timedelta(days=1),
                             not_after=pki.NOW + timedelta(days=60))
    install(ctx, "dovecot", good, good_key, ca.intermediate)
    ftp = panel.settings.services["ftp"].combined_file
    ftp.write_bytes(b"not a certificate")  # unreadable
    try:
        require_binaries("promtool", install="bash scripts/test.sh")
        while True:  # forget any connection made before the scrape
            try:
                listener.accept()[0].close()
            except BlockingIOError:
                break
        body = exposition(ctx).decode()
        promtool_check_metrics(body.encode())
        found = samples(body)
        with pytest.raises(BlockingIOError):
            listener.accept()  # the scrape did not connect to the ftp port
        listed = json.loads(run_cli("list", "--json", "--no-probe", config=panel.config).out)
        for status in listed:  # the same verdict and reasons as `svcssl list`
            name = status["service"]
            verdict = status["assessment"]["verdict"]
            assert value(found, "svcssl_certificate_verdict", service=name, verdict=verdict) == 1, name
            assert sum(v for (n, ls), v in found.items()
                       if n == "svcssl_certificate_verdict" and ("service", name) in ls) == 1
            codes = {dict(ls)["code"] for (n, ls), v in found.items()
                     if n == "svcssl_certificate_reason" and ("service", name) in ls and v == 1}
            assert codes == {r["code"] for r in status["assessment"]["reasons"]}, name
        assert value(found, "svcssl_certificate_verdict", service="exim", verdict="renew-soon") == 1
        assert value(found, "svcssl_certificate_reason", service="exim", code="expires-soon") == 1
        assert value(found, "svcssl_certificate_verdict", service="dovecot", verdict="ok") == 1
        assert value(found, "svcssl_certificate_verdict", service="ftp", verdict="replace") == 1
        assert value(found, "svcssl_certificate_reason", service="ftp", code="unreadable") == 1
        assert value(found, "svcssl_certificate_not_after_timestamp_seconds", service="ftp") is None
        exim_labels = next(dict(ls) for (n, ls) in found if n == "svcssl_certificate_not_before_timestamp_seconds"
                           and ("service", "exim") in ls)
        assert exim_labels == {"service": "exim", "kind": "exim", "subject_cn": HOST, "serial_number": str(soon.serial_number),
                               "issuer_cn": ca.intermediate.subject.get_attributes_for_oid(
                                   x509.NameOID.COMMON_NAME)[0].value}
        assert value(found, "svcssl_certificate_not_before_timestamp_seconds", service="exim") == \
            soon.not_valid_before_utc.timestamp()
        # a touch file: the certificate that needs work is left alone, "attention"
        ctx.store.layout.touch_file(NO_MANAGEMENT).write_bytes(b"")
        found = samples(exposition(ctx).decode())
        assert value(found, "svcssl_certificate_verdict", service="ftp", verdict="attention") == 1
        assert value(found, "svcssl_certificate_reason", service="ftp", code="left-alone") == 1
    finally:
        listener.close()
        ctx.store.close()


def test_deploys_and_rollbacks_are_counted_per_service(tmp_path):
    panel = make_panel(tmp_path, extra_services={
        "exim": {"kind": "exim", "cert_file": str(tmp_path / "etc/exim/exim.crt"),
                 "key_file": str(tmp_path / "etc/exim/exim.key"), "reload": ["false"]}})  # every reload fails
    ctx = open_context(panel.settings)
    before = samples(exposition(ctx).decode())
    assert value(before, "svcssl_deploys_total", service="dovecot", result="ok") == 1  # the first start's
    assert value(before, "svcssl_deploys_total", service="exim", result="failed") == 0
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(63))
    install(ctx, "dovecot", leaf, key, ca.intermediate)
    _, outcomes = install_certificate(ctx, ["exim"], pki.pem(leaf, ca.intermediate) + pki.key_pem(key), actor="test")
    assert not outcomes[0].ok and outcomes[0].rolled_back
    after = samples(exposition(ctx).decode())
    assert value(after, "svcssl_deploys_total", service="dovecot", result="ok") == 2
    assert value(after, "svcssl_deploys_total", service="exim", result="failed") == 1
    assert value(after, "svcssl_deploys_total", service="exim", result="ok") == 1
    assert value(after, "svcssl_rollbacks_total", service="exim") == 1
    assert value(after, "svcssl_rollbacks_total", service="dovecot") == 0
    ctx.store.close()


MAINTENANCE_HOST = "mail.example.test"


def test_runs_and_acme_orders_are_reported(tmp_path):
    """A real run orders from Pebble (issued); another state whose HTTP-01 nobody answers fails (failed); the
    run times are the store's."""
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    pebble = start_pebble(tmp_path / "pebble", free_port())
    dns = start_dns_server({MAINTENANCE_HOST: {"A": ["127.0.0.1"]}})
    try:
        results = {}
        for name, http01 in (("good", pebble.http01_port), ("failing", free_port())):
            (tmp_path / name).mkdir()
            panel = make_panel(tmp_path / name, anchors=[pebble.roots_pem()], extra=f"""
[acme]
directory = "{pebble.directory_url}"
verify = "{pebble.ca_file}"
http01_listen = "127.0.0.1:{http01}"
key_type = "ecdsa-p256"

[dns]
nameservers = ["{dns.nameserver}"]
timeout = 2
""")
            config = panel.config
            text = config.read_text().replace(f'hostname = "{HOST}"',
                                              f'hostname = "{MAINTENANCE_HOST}"\nmain_ip = "127.0.0.1"')
            config.write_text(text)
            ctx = open_context(load_settings(config))
            before = samples(exposition(ctx).decode())
            assert value(before, "svcssl_maintenance_last_run_timestamp_seconds") is None
            report = run_maintenance(ctx)
            found = samples(exposition(ctx).decode())
            run = ctx.store.runs(1)[0]
            assert value(found, "svcssl_maintenance_last_run_timestamp_seconds") == run.finished_at.timestamp()
            assert value(found, "svcssl_maintenance_run_duration_seconds") == \
                (run.finished_at - run.started_at).total_seconds()
            results[name] = (report, found)
            ctx.store.close()
        good, found = results["good"]
        assert good.ok and good.order["ok"] is True
        assert value(found, "svcssl_acme_orders_total", result="issued") == 1
        assert value(found, "svcssl_acme_orders_total", result="failed") == 0
        assert value(found, "svcssl_maintenance_last_success_timestamp_seconds") == \
            value(found, "svcssl_maintenance_last_run_timestamp_seconds")
        assert value(found, "svcssl_deploys_total", service="exim", result="ok") == 2  # first start, then the run
        failing, found = results["failing"]
        assert not failing.ok and failing.order["ok"] is False
        assert value(found, "svcssl_acme_orders_total", result="issued") == 0
        assert value(found, "svcssl_acme_orders_total", result="failed") == 1
        assert value(found, "svcssl_maintenance_last_success_timestamp_seconds") is None  # never ended well
        upcoming = value(found, "svcssl_maintenance_next_run_timestamp_seconds")  # daily by default
        assert 0 < upcoming - value(found, "svcssl_maintenance_last_run_timestamp_seconds") <= 86400
    finally:
        dns.stop()
        pebble.stop()
