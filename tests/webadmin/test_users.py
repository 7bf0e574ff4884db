"""Users: create, edit, enable/disable, delete, passwords; per-field errors from the real schema."""
import re

from appliance.users import verify_password
from tests.webadmin.helpers import ADMIN, post

ANNA = {"login": "anna", "full_name": "Anna Example", "extension": "201", "email": "anna@acme.example",
        "role": "staff", "language": "fr", "enabled": "on", "password": "anna-password",
        "password2": "anna-password"}


def create(client, **overrides):
    return post(client, "/users/new", {**ANNA, **overrides})


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return match.group(1) if match else None


def test_create_list_and_revision(admin_client, runtime):
    response = create(admin_client)
    assert response.status_code == 302 and response.headers["Location"] == "/users/"
    page = admin_client.get("/users/").get_data(as_text=True)
    assert "User anna was created." in page
    assert 'id="user-anna"' in page and "Anna Example" in page and "201" in page
    rev = runtime.store.current()
    assert rev.author == ADMIN["login"] and rev.summary == "add user anna"
    anna = rev.config.user("anna")
    assert anna.extension == "201" and anna.language == "fr" and anna.enabled and not anna.vpn_enabled
    assert verify_password(anna.password_hash, "anna-password")


def test_field_errors_from_the_schema(admin_client, runtime):
    create(admin_client)
    before = runtime.store.current_id()
    cases = [
        ({"login": "bert", "extension": "2x"}, "extension", "use 2 to 6 digits"),
        ({"login": "bert", "extension": "201"}, "extension", "'201' is already used by another user"),
        ({"login": "bert", "extension": "202", "email": "not-an-address"}, "email", "valid e-mail address"),
        ({"login": "anna", "extension": "203", "email": ""}, "login", "'anna' is already used by another user"),
        ({"login": "Bad Login!", "extension": "204", "email": ""}, "login", "lower-case letters"),
        ({"login": "bert", "extension": "205", "email": "", "full_name": " "}, "full_name", "required"),
        ({"login": "bert", "extension": "206", "email": "", "role": "root"}, "role", "'admin', 'readonly' or 'staff'"),
        ({"login": "bert", "extension": "207", "email": "", "password2": "other-pass"}, "password2", "differ"),
        ({"login": "bert", "extension": "208", "email": "", "password": "short", "password2": "short"},
         "password", "at least 8"),
        ({"login": "bert", "extension": "209", "email": "", "role": "admin", "password": "", "password2": ""},
         "password", "at least 8"),
        ({"login": "bert", "extension": "210", "email": "", "password": "p" * 300, "password2": "p" * 300},
         "password", "at most 256"),
    ]
    for overrides, field, message in cases:
        response = create(admin_client, **overrides)
        page = response.get_data(as_text=True)
        assert response.status_code == 400, overrides
        error = field_error(page, field)
        assert error is not None and message in error.replace("&#39;", "'"), (overrides, error)
    assert runtime.store.current_id() == before


def test_staff_without_password(admin_client, runtime):
    assert create(admin_client, login="carl", extension="", email="", password="", password2="").status_code == 302
    carl = runtime.store.current().config.user("carl")
    assert carl.password_hash is None and carl.extension is None and carl.email is None
    assert "cannot sign in" in admin_client.get("/users/carl/edit").get_data(as_text=True)


def test_edit_user(admin_client, runtime):
    create(admin_client)
    form = admin_client.get("/users/anna/edit").get_data(as_text=True)
    assert 'value="Anna Example"' in form and 'value="201"' in form
    response = post(admin_client, "/users/anna/edit", {"full_name": "Anna Renamed", "extension": "250",
                                                       "email": "", "role": "staff", "language": "zh_TW",
                                                       "vpn_enabled": "on", "enabled": "on"})
    assert response.status_code == 302
    anna = runtime.store.current().config.user("anna")
    assert (anna.full_name, anna.extension, anna.email, anna.language) == ("Anna Renamed", "250", None, "zh_TW")
    assert anna.vpn_enabled, "the VPN service gives the checkbox its meaning"
    assert "May use the VPN" in form
    assert verify_password(anna.password_hash, "anna-password")  # editing keeps the password
    bad = post(admin_client, "/users/anna/edit", {"full_name": "Anna", "extension": "1", "role": "staff",
                                                  "language": "en", "enabled": "on"})
    assert bad.status_code == 400 and field_error(bad.get_data(as_text=True), "extension") == "use 2 to 6 digits"
    assert admin_client.get("/users/nobody/edit").status_code == 404


def test_set_password(admin_client, runtime):
    create(admin_client)
    short = post(admin_client, "/users/anna/password", {"password": "short", "password2": "short"},
                 form_path="/users/anna/edit")
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    ok = post(admin_client, "/users/anna/password", {"password": "brand-new-pw", "password2": "brand-new-pw"},
              form_path="/users/anna/edit")
    assert ok.status_code == 302
    anna = runtime.store.current().config.user("anna")
    assert verify_password(anna.password_hash, "brand-new-pw")
    assert runtime.store.current().summary == "set password of anna"


