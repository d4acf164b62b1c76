"""svcssl.revocation against CRLs and an OCSP responder served by a real local HTTP server."""

from __future__ import annotations

import hashlib
import stat
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from support.pki import NOW, ec_key, make_leaf, pki
from servers.http import closed_port, silent_tcp_port, start_http_server
from svcssl.revocation import RevocationStatus, check_revocation

CRL_TYPE = "application/pkix-crl"
OCSP_TYPE = "application/ocsp-response"
REVOKED_ON = datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc)


@pytest.fixture
def http():
    server = start_http_server()
    yield server
    server.stop()


def make_crl(revoked: dict[int, x509.ReasonFlags | None], *, issuer=None, key=None, der: bool = True,
             this_update: datetime | None = None, next_update: datetime | None = None) -> bytes:
    issuer = issuer or pki().intermediate
    key = key or pki().intermediate_key
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.subject)
               .last_update(this_update or NOW - timedelta(hours=1))
               .next_update(next_update or NOW + timedelta(days=1)))
    for serial, reason in revoked.items():
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(REVOKED_ON)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def leaf_for(**urls) -> x509.Certificate:
    cert, _key = pki().leaf(["mail.example.com"], **urls)
    return cert


def check(leaf, issuer=None, **kwargs) -> RevocationStatus:
    kwargs.setdefault("cache_dir", None)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("timeout", 2.0)
    return check_revocation(leaf, pki().intermediate if issuer is None else issuer, **kwargs)


# --------------------------------------------------------------------------- CRL

def test_good_per_crl(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({12345: x509.ReasonFlags.key_compromise}))
    status = check(leaf)
    assert status == RevocationStatus("good", "crl", f"not revoked per {http.url('/int.crl')} (a CRL issued 1 hour ago)")
    assert http.hits["/int.crl"] == 1


def test_revoked_per_pem_crl(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: x509.ReasonFlags.key_compromise}, der=False))
    status = check(leaf)
    assert status.state == "revoked" and status.source == "crl"
    assert status.detail == f"revoked on 2026-01-15 (keyCompromise) per {http.url('/int.crl')}"
    assert status.revoked_at == REVOKED_ON and status.reason == "keyCompromise"


def test_revoked_without_reason(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: None}))
    status = check(leaf)
    assert status.state == "revoked" and status.detail == f"revoked on 2026-01-15 per {http.url('/int.crl')}"


def test_crl_signed_by_another_key_is_unknown(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    forged = make_crl({leaf.serial_number: x509.ReasonFlags.key_compromise}, key=pki(1).intermediate_key)
    http.set_route("/int.crl", CRL_TYPE, forged)
    status = check(leaf)
    assert status.state == "unknown" and status.source is None
    assert status.detail == (f"CRL {http.url('/int.crl')} cannot be used: its signature does not verify "
                             "with the issuer's key")


def test_crl_of_another_ca_is_unknown(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: None}, issuer=pki(1).intermediate,
                                                   key=pki(1).intermediate_key))
    status = check(leaf)
    assert status.state == "unknown" and "issued by a different CA" in status.detail


def test_unverifiable_without_issuer_is_unknown_not_revoked(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: x509.ReasonFlags.key_compromise}))
    status = check_revocation(leaf, None, cache_dir=None, now=NOW, timeout=2.0)
    assert status.state == "unknown"
    assert "lists this certificate as revoked on 2026-01-15" in status.detail
    assert "issuer certificate unknown" in status.detail


def test_unreachable_crl_is_unknown(http):
    url = f"http://127.0.0.1:{closed_port()}/int.crl"
    status = check(leaf_for(crl_url=url))
    assert status.state == "unknown" and status.detail.startswith(f"CRL {url} unreachable: ")
    assert "refused" in status.detail.lower()


