"""Sign-in, sessions, CSRF, lock-out, cookie and header hardening."""
import stat

from tests.webadmin.helpers import ADMIN, csrf_of, post, run_wizard, sign_in
from webadmin import create_app
from webadmin.core import LOCKOUT_KEY, SESSIONS_KEY
from webadmin.security import Lockout, load_secret_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_secret_key_is_made_once_and_private(tmp_path):
    first = load_secret_key(tmp_path)
    path = tmp_path / "webadmin-secret.key"
    assert len(first) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["webadmin-secret.key"]


def test_sessions_survive_an_app_restart_only_with_the_same_key(runtime):
    assert create_app(runtime).secret_key == create_app(runtime).secret_key


def test_login_and_logout(client):
    run_wizard(client)
    assert client.get("/users/").status_code == 302
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "__Host-officebox="):
        assert flag in cookie
    assert client.get("/users/").status_code == 200
    stolen = client.get_cookie("__Host-officebox").value
    assert post(client, "/logout", {}, form_path="/").status_code == 302
    assert client.get("/users/").headers["Location"].startswith("/login")
    client.set_cookie("__Host-officebox", stolen)  # a copy of the old cookie is dead after sign-out
    assert client.get("/users/").status_code == 302


def test_login_redirects_to_next_but_only_locally(client):
    run_wizard(client)
    response = client.get("/history/")
    assert response.headers["Location"] == "/login?next=/history/"
    token = csrf_of(client, "/login")
    ok = client.post("/login?next=/history/", data={"csrf_token": token, **_creds()})
    assert ok.headers["Location"] == "/history/"
    post(client, "/logout", {}, form_path="/")
    for target in ("//evil.example/", "/%09/evil.example", "/\\evil.example", "https://evil.example/"):
        token = csrf_of(client, "/login")
        evil = client.post("/login", query_string={"next": target.replace("%09", "\t")},
                           data={"csrf_token": token, **_creds()})
        assert evil.headers["Location"] == "/", target
        post(client, "/logout", {}, form_path="/")


def _creds():
    return {"login": ADMIN["login"], "password": ADMIN["password"]}


def test_wrong_password_and_unknown_login_look_the_same(client):
    run_wizard(client)
    wrong = sign_in(client, password="wrong-password")
    unknown = sign_in(client, login="nobody")
    for response in (wrong, unknown):
        assert response.status_code == 401 and "Wrong login or password." in response.get_data(as_text=True)
    assert client.get("/users/").status_code == 302


def test_lockout_grows_and_shows_the_wait(app, client):
    run_wizard(client)
    clock = FakeClock()
    app.extensions[LOCKOUT_KEY].clock = clock
    for _ in range(Lockout.FREE_TRIES - 1):
        assert "Please wait" not in sign_in(client, password="bad-guess").get_data(as_text=True)
    fifth = sign_in(client, password="bad-guess").get_data(as_text=True)
    assert "Please wait 2 seconds" in fifth
    refused = sign_in(client)  # even the right password is refused during the wait
    assert refused.status_code == 429 and "Please wait 2 seconds" in refused.get_data(as_text=True)
    clock.now += 2.5
    assert "Please wait 4 seconds" in sign_in(client, password="bad-guess").get_data(as_text=True)
    clock.now += 4.5
    assert sign_in(client).status_code == 302  # success after the wait clears the counters
    post(client, "/logout", {}, form_path="/")
    assert sign_in(client, password="bad-guess").status_code == 401
    assert sign_in(client).status_code == 302