def test_own_password_reset_keeps_the_session(admin_client, runtime):
    ok = post(admin_client, "/users/admin/password", {"password": "another-pass-9", "password2": "another-pass-9"},
              form_path="/users/admin/edit")
    assert ok.status_code == 302 and admin_client.get("/users/").status_code == 200


def test_disable_enable_and_delete(admin_client, runtime):
    create(admin_client)
    post(admin_client, "/users/anna/enabled", {}, form_path="/users/")
    assert not runtime.store.current().config.user("anna").enabled
    assert 'class="dimmed"' in admin_client.get("/users/").get_data(as_text=True)
    post(admin_client, "/users/anna/enabled", {"enabled": "on"}, form_path="/users/")
    assert runtime.store.current().config.user("anna").enabled
    confirm = admin_client.get("/users/anna/delete").get_data(as_text=True)
    assert "Delete <strong>Anna Example</strong>" in confirm
    assert runtime.store.current().config.user("anna") is not None  # GET only asks
    response = post(admin_client, "/users/anna/delete", {})
    assert response.status_code == 302 and runtime.store.current().config.user("anna") is None
    assert runtime.store.current().summary == "delete user anna"
    assert 'id="user-anna"' not in admin_client.get("/users/").get_data(as_text=True)


def test_an_admin_cannot_lock_themselves_out(admin_client, runtime):
    before = runtime.store.current_id()
    for path, message in (("/users/admin/delete", "cannot delete the account you are signed in with"),
                          ("/users/admin/enabled", "cannot disable the account you are signed in with")):
        response = post(admin_client, path, {}, form_path="/users/")
        assert response.status_code == 302
        assert message in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    demote = post(admin_client, "/users/admin/edit", {"full_name": "Ada", "role": "staff", "language": "en",
                                                      "enabled": "on"})
    assert demote.status_code == 400 and "own admin rights" in demote.get_data(as_text=True)
    assert runtime.store.current_id() == before
    assert runtime.store.current().config.user("admin").role == "admin"


def test_pages_never_show_hashes_or_secrets(admin_client, runtime):
    create(admin_client)
    anna = runtime.store.current().config.user("anna")
    for path in ("/", "/users/", "/users/anna/edit", "/history/", f"/history/{runtime.store.current_id()}",
                 "/account/"):
        page = admin_client.get(path).get_data(as_text=True)
        assert "$argon2" not in page and anna.sip_secret not in page, path


def test_search_users(admin_client):
    create(admin_client)
    create(admin_client, login="bert", full_name="Bert Other", extension="302", email="")
    page = admin_client.get("/users/?q=Anna").get_data(as_text=True)
    assert 'id="user-anna"' in page and 'id="user-bert"' not in page and "1 of 3 users match" in page
    assert 'id="user-bert"' in admin_client.get("/users/?q=302").get_data(as_text=True)
    assert "No user matches." in admin_client.get("/users/?q=nobody%00<b>").get_data(as_text=True)


def test_random_user_forms_give_errors_never_a_crash(admin_client, runtime):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.webadmin.helpers import csrf_of

    token = csrf_of(admin_client, "/users/new")
    field = st.one_of(st.text(max_size=40), st.sampled_from(["", "admin", "201", "a@b.example", "staff", "on"]))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional={name: field for name in (
        "login", "full_name", "extension", "email", "role", "language", "enabled", "password", "password2")}))
    def check(data):
        before = runtime.store.current_id()
        response = admin_client.post("/users/new", data={**data, "csrf_token": token})
        assert response.status_code in (302, 400), response.status_code
        if response.status_code == 400:
            assert runtime.store.current_id() == before
        else:
            assert runtime.store.current().config.user(data["login"].strip().lower()) is not None

    check()


def test_proxy_password_form_only_when_proxy_sign_in_uses_it(admin_client, runtime):
    create(admin_client)
    assert "Web proxy password" not in admin_client.get("/users/anna/edit").get_data(as_text=True)
    runtime.engine.update("admin", "proxy sign-in", lambda d: d["proxy"].update(enabled=True, sign_in=True))
    page = admin_client.get("/users/anna/edit").get_data(as_text=True)
    assert "Web proxy password" in page and "no proxy password yet" in page
    short = post(admin_client, "/users/anna/proxy-password", {"password": "short", "password2": "short"},
                 form_path="/users/anna/edit")
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    ok = post(admin_client, "/users/anna/proxy-password", {"password": "proxy-pass-1", "password2": "proxy-pass-1"},
              form_path="/users/anna/edit")
    assert ok.status_code == 302
    anna = runtime.store.current().config.user("anna")
    assert anna.check_proxy_password("proxy-pass-1") and not anna.check_proxy_password("anna-password")
    assert anna.check_password("anna-password")  # the main password is untouched
    runtime.engine.update("admin", "login passwords", lambda d: d["proxy"].update(sign_in_password="login"))
    assert "Web proxy password" not in admin_client.get("/users/anna/edit").get_data(as_text=True)
