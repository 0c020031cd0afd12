"""Helpers for the browser tests: signing in, screenshots, layout measured by geometry, and
axe-core's findings on a page."""

from __future__ import annotations

from pathlib import Path

import pytest

SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
# axe-core, installed by scripts/setup.sh from tests/a11y/package-lock.json
AXE = Path(__file__).resolve().parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}


def sign_in(browser, live_server, name: str, viewport: dict = DESKTOP):
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(live_server.url + "/")
    assert "/accounts/login/" in page.url, "every page asks to sign in first"
    page.fill("#id_username", name)
    page.fill("#id_password", f"pw-{name}-12345")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    return page


def start_files_backup(page, live_server, name: str) -> None:
    """Starts a backup of the files only from the console's form; lands on its status page."""
    page.goto(f"{live_server.url}/backups/new/")
    page.fill("input[name=name]", name)
    page.uncheck("input[name=include_elasticsearch]")
    page.click("button:has-text('Start backup')")
    page.wait_for_url("**/backups/*/")


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# What overflows the viewport: the page's own scroll width, and every visible element (outside
# the scroll boxes that are meant to scroll sideways) whose box pokes out to the right or left.
_OVERFLOW = r"""() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  if (document.documentElement.scrollWidth > width) {
    out.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px");
  }
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".table-wrap, pre, .paths")) continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    if (box.right > width + 1 || box.left < -1) {
      const classes = typeof el.className === "string" ? el.className.trim() : "";
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (classes ? "." + classes.split(/\s+/).join(".") : "");
      out.push(name + " spans " + Math.round(box.left) + ".." + Math.round(box.right) + " px");
    }
  }
  return out.slice(0, 10);
}"""


def overflow(page) -> list[str]:
    """Elements that do not fit the viewport's width (empty when the layout holds)."""
    return page.evaluate(_OVERFLOW)


def inside_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as drawn now, one line each."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/setup.sh (it installs axe-core)", False)
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ["violations"]});
          return result.violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + " (" + v.impact + "): " + v.help + " at " +
                 v.nodes.slice(0, 3).map(n => n.target.join(" ") + " " +
                 (n.failureSummary || "").replace(/\\s+/g, " ")).join(" | "));
        }"""
    )
    return found
