"""The skip link and the phone-sized navigation menu (base.html), in headless Chromium: at 390x844 the skip
link is the first tab stop and moves the focus to the page's main content, the menu is collapsed and opens
with its summary, the page never scrolls sideways and axe-core finds no serious violation; at desktop width
the menu is open with no summary to click."""
from __future__ import annotations

import pytest

from tests.webadmin.helpers import admin_client_for
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures)
from tests.webadmin.test_layout_a11y import problems, sign_in_at_390

pytestmark = pytest.mark.slow
PAGES = ["/", "/users/", "/pbx/", "/settings/", "/system/", "/account/"]


@pytest.fixture
def wizard_done(runtime):
    admin_client_for(runtime)  # before Chromium starts (its driver holds an event loop in this thread)


def test_skip_link_and_phone_menu_at_390(wizard_done, page):  # noqa: F811
    script = sign_in_at_390(page)
    for path in PAGES:
        page.goto(path)
        nav_link = page.locator("nav.sidebar .nav-group a").first
        assert not nav_link.is_visible(), f"{path}: the menu is open on a phone"
        skip = page.locator("a.skip-link")
        assert skip.bounding_box()["y"] < 0, f"{path}: the skip link shows before it has the focus"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link", path
        assert skip.bounding_box()["y"] >= 0, f"{path}: the focused skip link is not on the screen"
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"{path}: no focus outline on the skip link"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main", path
        overflow, violations = problems(page, script)
        assert overflow <= 0, f"{path} is {overflow} px wider than the screen"
        assert violations == [], f"{path}: {violations}"
    page.locator("nav.sidebar summary").click()
    assert page.locator("nav.sidebar .nav-group a").first.is_visible()
    overflow, violations = problems(page, script)
    assert overflow <= 0 and violations == [], (overflow, violations)
    page.locator("nav.sidebar .nav-group a[href='/users/']").click()
    page.wait_for_url("**/users/")


def test_menu_open_on_desktop(wizard_done, page):  # noqa: F811
    sign_in_at_390(page)
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto("/users/")
    assert page.locator("nav.sidebar .nav-group a").first.is_visible()
    assert not page.locator("nav.sidebar summary").is_visible()


def test_a_failed_form_low_on_a_long_page_gets_the_focus_and_the_screen(wizard_done, page):  # noqa: F811
    """The VPN page's tunnel form, far below the top at 390 px: sent wrong, the page comes back on that form
    (its #fragment) with the focus on its error summary, which is on the screen."""
    script = sign_in_at_390(page)
    page.goto("/vpn/")
    page.fill("#f-name", "hq")
    page.fill("#f-peer", "203.0.113.9")
    page.fill("#f-remote_subnets", "10.99.0.0/33")
    page.locator("#form-tunnel button[type=submit]").click()
    page.wait_for_url("**/vpn/tunnels#form-tunnel")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.evaluate("document.activeElement.closest('form').id") == "form-tunnel"
    box = page.locator("#error-summary").bounding_box()
    assert 0 <= box["y"] < 844, box
    assert page.evaluate("window.scrollY") > 0  # the page did scroll down to it
    overflow, violations = problems(page, script)
    assert overflow <= 0 and violations == [], (overflow, violations)