def test_silent_crl_server_times_out():
    sock, port = silent_tcp_port()
    try:
        url = f"http://127.0.0.1:{port}/int.crl"
        started = time.monotonic()
        status = check(leaf_for(crl_url=url), timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert status.state == "unknown" and status.detail == f"CRL {url} unreachable: timed out after 0.5 s"
    assert elapsed < 3


@pytest.mark.parametrize("route, words", [
    (None, "unreachable: HTTP 404 Not Found"),
    ((CRL_TYPE, b"this is not a CRL"), "is not a CRL (neither DER nor PEM)"),
    ((CRL_TYPE, b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), "is not a CRL"),
])
def test_bad_crl_answers_are_unknown(http, route, words):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    if route:
        http.set_route("/int.crl", *route)
    status = check(leaf)
    assert status.state == "unknown" and words in status.detail


def test_oversized_crl_is_refused(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({n: None for n in range(1, 200)}))
    status = check(leaf, max_bytes=1000)
    assert status.state == "unknown" and "over the 1,000-byte limit" in status.detail


def test_crl_not_yet_valid_is_unknown(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, this_update=NOW + timedelta(hours=2)))
    status = check(leaf)
    assert status.state == "unknown" and "not yet valid" in status.detail


def test_stale_crl_says_nothing_good_but_revocations_stand(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    old = dict(this_update=NOW - timedelta(days=10), next_update=NOW - timedelta(days=3))
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, **old))
    status = check(leaf)
    assert status.state == "unknown" and "is out of date" in status.detail
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: x509.ReasonFlags.superseded}, **old))
    assert check(leaf).state == "revoked"


def test_second_distribution_point_is_tried(http):
    leaf = make_leaf(["mail.example.com"], ec_key(5), pki().intermediate, pki().intermediate_key,
                     crl_url="ldap://ldap.example/cn=int?certificateRevocationList")
    # make_leaf takes one URL: build the two-point extension by hand
    builder = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(leaf.issuer)
               .public_key(leaf.public_key()).serial_number(leaf.serial_number)
               .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
               .add_extension(x509.CRLDistributionPoints([
                   x509.DistributionPoint([x509.UniformResourceIdentifier("ldap://ldap.example/int")], None, None, None),
                   x509.DistributionPoint([x509.UniformResourceIdentifier(http.url("/missing.crl"))], None, None, None),
                   x509.DistributionPoint([x509.UniformResourceIdentifier(http.url("/int.crl"))], None, None, None),
               ]), critical=False))
    leaf = builder.sign(pki().intermediate_key, hashes.SHA256())
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: x509.ReasonFlags.cessation_of_operation}))
    status = check(leaf)
    assert status.state == "revoked" and "(cessationOfOperation)" in status.detail
    assert http.hits["/missing.crl"] == 1 and http.hits["/int.crl"] == 1


def test_only_ldap_or_nothing_is_unknown():
    status = check(leaf_for(crl_url="ldap://ldap.example/cn=int"))
    assert status.state == "unknown" and status.source is None and "non-HTTP" in status.detail
    status = check(leaf_for())
    assert status == RevocationStatus("unknown", None, "the certificate names no CRL distribution point or OCSP responder")


def test_crl_cache_is_used_until_next_update(http, tmp_path):
    cache = tmp_path / "cache" / "crl"
    url = http.url("/int.crl")
    leaf = leaf_for(crl_url=url)
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, next_update=NOW + timedelta(hours=6)))

    assert check(leaf, cache_dir=cache).state == "good"
    assert http.hits["/int.crl"] == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    cached = cache / (hashlib.sha256(url.encode()).hexdigest() + ".crl")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600

    # Within validity: no fetch, even with the CRL now listing the certificate upstream.
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: None}, next_update=NOW + timedelta(days=1)))
    assert check(leaf, cache_dir=cache, now=NOW + timedelta(hours=5)).state == "good"
    assert http.hits["/int.crl"] == 1

    # Past nextUpdate: fetched again.
    later = check(leaf, cache_dir=cache, now=NOW + timedelta(hours=7))
    assert later.state == "revoked" and http.hits["/int.crl"] == 2

    # And with the server gone, the new cached copy still answers.
    http.stop()
    assert check(leaf, cache_dir=cache, now=NOW + timedelta(hours=8)).state == "revoked"


