"""The panel's TLS context, rebuilt when its certificate or key file changes (in-process swap).

Each new connection is handshaken with the context current at its accept; when the files change
(an install from the web, the CLI or the maintenance run), the next connection gets the new
certificate, and connections in flight keep the one they started with: no request is dropped.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from pathlib import Path

from ...fsutil import stat_signature
from .tlsprofile import apply_intermediate_profile

log = logging.getLogger(__name__)

STAT_INTERVAL = 0.25  # seconds between checks of the certificate files


class PanelCertificate:
    def __init__(self, cert_file: Path, key_file: Path):
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._checked = 0.0
        self._context = self._load()
        if self._context is None:
            raise RuntimeError(f"cannot load the panel certificate {cert_file} with key {key_file}")

    def _load(self) -> ssl.SSLContext | None:
        signature = stat_signature(self.cert_file, self.key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        apply_intermediate_profile(context)
        context.set_alpn_protocols(["http/1.1"])
        context.num_tickets = 0
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            # e.g. caught between the swap of the certificate and of the key: try again next time
            log.warning("panel certificate not (re)loaded yet: %s", exc)
            return None
        self._signature = signature
        return context

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked >= STAT_INTERVAL:
            with self._lock:
                self._checked = now
                if stat_signature(self.cert_file, self.key_file) != self._signature:
                    fresh = self._load()
                    if fresh is not None:
                        self._context = fresh
                        log.info("panel certificate reloaded for new connections")
        return self._context
