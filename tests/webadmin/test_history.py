"""Configuration history: revisions, their diffs, rollback as a new revision; two admins at once never
overwrite each other silently."""
import re

from tests.webadmin.helpers import post, sign_in
from tests.webadmin.tasks import follow
from tests.webadmin.test_users import ANNA, create


def test_history_lists_revisions_with_author_and_state(admin_client, runtime):
    create(admin_client)
    page = admin_client.get("/history/").get_data(as_text=True)
    for rev in runtime.store.history():
        assert f'id="rev-{rev.id}"' in page
    assert "add user anna" in page and "first-boot setup" in page and "factory configuration" in page
    assert page.count("badge-ok") >= 3 and "current" in page


def test_diff_of_a_revision(admin_client, runtime):
    create(admin_client)
    rev_id = runtime.store.current_id()
    page = admin_client.get(f"/history/{rev_id}").get_data(as_text=True)
    assert 'class="diff-add"' in page and "anna" in page and "********" in page
    assert "Roll back" not in page  # the current revision has nothing to roll back to
    assert admin_client.get("/history/9999").status_code == 404
    assert admin_client.get("/history/abc").status_code == 404
    assert admin_client.get("/history/?page=-4").status_code == 200


def test_rollback_creates_a_new_revision(admin_client, runtime):
    setup_id = runtime.store.current_id()
    create(admin_client)
    assert runtime.store.current().config.user("anna") is not None
    page = admin_client.get(f"/history/{setup_id}").get_data(as_text=True)
    assert f"Roll back to #{setup_id}" in page
    response = follow(admin_client, post(admin_client, f"/history/{setup_id}/rollback", {},
                                         form_path=f"/history/{setup_id}"))
    new = runtime.store.current()
    assert new.id == setup_id + 2 and new.summary == f"roll back to revision #{setup_id}"
    assert new.author == "admin" and new.config.user("anna") is None
    assert f"new revision #{new.id} is applied" in response.get_data(as_text=True)
    assert f'href="/history/{new.id}"' in response.get_data(as_text=True)
    shown = admin_client.get(f"/history/{new.id}").get_data(as_text=True)
    assert 'class="diff-del"' in shown


def test_rollback_needs_csrf_and_an_applied_target(admin_client, runtime):
    setup_id = runtime.store.current_id()
    create(admin_client)
    before = runtime.store.current_id()
    assert admin_client.post(f"/history/{setup_id}/rollback").status_code == 400
    assert post(admin_client, "/history/9999/rollback", {}, form_path="/history/").status_code == 404
    create(admin_client, login="bad", extension="201")  # refused: nothing recorded
    again = follow(admin_client, post(admin_client, f"/history/{before}/rollback", {}, form_path="/history/"))
    assert "already the current configuration" in again.get_data(as_text=True)
    assert runtime.store.current_id() == before


def hidden_fields(client, path: str) -> dict[str, str]:
    """The hidden inputs (CSRF token, base revision) of the form served at `path`."""
    page = client.get(path).get_data(as_text=True)
    found = dict(re.findall(r'<input type="hidden" name="(csrf_token|base_revision)" value="([^"]*)">', page))
    assert set(found) == {"csrf_token", "base_revision"}, path
    return found


def second_admin(app, admin_client):
    assert create(admin_client, login="bert", extension="209", email="bert@acme.example", role="admin",
                  language="en", password="bert-password", password2="bert-password").status_code == 302
    client = app.test_client()
    assert sign_in(client, "bert", "bert-password").status_code == 302
    return client


def edit_anna(client, fields: dict, **values):
    form = {**ANNA, "enabled": "on", **values}
    return client.post("/users/anna/edit", data={**fields, **form})


def test_two_admins_editing_the_same_user_the_second_sees_the_difference(app, admin_client, runtime):
    create(admin_client)
    bert = second_admin(app, admin_client)
    ada_form, bert_form = hidden_fields(admin_client, "/users/anna/edit"), hidden_fields(bert, "/users/anna/edit")
    assert ada_form["base_revision"] == bert_form["base_revision"] == str(runtime.store.current_id())
    assert edit_anna(admin_client, ada_form, full_name="Anna by Ada").status_code == 302
    saved = runtime.store.current_id()
    late = edit_anna(bert, bert_form, full_name="Anna by Bert")
    page = late.get_data(as_text=True)
    assert late.status_code == 400 and f"changed meanwhile by revision #{saved} by admin (edit user anna)" in page
    assert "Both changed users.1.full_name" in page
    assert '<span class="diff-add">+      &#34;full_name&#34;: &#34;Anna by Ada&#34;,</span>' in page
    assert runtime.store.current_id() == saved and runtime.config.user("anna").full_name == "Anna by Ada"
    again = re.search(r'name="base_revision" value="(\d+)"', page).group(1)
    assert again == str(saved)  # having seen the difference, Bert may save over it on purpose
    retry = edit_anna(bert, {**bert_form, "base_revision": again}, full_name="Anna by Bert")
    assert retry.status_code == 302 and runtime.config.user("anna").full_name == "Anna by Bert"


def test_two_admins_changing_different_things_both_keep_their_change(app, admin_client, runtime):
    create(admin_client)
    bert = second_admin(app, admin_client)
    ada_form, bert_form = hidden_fields(admin_client, "/users/anna/edit"), hidden_fields(bert, "/users/bert/edit")
    assert edit_anna(admin_client, ada_form, full_name="Anna by Ada").status_code == 302
    bert_values = {"full_name": "Bert Admin", "extension": "209", "email": "bert@acme.example", "role": "admin",
                   "language": "zh_TW", "enabled": "on"}
    assert bert.post("/users/bert/edit", data={**bert_form, **bert_values}).status_code == 302
    config = runtime.config
    assert config.user("anna").full_name == "Anna by Ada" and config.user("bert").language == "zh_TW"


def test_a_refused_form_shown_again_keeps_the_revision_it_was_built_on(app, admin_client, runtime):
    create(admin_client)
    bert = second_admin(app, admin_client)
    bert_form = hidden_fields(bert, "/users/anna/edit")
    assert edit_anna(admin_client, hidden_fields(admin_client, "/users/anna/edit"),
                     email="ada@acme.example").status_code == 302
    refused = edit_anna(bert, bert_form, extension="2x")  # Bert's own mistake: a field error
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="e-extension"' in page
    shown_base = re.search(r'name="base_revision" value="(\d+)"', page).group(1)
    assert shown_base == bert_form["base_revision"]  # the e-mail on the page is still the one Bert saw
    fixed = edit_anna(bert, {**bert_form, "base_revision": shown_base}, extension="250")
    assert fixed.status_code == 302
    anna = runtime.config.user("anna")
    assert anna.extension == "250" and anna.email == "ada@acme.example"  # Ada's change is kept


def test_a_rollback_decided_on_an_old_page_is_refused(app, admin_client, runtime):
    setup_id = runtime.store.current_id()
    create(admin_client)
    form = hidden_fields(admin_client, f"/history/{setup_id}")
    create(admin_client, login="bert", extension="209", email="bert@acme.example")  # meanwhile, another tab
    refused = admin_client.post(f"/history/{setup_id}/rollback", data=form)
    shown = admin_client.get(refused.headers["Location"]).get_data(as_text=True)
    assert "Nothing was rolled back: the configuration was changed meanwhile" in shown
    assert runtime.config.user("bert") is not None
    again = admin_client.post(f"/history/{setup_id}/rollback", data=hidden_fields(admin_client, f"/history/{setup_id}"))
    assert follow(admin_client, again).status_code == 200 and runtime.config.user("bert") is None
