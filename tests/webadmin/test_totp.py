"""Two-factor sign-in (TOTP by pyotp, recovery codes) through the Flask test client: enrolment confirmed by a
code, the second sign-in step (right, wrong, replayed and throttled codes), recovery codes that work once,
another admin's reset, and the key never shown again nor stored readable by others."""
import re
import stat
import time

import pyotp

from tests.webadmin.helpers import ADMIN, post, sign_in
from webadmin import core

TWO_FACTOR = "/account/two-factor/"


def enrol(client) -> tuple[pyotp.TOTP, list[str]]:
    """Turn two-factor sign-in on for the signed-in admin: (their app's TOTP, the recovery codes shown)."""
    post(client, TWO_FACTOR + "start", {}, form_path=TWO_FACTOR)
    page = client.get(TWO_FACTOR).get_data(as_text=True)
    assert 'src="data:image/svg+xml;base64,' in page  # the QR code for the app
    totp = pyotp.TOTP(re.search(r'<code id="totp-key">([A-Z2-7]{32})</code>', page).group(1))
    answer = post(client, TWO_FACTOR + "confirm", {"code": totp.now()}, form_path=TWO_FACTOR)
    assert answer.status_code == 200
    codes = re.findall(r"<li><code>([A-Z0-9]{5}-[A-Z0-9]{5})</code></li>", answer.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes


def next_code(totp: pyotp.TOTP) -> str:
    """The code of the next 30 s step: accepted (one step of drift) and newer than any code used so far."""
    return totp.at(time.time() + totp.interval)


def password_step(app, password=ADMIN["password"]):
    client = app.test_client()
    return client, sign_in(client, ADMIN["login"], password)


def code_step(client, code):
    return post(client, "/login/code", {"code": code})


def test_enrolment_needs_a_right_code_first(admin_client, runtime):
    post(admin_client, TWO_FACTOR + "start", {}, form_path=TWO_FACTOR)
    answer = post(admin_client, TWO_FACTOR + "confirm", {"code": "12345"}, form_path=TWO_FACTOR)
    assert answer.status_code == 400 and "not the current code" in answer.get_data(as_text=True)
    assert runtime.config.user("admin").totp_secret is None  # still off: a key the app never got locks nobody out


def test_sign_in_asks_for_the_code_after_the_password(admin_client, app, runtime):
    totp, _ = enrol(admin_client)
    wrong_password = password_step(app, "not-the-password")[1]
    assert wrong_password.status_code == 401 and "Wrong login or password" in wrong_password.get_data(as_text=True)
    client, answer = password_step(app)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login/code")
    assert client.get("/").status_code == 302  # not signed in before the code
    wrong = "000000" if next_code(totp) != "000000" else "111111"
    answer = code_step(client, wrong)
    assert answer.status_code == 401 and "Wrong or already used code" in answer.get_data(as_text=True)
    code = next_code(totp)
    answer = code_step(client, code)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    # the same code, seen on the wire or over a shoulder, does not sign in a second time in its window
    other, _ = password_step(app)
    answer = code_step(other, code)
    assert answer.status_code == 401 and other.get("/").status_code == 302


def test_a_recovery_code_works_once(admin_client, app, runtime):
    _, codes = enrol(admin_client)
    client, _ = password_step(app)
    answer = code_step(client, codes[3].lower().replace("-", " "))  # as typed off paper
    assert answer.status_code == 302 and client.get("/").status_code == 200
    assert len(runtime.store.current().config.user("admin").recovery_codes_hash) == 9
    again, _ = password_step(app)
    assert code_step(again, codes[3]).status_code == 401
    assert code_step(again, codes[4]).status_code == 302


def test_code_attempts_are_throttled_like_passwords(admin_client, app):
    totp, _ = enrol(admin_client)
    client, _ = password_step(app)
    for _attempt in range(5):
        assert code_step(client, "999999" if next_code(totp) != "999999" else "888888").status_code == 401
    answer = code_step(client, next_code(totp))  # even the right code waits now
    assert answer.status_code == 429 and "Please wait" in answer.get_data(as_text=True)
    lockout = app.extensions[core.LOCKOUT_KEY]
    lockout.clock = lambda: time.monotonic() + 60  # the wait has passed
    assert code_step(client, next_code(totp)).status_code == 302


def test_the_key_is_never_shown_again_and_stored_0600(admin_client, runtime):
    totp, _ = enrol(admin_client)
    secret = totp.secret
    for path in (TWO_FACTOR, "/users/admin/edit", "/history/", f"/history/{runtime.store.current_id()}"):
        page = admin_client.get(path)
        assert page.status_code == 200 and secret not in page.get_data(as_text=True), path
    holders = [p for p in runtime.ctx.data_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert holders  # the configuration store
    for path in holders:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_another_admin_resets_it_and_staff_have_none(admin_client, app, runtime):
    enrol(admin_client)
    post(admin_client, "/users/new", {"login": "bob", "full_name": "Bob Admin", "role": "admin", "enabled": "on",
                                      "password": "bob-password", "password2": "bob-password"})
    bob = app.test_client()
    assert sign_in(bob, "bob", "bob-password").status_code == 302
    answer = post(bob, "/users/admin/two-factor/reset", {}, form_path="/users/admin/edit")
    assert answer.status_code == 302
    assert runtime.store.current().config.user("admin").totp_secret is None
    client, answer = password_step(app)
    assert answer.status_code == 302 and client.get("/").status_code == 200  # the password alone again
    post(admin_client, "/users/new", {"login": "sam", "full_name": "Sam Staff", "role": "staff", "enabled": "on",
                                      "password": "sam-password", "password2": "sam-password"})
    staff = app.test_client()
    sign_in(staff, "sam", "sam-password")
    assert staff.get(TWO_FACTOR).status_code == 404


def test_turning_it_off_needs_a_current_code(admin_client, runtime):
    totp, _ = enrol(admin_client)
    answer = post(admin_client, TWO_FACTOR + "off", {"off_code": "12"}, form_path=TWO_FACTOR)
    assert answer.status_code == 400
    assert runtime.store.current().config.user("admin").totp_secret == totp.secret
    answer = post(admin_client, TWO_FACTOR + "off", {"off_code": next_code(totp)}, form_path=TWO_FACTOR)
    assert answer.status_code == 302
    assert runtime.store.current().config.user("admin").totp_secret is None
