"""The panel's TLS settings: Mozilla's "intermediate" profile (https://ssl-config.mozilla.org, v5.7).

TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (no
CBC, no RSA key exchange, no finite-field DHE); the key-exchange groups X25519, P-256 and P-384;
the client's cipher order, not the server's (every suite offered is strong).

Python's `ssl` module (before 3.13) can set a single ECDH curve but not a list of groups: the list
goes to OpenSSL's SSL_CTX_set1_groups_list through ctypes, on the SSL_CTX the context wraps. The
pointer is checked (its options must read back as the context's own) before anything is set.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys

log = logging.getLogger(__name__)

TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
GROUPS = b"X25519:prime256v1:secp384r1"
SSL_CTRL_SET_GROUPS_LIST = 92  # OpenSSL's ssl.h: SSL_CTX_set1_groups_list is this SSL_CTX_ctrl


def apply_intermediate_profile(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)  # TLS 1.3's suites are all AEAD: OpenSSL's default set stays
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if not _set_groups(context, GROUPS):
        # X25519 would be lost with set_ecdh_curve's single curve: P-256 is the one every client has
        log.warning("cannot set the TLS groups list through OpenSSL: using prime256v1 only")
        context.set_ecdh_curve("prime256v1")


def _ssl_ctx_pointer(context: ssl.SSLContext, libssl) -> int | None:
    """The SSL_CTX* inside the PySSLContext (its first field after the object header), if it checks out."""
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # ob_refcnt, ob_type
    if hasattr(sys, "gettotalrefcount"):  # a debug build has two more pointers in the header
        header += 2 * ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(context) + header).value
    if not pointer:
        return None
    libssl.SSL_CTX_get_options.restype = ctypes.c_uint64
    libssl.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    if libssl.SSL_CTX_get_options(pointer) != context.options:
        return None
    return pointer


def _set_groups(context: ssl.SSLContext, groups: bytes) -> bool:
    try:
        import _ssl

        libssl = ctypes.CDLL(_ssl.__file__)  # its libssl's symbols, the very library the context uses
        pointer = _ssl_ctx_pointer(context, libssl)
        if pointer is None:
            return False
        libssl.SSL_CTX_ctrl.restype = ctypes.c_long
        libssl.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
        return libssl.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_GROUPS_LIST, 0, groups) == 1
    except (OSError, AttributeError, ValueError):
        return False
