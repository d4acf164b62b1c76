"""The maintenance policy, pure: every verdict with `now` injected and test PKIs."""

from __future__ import annotations

from datetime import timedelta

import pytest

import pki
from svcssl.maintenance.policy import CertificateFacts, ServerFacts, assess
from svcssl.x509.generate import make_self_signed
from svcssl.x509.inspect import describe

HOST = "mail.example.com"
NOW = pki.NOW
SERVER = ServerFacts(HOST)


def leaf_info(names=(HOST,), key=None, **kwargs):
    leaf, _ = pki.pki().leaf(list(names), key=key or pki.rsa_key(10), **kwargs)
    return describe(leaf)


def expiring_in(days: float, lifetime_days: int = 90):
    end = NOW + timedelta(days=days)
    return leaf_info(not_before=end - timedelta(days=lifetime_days), not_after=end)


def test_a_good_certificate_is_kept():
    verdict = assess(leaf_info(), SERVER, CertificateFacts(revocation="good"), NOW)
    assert not verdict.replace and verdict.code == "ok" and "passes every check" in verdict.reason


@pytest.mark.parametrize("info, server, facts, code, words", [
    (describe(pki.sha1_signed_leaf([HOST], pki.rsa_key(10))), SERVER, CertificateFacts(), "weak", "sha1WithRSAEncryption"),
    (leaf_info(key=pki.rsa_key(12, 1024)), SERVER, CertificateFacts(), "weak", "RSA 1024-bit"),
    (leaf_info(), SERVER, CertificateFacts(revocation="revoked", revocation_detail="revoked on 2026-11-01 per CRL"),
     "revoked", "revoked on 2026-11-01"),
    (leaf_info(san=False), SERVER, CertificateFacts(), "no-san", "no subjectAltName"),
    (leaf_info(server_auth=False), SERVER, CertificateFacts(), "no-server-auth", "serverAuth"),
    (leaf_info(names=("other.example.net",)), SERVER, CertificateFacts(), "not-for-this-server",
     "does not cover the hostname mail.example.com"),
    (leaf_info(), ServerFacts(HOST, "mail.example.com does not resolve in DNS (NXDOMAIN)"), CertificateFacts(),
     "not-for-this-server", "does not resolve"),
    (leaf_info(), ServerFacts(HOST, "mail.example.com resolves to 192.0.2.7, not to this server (198.51.100.1)"),
     CertificateFacts(), "not-for-this-server", "not to this server"),
    (describe(make_self_signed(HOST, pki.rsa_key(10), NOW, 365)), SERVER, CertificateFacts(), "self-signed",
     "self-signed"),
    (leaf_info(not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(hours=1)), SERVER, CertificateFacts(),
     "expired", "expired on"),
])
def test_each_reason_to_replace(info, server, facts, code, words):
    verdict = assess(info, server, facts, NOW)
    assert verdict.replace and verdict.code == code, verdict
    assert words in verdict.reason
    assert verdict.expired == (code == "expired")


@pytest.mark.parametrize("days, own, replace", [(24, True, True), (26, True, False), (2, False, True), (4, False, False)])
def test_expiry_windows_for_our_ca_and_others(days, own, replace):
    verdict = assess(expiring_in(days), SERVER, CertificateFacts(from_own_ca=own), NOW)
    assert verdict.replace is replace, verdict
    if replace:
        assert verdict.code == "expiring"
        assert ("under 25 days" if own else "under 3 days") in verdict.reason


@pytest.mark.parametrize("remaining, replace", [(9, True), (11, False)])
def test_short_lived_renew_at_a_third_of_their_lifetime(remaining, replace):
    info = expiring_in(remaining, lifetime_days=30)
    verdict = assess(info, SERVER, CertificateFacts(from_own_ca=True), NOW)
    assert verdict.replace is replace
    if replace:
        assert "short-lived (30 days)" in verdict.reason


def test_the_ari_window_wins():
    info = expiring_in(20)  # under 25 days from our CA: due by our own rule…
    later = CertificateFacts(from_own_ca=True, renewal_window=(NOW + timedelta(days=5), NOW + timedelta(days=7)))
    assert not assess(info, SERVER, later, NOW).replace  # …but the CA says not yet
    info = expiring_in(60)
    opened = CertificateFacts(from_own_ca=True, renewal_window=(NOW - timedelta(hours=1), NOW + timedelta(days=2)))
    verdict = assess(info, SERVER, opened, NOW)
    assert verdict.replace and "Renewal Information" in verdict.reason


def test_several_problems_are_all_reported():
    info = describe(make_self_signed("other.example.net", pki.rsa_key(12, 1024), NOW, 365))
    verdict = assess(info, SERVER, CertificateFacts(), NOW)
    assert verdict.code == "weak" and len(verdict.reasons) == 3