def test_lockout_per_client_address(app, client):
    run_wizard(client)
    app.extensions[LOCKOUT_KEY].clock = FakeClock()
    for n in range(Lockout.FREE_TRIES):
        sign_in(client, login=f"guess{n}", password="bad-guess")  # a different login each time
    response = sign_in(client)
    assert response.status_code == 429 and "Please wait" in response.get_data(as_text=True)
    other = app.test_client()
    token = csrf_of(other, "/login")
    ok = other.post("/login", data={"csrf_token": token, **_creds()},
                    environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert ok.status_code == 302  # another address is not held back by this one's failures


def test_lockout_delay_is_bounded():
    assert [Lockout.delay(n) for n in range(8)] == [0, 0, 0, 0, 0, 2, 4, 8]
    assert Lockout.delay(10_000) == Lockout.MAX_DELAY


def test_post_without_or_with_wrong_csrf_token_is_refused(admin_client, runtime):
    before = runtime.store.current_id()
    data = {"login": "eve", "full_name": "Eve", "role": "admin", "enabled": "on",
            "password": "evil-password", "password2": "evil-password"}
    for extra in ({}, {"csrf_token": "forged"}):
        response = admin_client.post("/users/new", data={**data, **extra})
        assert response.status_code == 400
        assert "security token is missing or out of date" in response.get_data(as_text=True)
    assert runtime.store.current_id() == before
    token = csrf_of(admin_client, "/users/new")
    header = admin_client.post("/users/new", data=data, headers={"X-CSRF-Token": token})
    assert header.status_code == 302  # the header form is accepted too
    assert runtime.store.current().config.user("eve") is not None


def test_login_itself_needs_the_csrf_token(client):
    run_wizard(client)
    client.get("/login")
    response = client.post("/login", data=_creds())
    assert response.status_code == 400 and client.get("/users/").status_code == 302


def test_staff_get_only_their_account_page(admin_client, client, app):
    post(admin_client, "/users/new", {"login": "sam", "full_name": "Sam Staff", "role": "staff",
                                      "enabled": "on", "password": "sam-password", "password2": "sam-password"})
    staff = app.test_client()
    assert sign_in(staff, "sam", "sam-password").headers["Location"] == "/account/"
    assert staff.get("/").headers["Location"] == "/account/"
    for path in ("/users/", "/history/", "/users/new"):
        assert staff.get(path).status_code == 403, path
    page = staff.get("/account/").get_data(as_text=True)
    assert "Sam Staff" in page and "sam@acme.example" in page and "Configuration history" not in page
    changed = post(staff, "/account/", {"current_password": "sam-password", "password": "new-sam-pass",
                                        "password2": "new-sam-pass"})
    assert changed.status_code == 302 and staff.get("/account/").status_code == 200  # still signed in
    wrong = post(staff, "/account/", {"current_password": "sam-password", "password": "x" * 10,
                                      "password2": "x" * 10})
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    fresh = app.test_client()
    assert sign_in(fresh, "sam", "sam-password").status_code == 401
    assert sign_in(fresh, "sam", "new-sam-pass").status_code == 302


def test_password_reset_and_disable_end_other_sessions(admin_client, app):
    post(admin_client, "/users/new", {"login": "bob", "full_name": "Bob", "role": "admin", "enabled": "on",
                                      "password": "bob-password", "password2": "bob-password"})
    bob = app.test_client()
    sign_in(bob, "bob", "bob-password")
    assert bob.get("/users/").status_code == 200
    post(admin_client, "/users/bob/password", {"password": "reset-pass-1", "password2": "reset-pass-1"},
         form_path="/users/bob/edit")
    assert bob.get("/users/").status_code == 302
    sign_in(bob, "bob", "reset-pass-1")
    assert bob.get("/users/").status_code == 200
    post(admin_client, "/users/bob/enabled", {}, form_path="/users/")
    assert bob.get("/users/").status_code == 302
    assert sign_in(bob, "bob", "reset-pass-1").status_code == 401


def test_idle_session_expires(admin_client, app):
    clock = FakeClock()
    registry = app.extensions[SESSIONS_KEY]
    registry.clock = clock
    post(admin_client, "/logout", {}, form_path="/")
    sign_in(admin_client)
    assert admin_client.get("/users/").status_code == 200
    clock.now += registry.IDLE_TIMEOUT + 1
    response = admin_client.get("/users/")
    assert response.status_code == 302
    assert "Your session has ended" in admin_client.get(response.headers["Location"]).get_data(as_text=True)


def test_security_headers(admin_client):
    response = admin_client.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    css = admin_client.get("/static/officebox.css")
    assert css.status_code == 200 and b"badge-ok" in css.data
