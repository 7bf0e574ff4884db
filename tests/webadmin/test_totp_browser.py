"""Two-factor sign-in in headless Chromium over HTTPS: set up on the account page (QR code shown, confirmed
with a code), recovery codes shown, then a sign-in that asks for the code after the password."""
import re
import threading
import time

import pyotp
import pytest

from tests.webadmin.helpers import ADMIN, admin_client_for
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_totp_sign_in_in_a_real_browser(page, runtime):  # noqa: F811
    from playwright.sync_api import expect

    wizard = threading.Thread(target=admin_client_for, args=(runtime,))  # Playwright's loop owns this thread
    wizard.start()
    wizard.join(timeout=60)
    assert runtime.store.current().config.user(ADMIN["login"]) is not None, "first-boot wizard failed"
    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    page.goto("/account/")
    page.click("text=Manage two-factor sign-in")
    page.click("button:has-text('Set up two-factor sign-in')")
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # the SVG is allowed and drawn
    totp = pyotp.TOTP(page.locator("#totp-key").inner_text())
    page.fill("#f-code", totp.now())
    page.click("button:has-text('Turn on')")
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.goto("/account/two-factor/")
    expect(page.locator("main h2").first).to_have_text("Two-factor sign-in is on")
    assert totp.secret not in page.content()

    page.click("text=Sign out")
    page.goto("/users/")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/login/code\?next=/users/$"))
    page.fill("#f-code", "12345")
    page.click("button:has-text('Sign in')")
    expect(page.locator(".banner-error")).to_have_text("Wrong or already used code.")
    page.fill("#f-code", totp.at(time.time() + totp.interval))
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(re.compile(r"/users/$"))
    expect(page.locator(".topbar")).to_contain_text(ADMIN["full_name"])
    assert runtime.store.current().config.user("admin").totp_secret == totp.secret
