"""The guided first-boot setup in headless Chromium at phone width, without a line of script of its own: from
a blank box through every step (a static WAN, two users with extensions, a trunk from a provider template,
going back once) to the sign-in page, where the new administrator signs in. Every step, an error shown
too, fits 390 px and has no serious axe-core violation."""
from __future__ import annotations

import re

import pytest

from tests.webadmin.helpers import ADMIN
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures)
from tests.webadmin.test_layout_a11y import AXE, problems
from webadmin.security import SetupCode

pytestmark = pytest.mark.slow


def _next(page, shown: str, button: str = "next") -> None:  # noqa: F811
    from playwright.sync_api import expect

    page.click(f"button[name=go][value={button}]")
    expect(page.locator("input[name=step]")).to_have_value(shown)
    overflow, violations = problems(page, AXE.read_text())
    assert overflow <= 0 and violations == [], (shown, overflow, violations)


def test_guided_setup_from_a_blank_box_to_the_sign_in_page(page, runtime):  # noqa: F811
    from playwright.sync_api import expect

    before = runtime.store.current_id()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup/$"))
    expect(page.locator("#step-of")).to_have_text("Step 1 of 5")
    page.fill("#f-setup_code", SetupCode(runtime.ctx.data_dir).issue())
    page.fill("#f-full_name", ADMIN["full_name"])
    page.fill("#f-company_name", "Acme Ltd")
    page.fill("#f-mail_domain", "acme.example")
    page.select_option("#f-timezone", "Europe/Berlin")
    page.press("#f-mail_domain", "Enter")  # Enter goes forward: the step's first button is "Next step"
    expect(page.locator("input[name=step]")).to_have_value("internet")

    page.fill("#f-lan_address", "10.20.0.1/24")
    page.select_option("#f-wan_mode", "static")
    page.fill("#f-wan_address", "203.0.113.10/24")
    page.fill("#f-wan_gateway", "198.51.100.1")  # outside the WAN subnet: refused by its field
    page.fill("#f-wan_dns", "9.9.9.9")
    _next(page, "internet")
    expect(page.locator("#e-wan_gateway")).to_contain_text("inside the WAN subnet")
    expect(page.locator("#error-summary a[href='#f-wan_gateway']")).to_be_visible()
    expect(page.locator("#f-wan_address")).to_have_value("203.0.113.10/24")  # input kept
    page.fill("#f-wan_gateway", "203.0.113.1")
    _next(page, "people")

    for i, (name, login, ext) in enumerate((("Anna Berg", "anna", "201"), ("Ben Carter", "ben", "202"))):
        page.fill(f"#f-u{i}_full_name", name)
        page.fill(f"#f-u{i}_login", login)
        page.fill(f"#f-u{i}_extension", ext)
    _next(page, "people", "more")
    expect(page.locator("#f-u5_login")).to_be_visible()
    expect(page.locator("#f-u1_full_name")).to_have_value("Ben Carter")
    _next(page, "trunk")

    page.select_option("#f-trunk_template", "sipgate")
    _next(page, "trunk")  # the template's settings, to check and complete
    expect(page.locator("#f-t_host")).to_have_value("sipgate.de")
    page.fill("#f-t_username", "1234567e0")
    _next(page, "summary")
    expect(page.locator("#summary-people")).to_contain_text("Ben Carter")
    _next(page, "trunk", "back")  # going back keeps what was typed
    expect(page.locator("#f-t_username")).to_have_value("1234567e0")
    _next(page, "summary")
    expect(page.locator("#summary-internet")).to_contain_text("203.0.113.1")
    expect(page.locator("#summary-trunk")).to_contain_text("sipgate.de:5060")
    assert runtime.store.current_id() == before  # nothing written yet
    page.fill("#f-password", ADMIN["password"])
    page.fill("#f-password2", ADMIN["password"])
    page.fill("#f-t_password", "trunk-secret-9")
    page.click("button[value=apply]")

    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".banner-success")).to_contain_text("OfficeBox is set up")
    rev = runtime.store.current()
    assert rev.id == before + 1 and rev.summary == "first-boot setup"
    assert [u.login for u in rev.config.users] == ["admin", "anna", "ben"]
    assert rev.config.pbx.trunks[0].username == "1234567e0"
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))
