"""The one assessment, pure: every verdict and reason with `now` injected and test PKIs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from support import pki
from svcssl.operations.assessment import (NO_HOSTNAME_CERTIFICATE, NO_MANAGEMENT, CertificateFacts, ServerFacts,
                                          Thresholds, assess, assess_unreadable, expiry_level)
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


def client_auth_only_info():
    ca = pki.pki()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca.intermediate.subject).public_key(pki.rsa_key(10).public_key()).serial_number(99)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca.intermediate_key, hashes.SHA256()))
    return describe(cert)


def test_a_good_certificate_is_kept_and_its_reason_is_a_sentence():
    a = assess(leaf_info(), SERVER, CertificateFacts(revocation="good"), NOW)
    assert a.verdict == "ok" and not a.due and a.code == "ok"
    assert a.message == "It passes every check (89 days left)."
    assert a.to_dict() == {"verdict": "ok", "reasons": [{"code": "ok", "message": "It passes every check (89 days left)."}]}
    assert a.flags == ()


@pytest.mark.parametrize("info, server, facts, code, words", [
    (describe(pki.real_sha1_self_signed(HOST)[0]), SERVER, CertificateFacts(), "weak-signature", "sha1WithRSAEncryption"),
    (leaf_info(key=pki.rsa_key(12, 1024)), SERVER, CertificateFacts(), "weak-key", "RSA 1024-bit"),
    (leaf_info(), SERVER, CertificateFacts(revocation="revoked", revocation_detail="revoked on 2026-11-01 per CRL"),
     "revoked", "revoked on 2026-11-01"),
    (leaf_info(san=False), SERVER, CertificateFacts(), "no-san", "no subjectAltName"),
    (client_auth_only_info(), SERVER, CertificateFacts(), "no-server-auth", "serverAuth"),
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
    a = assess(info, server, facts, NOW)
    assert a.verdict == "replace" and a.due and a.code == code, a
    assert words in a.message
    assert a.expired == (code == "expired")
    for reason in a.reasons:  # every reason reads as a sentence
        assert reason.message[0].isupper() and reason.message.endswith("."), reason


def test_no_eku_is_any_purpose_and_passes():
    """RFC 5280 §4.2.1.12: absent EKU = any purpose. Only a present EKU without serverAuth is a problem."""
    a = assess(leaf_info(server_auth=False), SERVER, CertificateFacts(), NOW)
    assert a.verdict == "ok", a


def test_a_self_signed_sha1_certificate_is_both_weak_and_self_signed():
    a = assess(describe(pki.real_sha1_self_signed(HOST)[0]), SERVER, CertificateFacts(), NOW)
    assert {"weak-signature", "self-signed"} <= set(a.codes)


@pytest.mark.parametrize("days, own, verdict, due, code", [
    (24, True, "renew-soon", True, "expiring"), (26, True, "ok", False, "ok"),
    (2, False, "renew-soon", True, "expiring"), (9, False, "renew-soon", False, "expires-soon"),
    (21, False, "ok", False, "ok"),
])
def test_expiry_windows_for_our_ca_and_others(days, own, verdict, due, code):
    a = assess(expiring_in(days), SERVER, CertificateFacts(from_own_ca=own), NOW)
    assert (a.verdict, a.due, a.code) == (verdict, due, code), a
    if code == "expiring":
        assert ("under 25 days" if own else "under 3 days") in a.message
    if code == "expires-soon":
        assert "expires in 8 days" in a.message and "under 3 days" in a.message


def test_thresholds_come_from_settings_only():
    info = expiring_in(9)
    assert assess(info, SERVER, CertificateFacts(), NOW, thresholds=Thresholds(25, 10, 20)).due
    assert not assess(info, SERVER, CertificateFacts(), NOW, thresholds=Thresholds(25, 3, 20)).due
    assert assess(info, SERVER, CertificateFacts(), NOW, thresholds=Thresholds(25, 3, 5)).verdict == "ok"


def test_the_table_colour_follows_the_same_thresholds():
    t = Thresholds(25, 3, 20)
    for days, own, level in [(2, False, "critical"), (9, False, "expiring"), (24, True, "expiring"),
                             (22, False, "ok"), (60, True, "ok")]:
        info = expiring_in(days)
        a = assess(info, SERVER, CertificateFacts(from_own_ca=own), NOW, thresholds=t)
        assert expiry_level(info, a, NOW, t) == level, (days, own)
    old = leaf_info(not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(hours=1))
    assert expiry_level(old, assess(old, SERVER, CertificateFacts(), NOW), NOW, t) == "expired"


@pytest.mark.parametrize("remaining, due", [(9, True), (11, False)])
def test_short_lived_renew_at_a_third_of_their_lifetime(remaining, due):
    info = expiring_in(remaining, lifetime_days=30)
    a = assess(info, SERVER, CertificateFacts(from_own_ca=True), NOW)
    assert a.due is due
    if due:
        assert "short-lived (30 days)" in a.message


def test_the_ari_window_wins():
    info = expiring_in(20)  # under 25 days from our CA: due by our own rule…
    later = CertificateFacts(from_own_ca=True, renewal_window=(NOW + timedelta(days=5), NOW + timedelta(days=7)))
    assert not assess(info, SERVER, later, NOW).due  # …but the CA says not yet
    info = expiring_in(60)
    opened = CertificateFacts(from_own_ca=True, renewal_window=(NOW - timedelta(hours=1), NOW + timedelta(days=2)))
    a = assess(info, SERVER, opened, NOW)
    assert a.due and "Renewal Information" in a.message


def test_several_problems_are_all_reported():
    info = describe(make_self_signed("other.example.net", pki.rsa_key(12, 1024), NOW, 365))
    a = assess(info, SERVER, CertificateFacts(), NOW)
    assert a.codes == ("weak-key", "self-signed", "not-for-this-server")


def test_a_touch_file_makes_it_attention_never_fine():
    info = describe(make_self_signed(HOST, pki.rsa_key(10), NOW, 365))
    held = assess(info, SERVER, CertificateFacts(), NOW, touch_files=frozenset({NO_MANAGEMENT}))
    assert held.verdict == "attention" and not held.due and held.held_by == NO_MANAGEMENT
    assert held.codes == ("self-signed", "left-alone") and NO_MANAGEMENT in held.reasons[-1].message
    no_hostname = assess(info, SERVER, CertificateFacts(), NOW, touch_files=frozenset({NO_HOSTNAME_CERTIFICATE}))
    assert no_hostname.verdict == "attention" and no_hostname.held_by == NO_HOSTNAME_CERTIFICATE
    # An expired certificate still gets a self-signed one with only disable_auto_hostname_certificate present.
    old = leaf_info(not_before=NOW - timedelta(days=100), not_after=NOW - timedelta(hours=1))
    assert assess(old, SERVER, CertificateFacts(), NOW, touch_files=frozenset({NO_HOSTNAME_CERTIFICATE})).due
    assert assess(old, SERVER, CertificateFacts(), NOW, touch_files=frozenset({NO_MANAGEMENT})).verdict == "attention"
    fine = assess(leaf_info(), SERVER, CertificateFacts(), NOW, touch_files=frozenset({NO_MANAGEMENT}))
    assert fine.verdict == "ok"


def test_an_unreadable_certificate_is_replaced():
    a = assess_unreadable("the certificate file /etc/x.pem does not exist")
    assert a.verdict == "replace" and a.due and a.expired and a.code == "unreadable"
    assert a.message == "No usable certificate: the certificate file /etc/x.pem does not exist."


# --- issue 20: the renewal moment is a fraction of the lifetime, the ARI moment first -----------------------------

from svcssl.operations.assessment import needs_a_person, renewal_moment  # noqa: E402


def lifetime_cert(lifetime: timedelta, start=NOW):
    return leaf_info(not_before=start, not_after=start + lifetime)


@pytest.mark.parametrize("lifetime, own, left_when_due", [
    (timedelta(hours=160), True, timedelta(hours=80)),  # Let's Encrypt "shortlived": half, under 10 days
    (timedelta(hours=160), False, timedelta(hours=80)),  # whatever its CA
    (timedelta(days=45), True, timedelta(days=15)),  # "tlsserver": a third
    (timedelta(days=45), False, timedelta(days=15)),
    (timedelta(days=12), True, timedelta(days=4)),  # 10 days and more: a third
    (timedelta(days=90), True, timedelta(days=25)),  # long-lived: the cPanel days bound the third (30 days)
    (timedelta(days=90), False, timedelta(days=3)),
    (timedelta(days=60), True, timedelta(days=20)),  # a third (20) is under the 25-day bound: the third
])
def test_the_renewal_moment_is_a_fraction_of_the_lifetime(lifetime, own, left_when_due):
    info = lifetime_cert(lifetime)
    facts = CertificateFacts(from_own_ca=own)
    moment = renewal_moment(info, facts, Thresholds())
    assert moment.at == info.not_after - left_when_due and not moment.ari
    before, after = moment.at - timedelta(seconds=1), moment.at + timedelta(seconds=1)
    assert not assess(info, SERVER, facts, before).due
    due = assess(info, SERVER, facts, after)
    assert due.due and due.verdict == "renew-soon" and due.code == "expiring", due
    assert "the maintenance run renews it now" in due.message


def test_the_stored_ari_moment_decides_inside_the_window_and_a_moment_outside_it_is_ignored():
    info = lifetime_cert(timedelta(days=90), start=NOW - timedelta(days=30))
    window = (NOW + timedelta(days=20), NOW + timedelta(days=22))
    chosen = NOW + timedelta(days=21, hours=3)
    facts = CertificateFacts(from_own_ca=True, renewal_window=window, renewal_at=chosen)
    assert renewal_moment(info, facts, Thresholds()).at == chosen
    assert not assess(info, SERVER, facts, window[0] + timedelta(hours=1)).due  # window open, moment not yet
    late = assess(info, SERVER, facts, chosen + timedelta(minutes=1))
    assert late.due and "the moment chosen in it" in late.message and "Renewal Information" in late.message
    stray = CertificateFacts(from_own_ca=True, renewal_window=window, renewal_at=NOW + timedelta(days=40))
    assert renewal_moment(info, stray, Thresholds()).at == window[0]  # a moment from an older window: the start


def test_only_what_a_person_must_act_on_is_news():
    t = Thresholds()
    own, other = CertificateFacts(from_own_ca=True), CertificateFacts()
    short = lifetime_cert(timedelta(hours=160))
    on_time = NOW + timedelta(hours=81)  # due (under half) but more than a third left: the run renews it
    assert assess(short, SERVER, own, on_time).due and not needs_a_person(short, assess(short, SERVER, own, on_time),
                                                                           on_time, t)
    overdue = NOW + timedelta(hours=110)  # under a third left: renewal has failed so far
    assert needs_a_person(short, assess(short, SERVER, own, overdue), overdue, t)
    long = lifetime_cert(timedelta(days=90))
    at_24 = NOW + timedelta(days=66)  # 24 days left from our CA: due, on time (notify under 20)
    assert not needs_a_person(long, assess(long, SERVER, own, at_24), at_24, t)
    at_19 = NOW + timedelta(days=71)
    assert needs_a_person(long, assess(long, SERVER, own, at_19), at_19, t)
    at_10 = NOW + timedelta(days=80)  # another CA's, 10 days left: svcssl cannot renew it by itself yet
    assert needs_a_person(long, assess(long, SERVER, other, at_10), at_10, t)
    held = assess(long, SERVER, own, at_24, touch_files=frozenset({NO_HOSTNAME_CERTIFICATE}))
    assert held.verdict == "attention" and needs_a_person(long, held, at_24, t)
    fresh = NOW + timedelta(days=1)
    assert not needs_a_person(long, assess(long, SERVER, own, fresh), fresh, t)
