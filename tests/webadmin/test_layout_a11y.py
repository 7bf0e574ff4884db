"""Every page without a path parameter, in headless Chromium at 390x844: the page body never scrolls
sideways (wide tables scroll in their own box), and axe-core (vendored by `make vendor`) finds no serious or
critical violation."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.webadmin.helpers import ADMIN, admin_client_for
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures: the box's HTTPS server, Chromium)

pytestmark = pytest.mark.slow
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
DOWNLOADS = (".json", ".csv", ".txt", ".pcap", ".svg", ".ics", ".xml", ".pdf", ".zip")
SKIP = ("/logout", "/static/", "/webphone/ws", "/sw.js")
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => v.id + " (" + v.impact + "): " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "));
}"""


def get_routes(app) -> list[str]:
    """Every GET route of the blueprints that takes no parameter and answers an HTML page."""
    found = set()
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and rule.endpoint != "static" \
                and not rule.rule.endswith(DOWNLOADS) \
                and not rule.rule.startswith(SKIP):
            found.add(rule.rule)
    return sorted(found)


@pytest.fixture
def routes(runtime):
    """The wizard has run (before Chromium starts: its driver holds an event loop in this thread)."""
    from webadmin import create_app

    admin_client_for(runtime)
    return get_routes(create_app(runtime))


def test_every_page_fits_390_px_and_has_no_serious_axe_violation(routes, page):  # noqa: F811
    assert AXE.exists(), "axe-core is not vendored: run `make vendor`"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    script = AXE.read_text()
    wide, violations, seen = {}, {}, 0
    for path in routes:
        try:
            response = page.goto(path)
        except Exception as exc:  # a download (an export without a known suffix)
            if "Download is starting" not in str(exc):
                raise
            continue
        if response is None or response.status >= 400 or "text/html" not in response.headers.get("content-type", ""):
            continue
        seen += 1
        overflow = page.evaluate(OVERFLOW)
        if overflow > 0:
            wide[path] = overflow
        page.evaluate(script + "\n;0")  # not a script tag: the page's CSP forbids inline scripts
        found = page.evaluate(AXE_RUN)
        if found:
            violations[path] = found
    assert seen > 30, routes
    assert not wide and not violations, \
        f"pages wider than 390 px (px too wide): {wide}; serious or critical axe-core violations: {violations}"
