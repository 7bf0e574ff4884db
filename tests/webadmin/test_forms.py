"""ConfigError -> per-field messages by field path (never by message text), as every page uses it;
ChangedMeanwhile -> the difference; free text with line breaks -> a field error."""
from appliance.apply import ConfigError
from appliance.store import ChangedMeanwhile, Revision
from tests.webadmin.helpers import post
from tests.webadmin.test_users import ANNA, field_error
from webadmin.forms import changed_meanwhile, form_errors


def test_form_errors_split_fields_and_general():
    err = ConfigError([
        ("users.2.extension", "is not in the expected format"),
        ("users.2.full_name", "String should have at least 1 character"),
        ("users.2.full_name", "must not contain line breaks, tabs or other control characters"),
        ("users.2", "something about the whole user"),
        ("users.3.email", "not mine"),
        ("network.lan.address", "Input is not a valid IPv4 interface"),
        ("pbx", "extension 201 is also a ring group number"),
    ])
    fields, general = form_errors(err, prefix="users.2", fields={"network.lan.address": "lan"})
    # a second message for the same field does not replace the first; it is listed with the others
    assert fields == {"extension": "use 2 to 6 digits", "full_name": "this field is required",
                      "lan": "Input is not a valid IPv4 interface"}
    assert general == ["full name: must not contain line breaks, tabs or other control characters",
                       "something about the whole user", "users.3.email: not mine",
                       "pbx: extension 201 is also a ring group number"]


def test_a_duplicate_goes_to_the_field_of_the_edited_user_once():
    message = "extension number '201' is already used by another user"
    err = ConfigError([("users.1.extension", message), ("users.4.extension", message)])
    assert form_errors(err, prefix="users.4") == ({"extension": message}, [])
    assert form_errors(err, prefix="users.1") == ({"extension": message}, [])
    assert form_errors(err) == ({}, [f"users.1.extension: {message}", f"users.4.extension: {message}"])
    other = ConfigError([("users.1.email", "taken"), ("users.4.extension", message)])
    assert form_errors(other, prefix="users.4") == ({"extension": message}, ["users.1.email: taken"])


def test_changed_meanwhile_shows_the_escaped_difference():
    rev = Revision(7, 0.0, "bob", "rename <b>", {}, "", "applied")
    diff = '--- #6\n+++ #7\n@@ -1 +1 @@\n-  "company_name": "A"\n+  "company_name": "<script>"'
    html = str(changed_meanwhile(ChangedMeanwhile(6, rev, diff, ["system.company_name"])))
    assert "revision #7 by bob (rename &lt;b&gt;)" in html and "Both changed system.company_name" in html
    assert '<span class="diff-add">+  &#34;company_name&#34;: &#34;&lt;script&gt;&#34;</span>' in html
    assert "<script>" not in html and '<span class="diff-del">' in html


def test_line_breaks_in_free_text_are_a_field_error_in_the_web_admin(admin_client, runtime):
    before = runtime.store.current_id()
    user = post(admin_client, "/users/new", {**ANNA, "full_name": "Anna\r\naccount.1.password = x"})
    assert user.status_code == 400
    assert "must not contain line breaks" in (field_error(user.get_data(as_text=True), "full_name") or "")
    trunk = post(admin_client, "/pbx/trunks/new", {"name": "carrier", "host": "192.0.2.10",
                                                   "username": "carrier\r\nX-Injected: 1"})
    assert trunk.status_code == 400
    assert "must not contain line breaks" in (field_error(trunk.get_data(as_text=True), "username") or "")
    assert runtime.store.current_id() == before
