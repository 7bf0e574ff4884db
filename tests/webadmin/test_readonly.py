"""The read-only admin role: every admin page opens, every state-changing admin route answers 403 (walked
over every route of the app), nothing is changed, and the pages offer no change controls."""
import re

from flask import Blueprint

from tests.webadmin.helpers import admin_client_for, csrf_of, post, sign_in
from tests.webadmin.test_routes_access import PUBLIC, _request, _urls
from webadmin import core, create_app

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _readonly_client(admin_client, app, login="rita"):
    answer = post(admin_client, "/users/new", {"login": login, "full_name": "Rita Reader", "role": "readonly",
                                               "enabled": "on", "password": "rita-password",
                                               "password2": "rita-password"})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    client = app.test_client()
    assert sign_in(client, login, "rita-password").status_code == 302
    return client


def test_a_read_only_admin_sees_every_page_and_changes_nothing(admin_client, app, runtime):
    reader = _readonly_client(admin_client, app)
    token = csrf_of(reader, "/account/")
    before = runtime.store.current_id()
    with app.app_context():
        access = {endpoint: core.access_of(endpoint) for endpoint in app.view_functions}
        secret = {endpoint for endpoint in app.view_functions if core.reveals_secrets(endpoint)}
    assert {"vpn.download", "vpn.qr", "vpn.account_details", "vpn.account_profile"} <= secret
    refused = opened = 0
    for endpoint, method, url in _urls(app):
        if endpoint in PUBLIC or access[endpoint] != "admin":
            continue  # sign-in/out, wizard, and the reader's own account pages
        answer = _request(reader, method, url, token)
        if method in UNSAFE or endpoint in secret:  # a change, or a page with credentials (VPN keys)
            assert answer.status_code == 403, (method, url, answer.status_code)
            refused += 1
        else:
            signed_out = "/login" in answer.headers.get("Location", "")
            assert answer.status_code != 403 and answer.status_code < 500 and not signed_out, (
                method, url, answer.status_code)
            opened += 1
    assert refused >= 40 and opened >= 40
    assert runtime.store.current_id() == before  # not one revision written
    assert reader.get("/").status_code == 200  # still signed in: the dashboard


def test_the_pages_of_a_read_only_admin_offer_no_change(admin_client, app):
    reader = _readonly_client(admin_client, app)
    page = reader.get("/users/").get_data(as_text=True)
    assert "Rita Reader" in page and 'href="/users/"' in page  # the admin menu and the directory
    forms = re.findall(r'<form\b[^>]*method="post" action="([^"]*)"[^>]*>(.*?)</form>', page, re.DOTALL)
    change_forms = [body for action, body in forms if action != "/logout"]
    assert change_forms and all(f.lstrip().startswith('<fieldset class="readonly-lock" disabled>')
                                for f in change_forms)
    edit = reader.get("/users/admin/edit").get_data(as_text=True)
    assert edit.count('<fieldset class="readonly-lock" disabled>') == edit.count('method="post"') - 1  # sign out
    own = reader.get("/account/").get_data(as_text=True)
    assert "readonly-lock" not in own  # their own password and two-factor sign-in stay theirs
    admin_page = admin_client.get("/users/").get_data(as_text=True)
    assert "readonly-lock" not in admin_page


def test_a_read_only_admin_may_change_their_own_password(admin_client, app):
    reader = _readonly_client(admin_client, app)
    answer = post(reader, "/account/", {"current_password": "rita-password", "password": "rita-password-2",
                                        "password2": "rita-password-2"})
    assert answer.status_code == 302
    assert post(reader, "/users/new", {"login": "eve", "full_name": "Eve", "role": "admin",
                                       "password": "eve-password", "password2": "eve-password"},
                form_path="/account/").status_code == 403


def test_a_change_route_that_says_nothing_is_refused_too(runtime):
    app = create_app(runtime)
    forgotten = Blueprint("forgotten", __name__)
    forgotten.add_url_rule("/forgotten", "change", lambda: "changed", methods=["GET", "POST"])
    app.register_blueprint(forgotten)
    admin = admin_client_for(runtime, app)
    reader = _readonly_client(admin, app)
    assert reader.get("/forgotten").get_data(as_text=True) == "changed"  # reading is allowed
    token = csrf_of(reader, "/account/")
    assert reader.post("/forgotten", data={"csrf_token": token}).status_code == 403
    assert admin.post("/forgotten", data={"csrf_token": csrf_of(admin, "/account/")}).status_code == 200
