"""axe-core in Chromium: the accessibility rules of WCAG 2.2 A/AA run against a loaded page.

axe-core is pinned and downloaded, checked by its npm integrity, by `scripts/install.sh --test`
into .venv/share; a missing copy is a failure under CI (the README's test command installs it).
"""

from __future__ import annotations

from pathlib import Path

from support.config import skip_or_fail

AXE_VERSION = "4.14.1"
AXE_JS = Path(__file__).resolve().parents[2] / ".venv" / "share" / f"axe-core-{AXE_VERSION}" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"]
COUNTED = ("critical", "serious", "moderate")


def axe_violations(page) -> list[dict]:
    """The violations of impact critical, serious or moderate on the page as it is now."""
    if not AXE_JS.is_file():
        skip_or_fail(f"missing axe-core {AXE_VERSION} at {AXE_JS}: run `bash scripts/test.sh` (it installs it)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    return [v for v in result["violations"] if v["impact"] in COUNTED]


def describe(violations: list[dict]) -> str:
    """One line per violation and node: rule, impact, target, axe's own summary."""
    lines = []
    for violation in violations:
        for node in violation["nodes"][:5]:
            lines.append(f"{violation['id']} ({violation['impact']}): {node['target']} — "
                         f"{node.get('failureSummary', '').splitlines()[-1].strip() if node.get('failureSummary') else ''}")
    return "\n".join(lines)
