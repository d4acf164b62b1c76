"""A panel set up for tests: config with the four WHM services (file-only), users root/alice/bob."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from support.config import write_config
from svcssl.operations.context import open_context
from svcssl.operations.firstrun import ensure_certificates
from svcssl.operations.users import create_user, set_service_ssl_privilege
from svcssl.settings import Settings, load_settings

HOST = "mail.example.com"
ROOT_PASSWORD = "root-password-1"
ALICE_PASSWORD = "alice-password-1"  # reseller without the privilege
BOB_PASSWORD = "bob-password-1"  # reseller with it


@dataclass
class Panel:
    config: Path
    settings: Settings
    etc: Path
    state: Path


def make_panel(tmp_path: Path, *, apns: bool = False, extra_services: dict | None = None, extra: str = "",
               anchors: tuple[bytes, ...] | list[bytes] = ()) -> Panel:
    etc = tmp_path / "etc"
    services = {
        "cpanel": {"kind": "panel", "cert_file": str(etc / "panel/cert.pem"), "key_file": str(etc / "panel/key.pem"),
                   "chain_file": str(etc / "panel/chain.pem")},
        "dovecot": {"kind": "dovecot", "cert_file": str(etc / "dovecot/cert.pem"),
                    "key_file": str(etc / "dovecot/key.pem")},
        "exim": {"kind": "exim", "cert_file": str(etc / "exim/exim.crt"), "key_file": str(etc / "exim/exim.key"),
                 "key_mode": "0640"},
        "ftp": {"kind": "pure-ftpd", "combined_file": str(etc / "ftp/pure-ftpd.pem")},
    }
    if apns:
        services["mail_apns"] = {"kind": "apns", "enabled": True, "combined_file": str(etc / "apns/apns.pem")}
    services.update(extra_services or {})
    config = write_config(tmp_path / "svcssl.toml", hostname=HOST, state_dir=tmp_path / "state", services=services,
                          extra=extra, anchors=anchors)
    settings = load_settings(config)
    ctx = open_context(settings)
    ensure_certificates(ctx)
    create_user(ctx, "root", "root", ROOT_PASSWORD, actor="test")
    create_user(ctx, "alice", "reseller", ALICE_PASSWORD, actor="test")
    create_user(ctx, "bob", "reseller", BOB_PASSWORD, actor="test")
    set_service_ssl_privilege(ctx, "bob", True, actor="test")
    ctx.store.close()
    return Panel(config, settings, etc, tmp_path / "state")


CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)
