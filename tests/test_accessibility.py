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


LIVE = "[role=alert], [role=status], [aria-live]:not([aria-live=off])"


def check(page, url: str, server) -> list[str]:
    page.goto(server.url + url)
    page.wait_for_load_state()
    found = axe_violations(page)
    problems = [f"{url}:\n{describe(found)}"] if found else []
    if page.locator(LIVE).count() > 1:
        problems.append(f"{url}: {page.locator(LIVE).count()} live regions (one per page)")
    return problems


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
    assert page.evaluate("document.activeElement.id") == "error-summary"
    invalid = page.locator("[aria-invalid=true]")
    assert invalid.count() >= 1
    for i in range(invalid.count()):
        described = invalid.nth(i).get_attribute("aria-describedby")
        assert described and page.locator(f"#{described}").count() == 1, invalid.nth(i).get_attribute("name")
        assert page.locator(f"#{described}").inner_text().strip()
    assert page.locator(LIVE).count() <= 1
    problems += [f"install with errors:\n{describe(found)}"] if (found := axe_violations(page)) else []
    if who == "root":
        page.goto(server.url + "/scripts2/maintenance")
        page.locator("#dry-run").click()
        page.wait_for_load_state()
        page.goto(server.url + "/scripts2/maintenance")
        assert page.locator("details.run").count() >= 1
        problems += [f"maintenance report:\n{describe(found)}"] if (found := axe_violations(page)) else []
    assert not problems, "\n".join(problems)


def test_keyboard_alone_reaches_every_action_with_a_visible_focus(served, context):
    """Tab from the top of the service table page: the skip link comes first and leads to the content;
    every row's Reset, Details and Apply link is reached, each drawn with a focus ring."""
    panel, server = served
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    page.goto(server.url + PAGE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    assert page.evaluate("getComputedStyle(document.activeElement).left") != "-999px"
    wanted = {(s, a) for s in ("cpanel", "dovecot", "exim", "ftp") for a in ("Reset", "Details", "Apply")}
    reached = set()
    for _ in range(200):
        page.keyboard.press("Tab")
        focus = page.evaluate("""() => { const e = document.activeElement; const tr = e.closest('tr[data-service]');
            const style = getComputedStyle(e);
            return {service: tr && tr.dataset.service, text: e.textContent.trim(),
                    ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2}; }""")
        if focus["service"] and (focus["service"], focus["text"]) in wanted:
            assert focus["ring"], focus
            reached.add((focus["service"], focus["text"]))
        if reached == wanted:
            break
    assert reached == wanted, sorted(wanted - reached)
