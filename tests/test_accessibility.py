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
    first = install_directly(panel, ["exim", "dovecot"], 3)
    install_directly(panel, ["exim"], 4)  # a history to roll back in
    from svcssl.operations.context import open_context
    from svcssl.operations.tokens import create_token
    from svcssl.x509.inspect import fingerprint
    from support import pki
    from support.panel import HOST
    from svcssl.operations.install import install_certificate
    ctx = open_context(panel.settings)
    create_token(ctx, "bob", "deploy-hook", 30, actor="test")
    ca = pki.pki()  # a certificate with 28 long names for ftp
    names = [HOST] + [f"customer-{i:02d}-with-a-rather-long-label.hosting-platform.example.net" for i in range(27)]
    leaf, key = ca.leaf(names, key=pki.rsa_key(5))
    _, outcomes = install_certificate(ctx, ["ftp"], pki.pem(leaf), pki.key_pem(key), pki.pem(ca.intermediate), None,
                                      actor="test")
    assert all(o.ok for o in outcomes), outcomes
    ctx.store.close()
    confirmations = [PAGE + f"/rollback/exim?fingerprint={fingerprint(first)}", "/scripts/tokens/deploy-hook/revoke"]
    from support.process import PanelProcess
    server = PanelProcess(panel.config, tmp / "serve.log").start()
    yield panel, server, confirmations
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
    panel, server, confirmations = served
    page = context.new_page()
    problems: list[str] = []
    pages = pages + (confirmations if who == "root" else [])
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
    page.wait_for_function("document.activeElement && document.activeElement.id === 'error-summary'")  # autofocus
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
    panel, server, _ = served
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


def test_a_long_name_list_collapses_and_names_break_only_at_dots(served, context):
    """28 names: three shown, "+25 more" opens the rest; the table still fits 1280 px with its actions in view;
    no name is broken inside a label (each label is on one line)."""
    panel, server, _ = served
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    page.goto(server.url + PAGE)
    cell = page.locator("#service-ftp .domains")
    more = cell.locator("details.more-names summary")
    assert more.inner_text() == "+25 more"
    assert cell.locator(":scope > span.name").count() == 3
    assert not cell.locator("details.more-names span.name").first.is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= page.evaluate("window.innerWidth")
    assert page.locator("#service-ftp").get_by_role("link", name="Apply Certificate to Another Service").is_visible()
    more.click()
    assert cell.locator("details.more-names span.name").nth(24).is_visible()
    split = page.evaluate("""() => {
        const broken = [];
        for (const span of document.querySelectorAll('#service-ftp .domains span.name')) {
            const text = span.textContent; let at = 0;
            for (const label of text.split('.')) {
                const range = document.createRange();
                const walker = document.createTreeWalker(span, NodeFilter.SHOW_TEXT);
                // the label's characters, across the text nodes <wbr> separates
                let offset = 0, node, start = null, end = null;
                while ((node = walker.nextNode())) {
                    const len = node.textContent.length;
                    if (start === null && at < offset + len) start = [node, at - offset];
                    if (end === null && at + label.length <= offset + len) { end = [node, at + label.length - offset]; break; }
                    offset += len;
                }
                range.setStart(...start); range.setEnd(...end);
                const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                if (tops.size > 1) broken.push(label);
                at += label.length + 1;
            }
        }
        return broken; }""")
    assert split == [], split


def test_escape_closes_the_open_disclosure_and_returns_the_focus(served, context):
    panel, server, _ = served
    page = context.new_page()
    log_in(page, server, "root", ROOT_PASSWORD)
    page.goto(server.url + PAGE)
    summary = page.locator("#service-ftp details.more-names summary")
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("#service-ftp details.more-names").get_attribute("open") is not None
    page.keyboard.press("Escape")
    assert page.locator("#service-ftp details.more-names").get_attribute("open") is None
    assert page.evaluate("document.activeElement.textContent.trim()") == "+25 more"
