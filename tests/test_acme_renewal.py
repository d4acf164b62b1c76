"""ACME profiles, ARI ``replaces`` and Retry-After, against the real pebble behind a recording proxy that adds
``meta.profiles`` and ``renewalInfo`` (pebble 2.4.0 has neither) and shows what svcssl really sends."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509

from support.config import require_binaries
from servers.acme_proxy import start_acme_proxy
from servers.pebble import free_port, start_pebble
from svcssl.acme import AcmeConfig, AcmeError, ProfileUnavailable, ari_cert_id, order_certificate, renewal_window
from svcssl.acme.client import retry_after_moment

HOST = "mail.example.test"
PROFILES = {"classic": "90 days", "tlsserver": "45 days", "shortlived": "160 hours"}


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    require_binaries("pebble", "pebble-challtestsrv", install="bash scripts/test.sh")
    running = start_pebble(tmp_path_factory.mktemp("pebble"), free_port(), env={"PEBBLE_WFE_NONCEREJECT": "0"})
    yield running
    running.stop()


@pytest.fixture
def proxy(pebble):
    running = start_acme_proxy(pebble, profiles=dict(PROFILES))
    yield running
    running.stop()


def config(pebble, directory: str, **overrides) -> AcmeConfig:
    values = dict(directory=directory, email="hostmaster@example.test", verify=str(pebble.ca_file),
                  key_type="ecdsa-p256", http01_listen=f"127.0.0.1:{pebble.http01_port}")
    return AcmeConfig(**{**values, **overrides})


def openssl_cert_id(pem: bytes) -> str:
    """The ARI certID computed from openssl's own reading of the certificate (an independent oracle)."""
    text = subprocess.run(["openssl", "x509", "-noout", "-serial", "-ext", "authorityKeyIdentifier"], input=pem,
                          capture_output=True, check=True).stdout.decode()
    serial_hex = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("serial="))
    aki_hex = next(line.strip() for line in text.splitlines() if ":" in line and "Identifier" not in line
                   and not line.startswith("serial"))
    import base64
    aki = bytes.fromhex(aki_hex.replace("keyid:", "").replace(":", ""))
    serial = bytes.fromhex(serial_hex if len(serial_hex) % 2 == 0 else "0" + serial_hex)
    if serial[0] & 0x80:
        serial = b"\0" + serial
    return ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (aki, serial))


def test_the_order_carries_the_configured_profile(pebble, proxy, tmp_path):
    issued = order_certificate(config(pebble, proxy.directory_url, profile="tlsserver"), [HOST], tmp_path)
    assert [o.get("profile") for o in proxy.orders] == ["tlsserver"]
    assert issued.profile == "tlsserver" and issued.notes == ()
    assert "replaces" not in proxy.orders[0]
    # No profile configured: the CA's default, and no "profile" member at all.
    order_certificate(config(pebble, proxy.directory_url), [HOST], tmp_path)
    assert "profile" not in proxy.orders[1]


def test_an_unknown_profile_stops_before_any_order_and_lists_what_the_ca_offers(pebble, proxy, tmp_path):
    with pytest.raises(ProfileUnavailable) as caught:
        order_certificate(config(pebble, proxy.directory_url, profile="tlserver"), [HOST], tmp_path)
    assert "'tlserver' is not offered" in caught.value.message
    offered = caught.value.message.split("the CA offers: ", 1)[1].split(".", 1)[0]
    assert sorted(offered.split(", ")) == sorted(PROFILES)
    assert proxy.orders == []


def test_a_ca_without_profiles_gets_a_plain_order_with_a_note_or_none_when_required(pebble, tmp_path):
    plain = start_acme_proxy(pebble, profiles=None)
    try:
        issued = order_certificate(config(pebble, plain.directory_url, profile="shortlived"), [HOST], tmp_path)
        assert "profile" not in plain.orders[0] and issued.profile is None
        assert len(issued.notes) == 1 and "offers no ACME profiles" in issued.notes[0]
        with pytest.raises(ProfileUnavailable, match="profile_required"):
            order_certificate(config(pebble, plain.directory_url, profile="shortlived", profile_required=True),
                              [HOST], tmp_path)
        assert len(plain.orders) == 1  # no second order
    finally:
        plain.stop()


