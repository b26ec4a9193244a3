"""What the browser tests check for keyboard and screen-reader users: an axe-core audit of the
page as it is shown (axe-core from the console's own devDependencies, injected into the page),
and where the keyboard focus is."""

import json
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Page

from devstack import REPO_ROOT
from tests.console.conftest import ARTIFACTS

AXE_SCRIPT = REPO_ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
"""Issue 19: 0 serious or critical violations on every main page. Moderate and minor ones are
written to the artifacts (axe-<page>.json) for a person to read, not failed on."""

RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 6).map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
    count: v.nodes.length,
  }));
}"""


@dataclass
class Audit:
    """The axe-core violations of each page audited in one walk, by page name."""

    pages: dict[str, list[dict[str, Any]]]

    def blocking(self) -> dict[str, list[str]]:
        """page -> "rule (impact, n nodes): first targets" for every serious or critical one."""
        found: dict[str, list[str]] = {}
        for name, violations in self.pages.items():
            for v in violations:
                if v["impact"] in BLOCKING_IMPACTS:
                    targets = "; ".join(n["target"] for n in v["nodes"][:3])
                    found.setdefault(name, []).append(
                        f"{v['id']} ({v['impact']}, {v['count']} nodes): {targets}"
                    )
        return found

    def by_rule(self) -> dict[str, int]:
        """rule id -> nodes violating it over every page (any impact): the report's numbers."""
        counts: dict[str, int] = {}
        for violations in self.pages.values():
            for v in violations:
                key = f"{v['id']} ({v['impact']})"
                counts[key] = counts.get(key, 0) + v["count"]
        return dict(sorted(counts.items()))


def new_audit() -> Audit:
    return Audit(pages={})


async def enable_axe(page: Page) -> None:
    """axe-core in every document the page loads from now on. An init script, since the
    console's Content-Security-Policy (script-src 'self') refuses an inline <script> and eval;
    call it before the page's first goto."""
    await page.add_init_script(path=AXE_SCRIPT)


async def audit_page(page: Page, audit: Audit, name: str) -> list[dict[str, Any]]:
    """Run axe-core on the page as shown now and keep its violations under `name` (also written
    to test-artifacts/console/axe-<name>.json)."""
    assert await page.evaluate("typeof window.axe !== 'undefined'"), (
        "no axe-core in the page: enable_axe(page) before its first goto"
    )
    violations: list[dict[str, Any]] = await page.evaluate(RUN_AXE)
    audit.pages[name] = violations
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(violations, indent=2) + "\n")
    return violations


def assert_no_blocking_violations(audit: Audit) -> None:
    blocking = audit.blocking()
    print(f"[axe] violations by rule over {len(audit.pages)} pages: {audit.by_rule()}")
    assert not blocking, "serious or critical axe-core violations:\n" + "\n".join(
        f"  {page}: {line}" for page, lines in blocking.items() for line in lines
    )


FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  return {
    tag: el.tagName.toLowerCase(),
    testid: el.getAttribute("data-testid"),
    text: (el.textContent || "").trim().slice(0, 80),
  };
}"""


async def focused_element(page: Page) -> dict[str, Any] | None:
    """What has the keyboard focus, or None when it fell to the page body."""
    return await page.evaluate(FOCUSED)
