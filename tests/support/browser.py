"""Chromium pages against a served panel: log in, find a row, install before the server starts."""

from __future__ import annotations

from support import pki
from support.panel import HOST
from support.process import PanelProcess
from svcssl.operations.context import open_context
from svcssl.operations.install import install_certificate

PAGE = "/scripts2/manageservicecrts"


def ca_bundle(slot: int):
    ca = pki.pki()
    leaf, key = ca.leaf([HOST], key=pki.rsa_key(slot))
    return leaf, pki.pem(leaf).decode(), pki.key_pem(key).decode(), pki.pem(ca.intermediate).decode()


def install_directly(panel, services, slot: int):
    """Set up state before the server starts (the same operation the form calls)."""
    leaf, crt, key, chain = ca_bundle(slot)
    ctx = open_context(panel.settings)
    try:
        _, outcomes = install_certificate(ctx, list(services), crt.encode(), key.encode(), chain.encode(), None,
                                          actor="test")
    finally:
        ctx.store.close()
    assert all(o.ok for o in outcomes), outcomes
    return leaf


def log_in(page, server: PanelProcess, name: str, password: str) -> None:
    page.goto(server.url + "/")
    assert "/login" in page.url
    page.fill("#username", name)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.locator("main").inner_text()


def row(page, service: str):
    return page.locator(f"#service-{service}")


def no_private_key(page) -> None:
    assert "PRIVATE KEY" not in page.content(), page.url