def test_a_renewal_order_carries_replaces_with_the_ari_cert_id(pebble, proxy, tmp_path):
    first = order_certificate(config(pebble, proxy.directory_url), [HOST], tmp_path)
    leaf = x509.load_pem_x509_certificates(first.fullchain_pem)[0]
    cert_id = ari_cert_id(leaf)
    assert cert_id == openssl_cert_id(first.fullchain_pem.split(b"-----END CERTIFICATE-----")[0]
                                      + b"-----END CERTIFICATE-----\n")
    second = order_certificate(config(pebble, proxy.directory_url), [HOST], tmp_path, replaces=cert_id)
    assert proxy.orders[-1]["replaces"] == cert_id and second.replaced == cert_id and second.notes == ()
    assert proxy.orders[-1]["identifiers"] == [{"type": "dns", "value": HOST}]


def test_already_replaced_is_retried_once_without_replaces(pebble, tmp_path):
    refusing = start_acme_proxy(pebble, profiles=dict(PROFILES), refuse_order=lambda payload: (
        (409, "alreadyReplaced", "this certificate was already replaced", {}) if "replaces" in payload else None))
    try:
        issued = order_certificate(config(pebble, refusing.directory_url), [HOST], tmp_path, replaces="AAAA.AQ")
        assert [("replaces" in o) for o in refusing.orders] == [True, False]
        assert issued.replaced is None and len(issued.notes) == 1
        assert '"replaces"' in issued.notes[0] and "ordered again without it" in issued.notes[0]
    finally:
        refusing.stop()


def test_a_rate_limit_carries_the_cas_retry_after(pebble, tmp_path):
    limited = start_acme_proxy(pebble, refuse_order=lambda payload: (
        429, "rateLimited", "too many certificates for this name", {"Retry-After": "3600"}))
    try:
        before = datetime.now(timezone.utc)
        with pytest.raises(AcmeError) as caught:
            order_certificate(config(pebble, limited.directory_url), [HOST], tmp_path)
        assert caught.value.code == "rateLimited" and "too many certificates" in caught.value.message
        wait = caught.value.retry_after
        assert before + timedelta(seconds=3599) <= wait <= datetime.now(timezone.utc) + timedelta(seconds=3601)
    finally:
        limited.stop()


def test_retry_after_in_seconds_or_http_date():
    now = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)
    assert retry_after_moment("120", now) == now + timedelta(minutes=2)
    assert retry_after_moment("Sat, 05 Dec 2026 13:30:00 GMT", now) == datetime(2026, 12, 5, 13, 30, tzinfo=timezone.utc)
    assert retry_after_moment("soon", now) is None and retry_after_moment(None, now) is None


def test_the_ari_window_is_read_through_the_renewal_info_resource(pebble, proxy, tmp_path):
    issued = order_certificate(config(pebble, proxy.directory_url), [HOST], tmp_path)
    leaf = x509.load_pem_x509_certificates(issued.fullchain_pem)[0]
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    proxy.windows[ari_cert_id(leaf)] = (start, start + timedelta(hours=2))
    assert renewal_window(config(pebble, proxy.directory_url), issued.fullchain_pem) == (start, start + timedelta(hours=2))
    assert proxy.renewal_info_asked == [ari_cert_id(leaf)]


def test_the_ca_list_settings_read_and_refuse_with_the_key_name(tmp_path):
    from pathlib import Path

    from svcssl.errors import ConfigError
    from svcssl.settings import build_settings

    doc = {"acme": {"profile": "tlsserver", "caa_identities": ["letsencrypt.org"], "ca": [
        {"directory": "https://one.example/dir", "caa_identities": ["one.example"]},
        {"directory": "https://two.example/dir", "profile": "shortlived", "eab_kid": "k",
         "eab_hmac_key_file": "two.hmac"}]}}
    acme = build_settings(doc, base_dir=tmp_path).acme
    assert [ca.directory for ca in acme.ca] == ["https://one.example/dir", "https://two.example/dir"]
    assert acme.ca[0].caa_identities == ("one.example",) and acme.ca[0].profile is None
    assert acme.ca[1].profile == "shortlived" and acme.ca[1].eab_hmac_key_file.name == "two.hmac"
    assert acme.profile == "tlsserver" and acme.profile_required is False
    assert build_settings({}, base_dir=tmp_path).acme.ca == ()  # the one-CA form stays the default
    for bad, message in [
        ({"ca": [{"directory": "https://x/dir", "profle": "a"}]}, "unknown configuration key 'acme.ca[1].profle'"),
        ({"ca": [{"caa_identities": ["x"]}]}, "'acme.ca[1].directory' is required"),
        ({"ca": [{"directory": "x"}, {"directory": "ftp://x"}]}, "'acme.ca[1].directory' must be an ACME directory"),
        ({"ca": "https://x/dir"}, "'acme.ca' must be an array of tables"),
        ({"profile_required": "yes"}, "'acme.profile_required' must be true or false"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            build_settings({"acme": bad}, base_dir=Path("/"))