def test_a_cached_crl_is_fetched_again_after_a_day_even_before_its_next_update(http, tmp_path):
    """CRLs can have a nextUpdate a week away; a revocation published meanwhile is seen within a day."""
    cache = tmp_path / "crl"
    url = http.url("/int.crl")
    leaf = leaf_for(crl_url=url)
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, next_update=NOW + timedelta(days=7)))
    first = check(leaf, cache_dir=cache)
    assert first.state == "good" and "(a CRL issued 1 hour ago)" in first.detail
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: None}, this_update=NOW + timedelta(hours=20),
                                                  next_update=NOW + timedelta(days=8)))
    assert check(leaf, cache_dir=cache, now=NOW + timedelta(hours=23)).state == "good"  # cached, a day not over
    assert http.hits["/int.crl"] == 1
    later = check(leaf, cache_dir=cache, now=NOW + timedelta(hours=25))
    assert later.state == "revoked" and http.hits["/int.crl"] == 2
    # the age of the CRL used is in the report's words
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, this_update=NOW - timedelta(days=3),
                                                  next_update=NOW + timedelta(days=4)))
    assert "(a CRL issued 3.0 days ago)" in check(leaf).detail


def test_without_cache_every_call_fetches(http):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({}))
    check(leaf)
    check(leaf)
    assert http.hits["/int.crl"] == 2


def test_a_bad_crl_is_not_cached(http, tmp_path):
    leaf = leaf_for(crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({}, key=pki(1).intermediate_key))
    assert check(leaf, cache_dir=tmp_path / "c").state == "unknown"
    http.set_route("/int.crl", CRL_TYPE, make_crl({}))
    assert check(leaf, cache_dir=tmp_path / "c").state == "good"
    assert http.hits["/int.crl"] == 2


def test_corrupt_cache_file_is_refetched(http, tmp_path):
    url = http.url("/int.crl")
    leaf = leaf_for(crl_url=url)
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / (hashlib.sha256(url.encode()).hexdigest() + ".crl")).write_bytes(b"garbage")
    http.set_route("/int.crl", CRL_TYPE, make_crl({}))
    assert check(leaf, cache_dir=cache).state == "good" and http.hits["/int.crl"] == 1


# --------------------------------------------------------------------------- OCSP

def responder_cert(*, eku: bool = True) -> tuple[x509.Certificate, object]:
    key = ec_key(300 + eku)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"Test OCSP responder {eku}")]))
               .issuer_name(pki().intermediate.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30)))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(pki().intermediate_key, hashes.SHA256()), key


