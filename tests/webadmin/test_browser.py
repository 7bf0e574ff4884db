"""The web admin in headless Chromium over HTTPS: wizard, sign-in, users, rollback, CSRF refusal."""
import re
import threading

import pytest

from appliance.certs import ensure_certificate
from tests.webadmin.helpers import ADMIN
from webadmin import create_app
from webadmin.security import SetupCode
from webadmin.server import AdminServer

pytestmark = pytest.mark.slow
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15000


@pytest.fixture
def server(runtime, tmp_path):
    """The app served by the box's HTTPS server on an ephemeral loopback port, in a thread."""
    cert, key = ensure_certificate(tmp_path / "tls", "localhost", alt_names=("127.0.0.1",))
    httpd = AdminServer("127.0.0.1", 0, create_app(runtime), cert, key)
    httpd.prepare()
    thread = threading.Thread(target=httpd.serve, name="webadmin-test", daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.port}"
    httpd.stop()
    thread.join(timeout=10)


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, base_url=server,
                                      viewport={"width": 1280, "height": 860})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def test_admin_in_a_real_browser(page, runtime, tmp_path):
    from playwright.sync_api import expect

    console = []
    page.on("console", lambda message: console.append(message.text))
    # a new box opens the first-boot wizard
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/setup/$"))
    page.fill("#f-setup_code", SetupCode(runtime.ctx.data_dir).issue().lower())  # as read off the console
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-full_name", ADMIN["full_name"])
    page.fill("#f-company_name", "Acme Ltd")
    page.fill("#f-mail_domain", "acme.example")
    page.select_option("#f-timezone", "Europe/Berlin")
    for shown in ("internet", "people", "trunk", "summary"):  # the guided setup: no users nor trunk yet
        page.click("button[value=next]")
        expect(page.locator("input[name=step]")).to_have_value(shown)
        if shown == "internet":
            page.fill("#f-lan_address", "10.20.0.1/24")
    page.fill("#f-password", ADMIN["password"])
    page.fill("#f-password2", ADMIN["password"])
    page.click("button[value=apply]")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".banner-success")).to_contain_text("OfficeBox is set up")
    assert page.goto("/setup/").status == 404

    # a wrong password is refused with a message; the right one opens the dashboard
    page.goto("/login")
    page.fill("#f-login", ADMIN["login"])
    page.fill("#f-password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".banner-error")).to_have_text("Wrong login or password.")
    page.fill("#f-password", ADMIN["password"])
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dashboard")
    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-officebox")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    expect(page.locator(".topbar")).to_contain_text(ADMIN["full_name"])
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # create a user and see it listed
    page.click("nav >> text=Users")
    page.click("text=New user")
    page.fill("#f-login", "anna")
    page.fill("#f-full_name", "Anna Example")
    page.fill("#f-extension", "2x")
    page.fill("#f-password", "anna-password")
    page.fill("#f-password2", "anna-password")
    page.click("button:has-text('Create user')")
    expect(page.locator("#e-extension")).to_have_text("use 2 to 6 digits")
    page.fill("#f-extension", "201")
    page.fill("#f-password", "anna-password")
    page.fill("#f-password2", "anna-password")
    page.click("button:has-text('Create user')")
    expect(page.locator(".banner-success")).to_have_text("User anna was created.")
    expect(page.locator("#user-anna")).to_contain_text("201")
    created = runtime.store.current_id()

    # change the extension, then roll that change back from the history page
    page.click("#user-anna >> text=Edit")
    page.fill("#f-extension", "250")
    page.click("button:has-text('Save')")
    expect(page.locator("#user-anna")).to_contain_text("250")
    page.click("nav >> text=Configuration history")
    expect(page.locator(f"#rev-{created + 1}")).to_contain_text("edit user anna")
    page.click(f"#rev-{created} >> text=#{created}")
    page.click(f"button:has-text('Roll back to #{created}')")
    # the rollback's progress page reloads itself until it says its result
    expect(page.locator(".banner-success")).to_contain_text(f"new revision #{created + 2} is applied")
    page.click(f"text=See revision #{created + 2}")
    expect(page.locator("h1")).to_have_text(f"Revision #{created + 2}")
    expect(page.locator(".diff-add").filter(has_text='"201"')).to_have_count(1)
    page.click("nav >> text=Users")
    expect(page.locator("#user-anna")).to_contain_text("201")
    assert runtime.store.current().config.user("anna").extension == "201"

    # a form posted without its CSRF token is refused and changes nothing
    page.click("text=New user")
    page.eval_on_selector("form.card input[name=csrf_token]", "field => field.remove()")
    page.fill("#f-login", "mallory")
    page.fill("#f-full_name", "Mallory")
    page.click("button:has-text('Create user')")
    expect(page.locator(".error-page")).to_contain_text("security token is missing")
    assert runtime.store.current().config.user("mallory") is None

    # sign out
    page.goto("/")
    page.click("text=Sign out")
    expect(page.locator(".banner-info")).to_have_text("You are signed out.")
    page.goto("/users/")
    expect(page).to_have_url(re.compile(r"/login\?next=/users/$"))
    assert not [text for text in console if "Content Security Policy" in text], console
