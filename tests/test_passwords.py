"""Password hashes: werkzeug's scrypt for new ones; release 0.1's own format still verifies and is replaced."""

from __future__ import annotations

import base64
import hashlib

from support.panel import make_panel
from svcssl.operations.context import open_context
from svcssl.operations.users import authenticate, hash_password, verify_password


def release_0_1_hash(password: str, salt: bytes = b"0123456789abcdef") -> str:
    """What release 0.1 stored: scrypt$N$r$p$<base64 salt>$<base64 digest>."""
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=64 * 1024 * 1024)
    return f"scrypt${2**15}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_new_hashes_are_werkzeugs_scrypt():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt:32768:8:1$")
    assert verify_password("correct horse", stored) and not verify_password("wrong horse", stored)
    assert not verify_password("correct horse", "garbage") and not verify_password("x", "scrypt$1$2")


def test_a_hash_written_by_release_0_1_verifies_and_is_replaced_at_login(tmp_path):
    panel = make_panel(tmp_path)
    ctx = open_context(panel.settings)
    old = release_0_1_hash("legacy-password-1")
    assert verify_password("legacy-password-1", old) and not verify_password("legacy-password-2", old)
    ctx.store.set_password_hash("alice", old, ctx.now())
    assert authenticate(ctx, "alice", "legacy-password-1", "127.0.0.1").name == "alice"
    rehashed = ctx.store.get_user("alice").password_hash
    assert rehashed.startswith("scrypt:32768:8:1$") and verify_password("legacy-password-1", rehashed)
    assert authenticate(ctx, "alice", "legacy-password-1", "127.0.0.1").name == "alice"