class Responder:
    """An OCSP responder answering for the leaves it was told about."""

    def __init__(self, signer=None, signer_key=None, *, include_signer: bool = False, failure=None):
        self.signer = signer or pki().intermediate
        self.signer_key = signer_key or pki().intermediate_key
        self.include_signer = include_signer
        self.failure = failure
        self.leaves: dict[int, tuple[x509.Certificate, ocsp.OCSPCertStatus, x509.ReasonFlags | None]] = {}
        self.requests = 0

    def set(self, leaf, status: ocsp.OCSPCertStatus, reason=None) -> None:
        self.leaves[leaf.serial_number] = (leaf, status, reason)

    def __call__(self, body: bytes) -> tuple[str, bytes]:
        self.requests += 1
        if self.failure is not None:
            return OCSP_TYPE, ocsp.OCSPResponseBuilder.build_unsuccessful(self.failure).public_bytes(
                serialization.Encoding.DER)
        request = ocsp.load_der_ocsp_request(body)
        leaf, status, reason = self.leaves[request.serial_number]
        revoked = status == ocsp.OCSPCertStatus.REVOKED
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response(cert=leaf, issuer=pki().intermediate, algorithm=hashes.SHA1(), cert_status=status,
                                 this_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(days=3),
                                 revocation_time=REVOKED_ON if revoked else None,
                                 revocation_reason=reason if revoked else None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer))
        if self.include_signer:
            builder = builder.certificates([self.signer])
        return OCSP_TYPE, builder.sign(self.signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def ocsp_setup(http, responder: Responder, status=ocsp.OCSPCertStatus.GOOD, reason=None, *, crl: bool = False):
    http.set_post_handler("/ocsp", responder)
    leaf = leaf_for(ocsp_url=http.url("/ocsp"), crl_url=http.url("/int.crl") if crl else None)
    responder.set(leaf, status, reason)
    return leaf


def test_good_per_ocsp(http):
    responder = Responder()
    leaf = ocsp_setup(http, responder)
    status = check(leaf)
    assert status == RevocationStatus("good", "ocsp", f"not revoked per OCSP {http.url('/ocsp')}")
    assert responder.requests == 1


def test_revoked_per_ocsp_wins_before_the_crl(http):
    responder = Responder()
    leaf = ocsp_setup(http, responder, ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise, crl=True)
    http.set_route("/int.crl", CRL_TYPE, make_crl({}))
    status = check(leaf)
    assert status.state == "revoked" and status.source == "ocsp"
    assert status.detail == f"revoked on 2026-01-15 (keyCompromise) per OCSP {http.url('/ocsp')}"
    assert status.revoked_at == REVOKED_ON
    assert http.hits["/int.crl"] == 0


def test_delegated_responder_with_ocsp_signing(http):
    signer, key = responder_cert(eku=True)
    leaf = ocsp_setup(http, Responder(signer, key, include_signer=True), ocsp.OCSPCertStatus.REVOKED)
    status = check(leaf)
    assert status.state == "revoked" and status.source == "ocsp"


def test_delegated_responder_without_ocsp_signing_is_not_trusted(http):
    signer, key = responder_cert(eku=False)
    leaf = ocsp_setup(http, Responder(signer, key, include_signer=True), ocsp.OCSPCertStatus.REVOKED)
    status = check(leaf)
    assert status.state == "unknown" and "without the OCSPSigning usage" in status.detail


def test_response_signed_by_a_stranger_is_unknown(http):
    stranger = pki(1)
    leaf = ocsp_setup(http, Responder(stranger.intermediate, stranger.intermediate_key, include_signer=True),
                      ocsp.OCSPCertStatus.REVOKED)
    status = check(leaf)
    assert status.state == "unknown"
    assert "not signed by the issuer or by a responder it authorised" in status.detail


def test_ocsp_unknown_falls_back_to_the_crl(http):
    leaf = ocsp_setup(http, Responder(), ocsp.OCSPCertStatus.UNKNOWN, crl=True)
    http.set_route("/int.crl", CRL_TYPE, make_crl({}))
    status = check(leaf)
    assert status.state == "good" and status.source == "crl"


def test_ocsp_failure_and_no_crl_is_unknown_with_both_reasons(http):
    leaf = ocsp_setup(http, Responder(failure=ocsp.OCSPResponseStatus.TRY_LATER), crl=True)
    status = check(leaf)
    assert status.state == "unknown"
    assert status.detail == (f"OCSP {http.url('/ocsp')} answered TRY_LATER; "
                             f"CRL {http.url('/int.crl')} unreachable: HTTP 404 Not Found")


def test_unreachable_ocsp_falls_back_to_the_crl(http):
    url = f"http://127.0.0.1:{closed_port()}/ocsp"
    leaf = leaf_for(ocsp_url=url, crl_url=http.url("/int.crl"))
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: x509.ReasonFlags.affiliation_changed}))
    status = check(leaf)
    assert status.state == "revoked" and status.source == "crl" and "(affiliationChanged)" in status.detail


def test_ocsp_needs_the_issuer(http):
    responder = Responder()
    leaf = ocsp_setup(http, responder)
    status = check_revocation(leaf, None, cache_dir=None, now=NOW)
    assert status.state == "unknown" and "issuer certificate is unknown" in status.detail
    assert responder.requests == 0


def test_ocsp_response_for_another_certificate_is_unknown(http):
    responder = Responder()
    leaf = ocsp_setup(http, responder)
    other = leaf_for()
    responder.leaves[leaf.serial_number] = (other, ocsp.OCSPCertStatus.REVOKED, None)
    status = check(leaf)
    assert status.state == "unknown" and "says nothing about this certificate" in status.detail


def test_garbage_ocsp_answer_is_unknown(http):
    http.set_post_handler("/ocsp", lambda body: (OCSP_TYPE, b"\x30\x03\x0a\x01\x00garbage"))
    leaf = leaf_for(ocsp_url=http.url("/ocsp"))
    status = check(leaf)
    assert status.state == "unknown" and status.detail.startswith(f"OCSP {http.url('/ocsp')} ")


def test_wrong_issuer_certificate_never_yields_revoked(http):
    leaf = ocsp_setup(http, Responder(), ocsp.OCSPCertStatus.REVOKED, crl=True)
    http.set_route("/int.crl", CRL_TYPE, make_crl({leaf.serial_number: None}))
    status = check(leaf, issuer=pki(1).intermediate)
    assert status.state == "unknown"
    assert status.detail.startswith("the issuer certificate given did not issue this certificate; ")
    assert "lists this certificate as revoked" in status.detail
