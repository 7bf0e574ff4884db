"""Every page without a path parameter, the edit pages that take one, and edit forms showing their errors, in
headless Chromium at 390x844: the page body never scrolls sideways (wide tables scroll in their own box), and
axe-core (vendored by `make vendor`) finds no serious or critical violation."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.webadmin.helpers import ADMIN, admin_client_for, post, sign_in
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures: the box's HTTPS server, Chromium)
from tests.webadmin.test_users import ANNA

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


# what the edit pages with a path parameter show: (POST path, data, form page), made before Chromium starts
MADE = [("/users/new", ANNA, None), ("/attendant/new", {"name": "main"}, "/attendant/"),
        ("/attendant/profiles/new", {"name": "office"}, "/attendant/profiles"),
        ("/conference/new", {"number": "800", "name": "board", "title": "Board", "max_participants": "6",
                             "alone": "music", "mute_key": "#"}, None),
        ("/vpn/tunnels", {"name": "hq", "peer": "198.51.100.1", "local_subnets": "10.20.0.0/24",
                          "remote_subnets": "10.1.0.0/24", "auth": "certificate"}, "/vpn/")]
EDIT_PAGES = ["/users/anna/edit", "/users/anna/delete", "/attendant/main", "/attendant/main/menus/main",
              "/attendant/profiles/office", "/conference/board/edit", "/voice/prompts/fr/goodbye",
              "/vpn/tunnels/hq/import"]
# edit forms sent with wrong values in the browser: (page, {field: typed}, the field the summary links to)
WRONG = [("/firewall/", {"name": "Web", "ports": "443", "sources": "10.0.0.300/8"}, "sources"),
         ("/proxy/", {"cache_mb": "lots", "blocked_domains": "games.example"}, "cache_mb"),
         ("/cti/", {"scope": "", "password": "short"}, "account_scope"),
         ("/vpn/", {"peer": "203.0.113.9", "remote_subnets": "10.99.0.0/33"}, "name"),
         ("/attendant/main", {"timeout": "99"}, "timeout"),
         ("/attendant/profiles/office", {"hours_mon": "9 to 5", "dates": "soon"}, "hours_mon"),
         ("/conference/board/edit", {"number": "8x"}, "number"),
         ("/pbx/recording/", {"retention_days": "-4"}, "retention_days"),
         ("/accounting/", {"tariffs_text": "06;twelve cents"}, "tariffs_text"),
         ("/network/", {"destination": "10.50.0.0/33", "gateway": "10.20.0.254"}, "destination"),
         ("/users/anna/edit", {"extension": "2x", "email": "not-an-address"}, "extension"),
         ("/settings/", {"mail_domain": "not a domain"}, "mail_domain"),
         ("/account/", {"current_password": "not-my-password", "password": "short", "password2": "short"},
          "current_password"),
         ("/mail/aliases", {"name": "sales team", "targets": "nobody"}, "name"),
         ("/features/", {"pickup": "8x"}, "pickup"),
         ("/voice/moh", {"name": "quiet music!"}, "name"),
         ("/lan/dns", {"ttl": "600", "name": "nas", "value": "not-an-ip"}, "value"),
         ("/ntp/", {"servers": "time server!"}, "servers"),
         ("/system/", {"passphrase2": "short", "passphrase": "short"}, "passphrase")]


@pytest.fixture
def edit_pages(routes, runtime):
    """The things those pages edit (the wizard ran in `routes`)."""
    from webadmin import create_app

    client = create_app(runtime).test_client()
    assert sign_in(client).status_code == 302
    for path, data, form_path in MADE:
        assert post(client, path, data, form_path).status_code == 302, path
    return EDIT_PAGES


def sign_in_at_390(page) -> str:  # noqa: F811
    """Signed in as ADMIN at phone width; the axe-core script to inject."""
    assert AXE.exists(), "axe-core is not vendored: run `make vendor`"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return AXE.read_text()


def problems(page, script: str) -> tuple[int, list[str]]:  # noqa: F811
    """(px the page is wider than the screen, serious or critical axe-core violations) of the shown page."""
    overflow = page.evaluate(OVERFLOW)
    page.evaluate(script + "\n;0")  # not a script tag: the page's CSP forbids inline scripts
    return overflow, page.evaluate(AXE_RUN)


def test_every_page_fits_390_px_and_has_no_serious_axe_violation(routes, page):  # noqa: F811
    script = sign_in_at_390(page)
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
        overflow, found = problems(page, script)
        if overflow > 0:
            wide[path] = overflow
        if found:
            violations[path] = found
    assert seen > 30, routes
    assert not wide and not violations, \
        f"pages wider than 390 px (px too wide): {wide}; serious or critical axe-core violations: {violations}"


def test_edit_pages_and_forms_showing_errors_fit_390_px_without_serious_axe_violation(edit_pages, page):  # noqa: F811
    script = sign_in_at_390(page)
    wide, violations = {}, {}
    for path in edit_pages:
        response = page.goto(path)
        assert response.status == 200, path
        overflow, found = problems(page, script)
        wide.update({path: overflow} if overflow > 0 else {})
        violations.update({path: found} if found else {})
    for path, typed, field in WRONG:
        page.goto(path)
        form = page.locator(f'form:has([name="{next(iter(typed))}"])')
        for name, value in typed.items():
            form.locator(f'[name="{name}"]').fill(value)
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        summary = page.locator("#error-summary")
        assert summary.is_visible() and summary.locator(f'a[href="#f-{field}"]').count() == 1, (path, page.content())
        assert page.evaluate("document.activeElement.id") == "error-summary", path
        assert page.locator(f"#f-{field}").get_attribute("aria-describedby").startswith(f"e-{field}"), path
        key = f"{path} (with errors)"
        overflow, found = problems(page, script)
        wide.update({key: overflow} if overflow > 0 else {})
        violations.update({key: found} if found else {})
    assert not wide and not violations, \
        f"pages wider than 390 px (px too wide): {wide}; serious or critical axe-core violations: {violations}"
