"""Default-deny web routes: every URL of the admin, walked as anonymous and as staff, is refused unless
its view says @public (or @login_required for staff); a view that says nothing is for admins only."""
import re

from flask import Blueprint, url_for
from werkzeug.routing import AnyConverter, IntegerConverter

from tests.webadmin.helpers import admin_client_for, csrf_of, post, sign_in
from webadmin import core, create_app

PUBLIC = {"static", "auth.login", "auth.code", "auth.logout", "setup.wizard",
          "public.callback",  # the call centre's web call-back form (its own token, honeypot and rate limit)
          "public.chat_start", "public.chat", "public.chat_messages"}  # web chat: a visitor's own chat by its token
# a member of staff: their own page, forwarding, language, voicemail, VPN downloads, two-factor set-up, the dashboard,
# their own call recordings
STAFF = {"account.index", "account.forwarding", "account.language", "dashboard.index", "account.vpn_device_file",
         "account.vpn_device_qr", "account.vpn_details", "account.vpn_profile", "two_factor.index",
         "two_factor.start", "two_factor.confirm", "two_factor.recovery_codes", "two_factor.turn_off",
         "agent.index", "agent.act", "features.guide", "myrecordings.index", "myrecordings.audio",
         "webphone.index", "webphone.credentials",  # their own browser phone and its SIP account
         "desk.index", "desk.token", "desk.caller",  # the staff desk, its own-extension token, caller names
         "assistant.own", "assistant.greeting",  # the personal assistant: staff set their own
         "account.voicemail", "account.voicemail_audio", "account.voicemail_act", "account.voicemail_greeting",
         "account.voicemail_greeting_remove", "account.voicemail_email", "account.voicemail_temporary_until",
         "mycontacts.index", "mycontacts.create", "mycontacts.edit", "mycontacts.remove",  # their own contacts
         "agent.chat_act", "agent.chat_messages", "agent.chats_state",  # an agent's own chats
         "auth.kept_form",  # what they sent after their session ended, to send again
         # the wallboard of the queues a member of staff supervises (403 for everyone else, test_callcentre_supervise)
         "callcentre.wallboard", "callcentre.wallboard_json", "callcentre.events", "callcentre.supervise"}
SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def _urls(app):
    """(endpoint, method, url) for every rule, its arguments filled with harmless values."""
    for rule in app.url_map.iter_rules():
        values = {arg: _value(converter) for arg, converter in rule._converters.items()}
        with app.test_request_context():
            url = url_for(rule.endpoint, **values)
        for method in sorted(rule.methods - SKIPPED_METHODS):
            yield rule.endpoint, method, url


def _value(converter):
    if isinstance(converter, IntegerConverter):
        return 1
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    return "officebox.css"


def _request(client, method, url, token):
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data={"csrf_token": token})


def _staff_client(admin_client, app):
    post(admin_client, "/users/new", {"login": "sam", "full_name": "Sam Staff", "role": "staff",
                                      "enabled": "on", "password": "sam-password", "password2": "sam-password"})
    staff = app.test_client()
    assert sign_in(staff, "sam", "sam-password").status_code == 302
    return staff


def test_only_the_listed_endpoints_are_open(app):
    with app.app_context():
        access = {endpoint: core.access_of(endpoint) for endpoint in app.view_functions}
    assert {e for e, a in access.items() if a == "public"} == PUBLIC
    assert {e for e, a in access.items() if a == "user"} == STAFF
    assert len([e for e, a in access.items() if a == "admin"]) >= 60


def test_anonymous_and_staff_are_refused_everywhere_else(admin_client, app):
    staff = _staff_client(admin_client, app)
    staff_token = csrf_of(staff, "/account/")
    anonymous = app.test_client()
    anonymous_token = csrf_of(anonymous, "/login")  # a valid token: the refusal is the access check's
    walked = 0
    for endpoint, method, url in _urls(app):
        if endpoint in PUBLIC or endpoint == "auth.logout":
            continue
        walked += 1
        answer = _request(anonymous, method, url, anonymous_token)
        assert answer.status_code == 302 and re.search(r"/login(\?|$)", answer.headers["Location"]), (
            method, url, answer.status_code)
        if endpoint in STAFF:
            continue
        answer = _request(staff, method, url, staff_token)
        assert answer.status_code == 403, (method, url, answer.status_code)
    assert walked >= 60


def test_a_view_that_says_nothing_is_for_admins_only(runtime):
    app = create_app(runtime)
    forgotten = Blueprint("forgotten", __name__)
    forgotten.add_url_rule("/forgotten", "page", lambda: "secret page")
    app.register_blueprint(forgotten)
    admin = admin_client_for(runtime, app)
    staff = _staff_client(admin, app)
    assert app.test_client().get("/forgotten").status_code == 302
    assert staff.get("/forgotten").status_code == 403
    assert admin.get("/forgotten").get_data(as_text=True) == "secret page"
