"""Configuration history: revisions, their diffs, rollback as a new revision."""
from tests.webadmin.helpers import post
from tests.webadmin.test_users import create


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
    response = post(admin_client, f"/history/{setup_id}/rollback", {}, form_path=f"/history/{setup_id}")
    new = runtime.store.current()
    assert new.id == setup_id + 2 and new.summary == f"roll back to revision #{setup_id}"
    assert new.author == "admin" and new.config.user("anna") is None
    assert response.headers["Location"] == f"/history/{new.id}"
    shown = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"new revision #{new.id} is applied" in shown and 'class="diff-del"' in shown


def test_rollback_needs_csrf_and_an_applied_target(admin_client, runtime):
    setup_id = runtime.store.current_id()
    create(admin_client)
    before = runtime.store.current_id()
    assert admin_client.post(f"/history/{setup_id}/rollback").status_code == 400
    assert post(admin_client, "/history/9999/rollback", {}, form_path="/history/").status_code == 404
    create(admin_client, login="bad", extension="201")  # refused: nothing recorded
    again = post(admin_client, f"/history/{before}/rollback", {}, form_path="/history/")
    assert "already the current configuration" in admin_client.get(again.headers["Location"]).get_data(as_text=True)
    assert runtime.store.current_id() == before
