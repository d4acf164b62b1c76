"""One module names every path under the state directory; the names are those earlier releases wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from svcssl.statedir import TOUCH_FILES, StateLayout

OLD_STATE = Path(__file__).parent / "data" / "upgrade-0.1.0" / "state"


def test_the_layout_names_what_release_0_1_0_wrote():
    layout = StateLayout(OLD_STATE)
    assert layout.database.read_bytes()[:16] == b"SQLite format 3\x00"  # read, never opened: the data stays as it is
    assert layout.session_secret.is_file()
    for service in ("cpanel", "dovecot", "exim", "ftp"):
        assert layout.lock(f"service-{service}").is_file()
    bundles = sorted(p.name for p in layout.bundles.iterdir())
    assert bundles
    for fingerprint in bundles:
        assert layout.bundle_dir(fingerprint).is_dir()
        for path in (layout.bundle_cert(fingerprint), layout.bundle_chain(fingerprint), layout.bundle_key(fingerprint)):
            assert path.is_file() and path.parent == layout.bundle_dir(fingerprint)


def test_every_path_stays_where_it_was(tmp_path):
    layout = StateLayout(tmp_path)
    url = "https://acme.example/directory"
    digest = hashlib.sha256(url.encode()).hexdigest()
    fp = "ab" * 32
    assert layout.database == tmp_path / "svcssl.db"
    assert layout.session_secret == tmp_path / "session_secret"
    assert layout.bundle_key(fp) == tmp_path / "bundles" / fp / "key.pem"
    assert layout.journal("exim") == tmp_path / "journal" / "exim"
    assert layout.lock("maintenance") == tmp_path / "locks" / "maintenance.lock"
    assert layout.acme_account_dir(url) == tmp_path / "acme" / digest
    assert layout.acme_lock(url) == tmp_path / "locks" / f"acme-{digest[:16]}.lock"
    assert layout.key_store_key("cd" * 32) == tmp_path / "keys" / f"{'cd' * 32}.key"
    assert layout.key_store_csr("cd" * 32) == tmp_path / "keys" / f"{'cd' * 32}.csr"
    assert layout.crl_cache == tmp_path / "crl-cache"
    assert [layout.touch_file(name).name for name in TOUCH_FILES] == [
        "disable_auto_hostname_certificate", "disable_service_certificate_management"]
    with pytest.raises(ValueError):
        layout.touch_file("../svcssl.db")
