"""Accessibility (issue 22): axe-core's WCAG 2.2 A/AA rules in Debian's Chromium on every page of
the panel, for root and for a reseller with the privilege: no critical, serious or moderate
violation. Keyboard: a skip link, every action reachable with Tab, a visible focus ring.
"""

from __future__ import annotations

import pytest

from support.axe import axe_violations, describe
from support.browser import PAGE, install_directly, log_in
from support.panel import BOB_PASSWORD, ROOT_PASSWORD, make_panel

ROOT_PAGES = [
    "/", PAGE, PAGE + "/details/exim", PAGE + "/install", PAGE + "/install?apply_from=exim",
    PAGE + "/reset/exim", PAGE + "/csr", PAGE + "/browse/account", PAGE + "/browse/apache",
    "/scripts/users", "/scripts/users/alice/password", "/scripts/users/alice/delete", "/scripts/resellers",
    "/scripts/tokens", "/scripts/audit", "/scripts2/maintenance",
]
RESELLER_PAGES = ["/", PAGE, PAGE + "/details/exim", PAGE + "/install", PAGE + "/install?apply_from=exim",
                  PAGE + "/reset/exim", PAGE + "/browse/account", "/scripts/tokens"]


@pytest.fixture
def context(browser):  # noqa: F811 - axe is injected as a script: the panel's CSP is bypassed for it alone
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800}, bypass_csp=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, browser):
    tmp = tmp_path_factory.mktemp("a11y")
    panel = make_panel(tmp)
    install_directly(panel, ["exim", "dovecot"], 3)
    from support.process import PanelProcess
    server = PanelProcess(panel.config, tmp / "serve.log").start()
    yield panel, server
    server.stop()


def check(page, url: str, server) -> list[str]:
    page.goto(server.url + url)
    page.wait_for_load_state()
    found = axe_violations(page)
    return [f"{url}:\n{describe(found)}"] if found else []


@pytest.mark.parametrize("who,password,pages", [("root", ROOT_PASSWORD, ROOT_PAGES), ("bob", BOB_PASSWORD, RESELLER_PAGES)],
                         ids=["root", "reseller"])
def test_every_page_passes_axe(served, context, who, password, pages):
    panel, server = served
    page = context.new_page()
    problems: list[str] = []
    page.goto(server.url + "/login")
    problems += check(page, "/login", server)
    log_in(page, server, who, password)
    for url in pages:
        problems += check(page, url, server)
    # the Install form with errors (nothing pasted), and the result page of a dry run (root)
    page.goto(server.url + PAGE + "/install")
    page.locator("#install-button").click()
    page.wait_for_load_state()
    assert page.locator("#error-summary").count() == 1
    problems += [f"install with errors:\n{describe(found)}"] if (found := axe_violations(page)) else []
    if who == "root":
        page.goto(server.url + "/scripts2/maintenance")
        page.locator("#dry-run").click()
        page.wait_for_load_state()
        page.goto(server.url + "/scripts2/maintenance")
        assert page.locator("details.run").count() >= 1
        problems += [f"maintenance report:\n{describe(found)}"] if (found := axe_violations(page)) else []
    assert not problems, "\n".join(problems)
