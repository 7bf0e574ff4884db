"""Delete confirmations of music on hold classes and attendant menus say what uses them (webadmin/usedby.py),
refuse when the configuration would, and name the users by their human names ("Ring group Sales (600)")."""
from __future__ import annotations

import pytest

from tests.webadmin.helpers import ALICE_AND_BOB, page, post


@pytest.fixture
def used_client(admin_client, runtime):
    def mutate(doc):
        doc["users"] += ALICE_AND_BOB
        pbx = doc.setdefault("pbx", {})
        pbx["lab_sip_port"] = 0
        pbx["moh_classes"] = [{"name": "default", "files": []}, {"name": "jazz", "files": []},
                              {"name": "spare", "files": []}]
        pbx["extensions"] = {"201": {"moh_class": "jazz"}}
        pbx["groups"] = [{"number": "600", "name": "Sales", "members": ["201"]}]
        pbx["queues"] = [{"number": "610", "name": "support", "title": "Support line", "moh_class": "jazz"}]
        pbx["attendants"] = [{"name": "main", "entry": {"closed": "night"}, "menus": [
            {"name": "main", "options": [{"key": "1", "action": "menu", "target": "sales"}]},
            {"name": "sales"}, {"name": "night"}, {"name": "spare"}]}]
    runtime.engine.update("admin", "test references", mutate)
    return admin_client


def classes(runtime) -> list[str]:
    return [c.name for c in runtime.store.current().config.pbx.moh_classes]


def test_a_hold_music_class_in_use_says_where_and_what_happens_then_deletes(used_client, runtime):
    listed = page(used_client, "/voice/moh")
    assert 'href="/voice/moh/jazz/delete"' in listed  # the button asks first (a link, no script)
    asked = page(used_client, "/voice/moh/jazz/delete")
    assert "Used by:" in asked and 'href="/pbx/extensions/201"' in asked
    assert 'href="/callcentre/queues/support"' in asked
    assert "Extension Alice" in asked and "(201)" in asked and "Call queue Support line (support)" in asked
    assert "(music on hold class)" in asked and "the default class" in asked and 'name="confirm"' in asked
    unconfirmed = post(used_client, "/voice/moh/jazz/delete", {}, form_path="/voice/moh")
    assert unconfirmed.status_code == 200 and "Used by:" in unconfirmed.get_data(as_text=True)
    assert "jazz" in classes(runtime)
    done = post(used_client, "/voice/moh/jazz/delete", {"confirm": "1"}, form_path="/voice/moh")
    assert done.status_code == 302 and classes(runtime) == ["default", "spare"]


def test_an_unused_hold_music_class_only_asks(used_client, runtime):
    asked = page(used_client, "/voice/moh/spare/delete")
    assert "Used by:" not in asked and 'name="confirm"' in asked and "spare" in classes(runtime)
    assert post(used_client, "/voice/moh/spare/delete", {"confirm": "1"}, form_path="/voice/moh").status_code == 302
    assert "spare" not in classes(runtime)


def menus(runtime) -> list[str]:
    return [m.name for m in runtime.store.current().config.pbx.attendants[0].menus]


def test_a_menu_another_menu_leads_to_is_refused_with_where(used_client, runtime):
    menu_page = page(used_client, "/attendant/main/menus/sales")
    assert 'href="/attendant/main/menus/sales/delete"' in menu_page
    asked = page(used_client, "/attendant/main/menus/sales/delete")
    assert 'href="/attendant/main/menus/main"' in asked and "Auto attendant main/main" in asked
    assert "(key 1)" in asked and "must be changed first" in asked and "cannot be deleted" in asked
    assert 'name="confirm"' not in asked
    forced = post(used_client, "/attendant/main/menus/sales/delete", {"confirm": "1"},
                  form_path="/attendant/main/menus/sales")
    assert forced.status_code == 302 and "sales" in menus(runtime)  # the engine refuses it too


def test_an_entry_menu_is_refused_and_an_unused_one_deleted_on_confirm(used_client, runtime):
    asked = page(used_client, "/attendant/main/menus/night/delete")
    assert 'href="/attendant/main"' in asked and "(entry menu (closed))" in asked and 'name="confirm"' not in asked
    spare = page(used_client, "/attendant/main/menus/spare/delete")
    assert "Used by:" not in spare and 'name="confirm"' in spare
    assert 'href="/attendant/main/menus/spare"' in spare  # cancel: back to the menu
    assert menus(runtime) == ["main", "sales", "night", "spare"]
    done = post(used_client, "/attendant/main/menus/spare/delete", {"confirm": "1"},
                form_path="/attendant/main/menus/spare")
    assert done.status_code == 302 and menus(runtime) == ["main", "sales", "night"]


def test_references_are_named_as_the_admin_knows_them(used_client):
    asked = page(used_client, "/users/alice/delete")
    assert "Ring group Sales (600)" in asked and "(members)" in asked
    assert "pbx.groups" not in asked


def test_a_user_s_phone_and_mail_alias_are_listed_and_block_the_delete(used_client, runtime):
    def mutate(doc):
        doc.setdefault("provisioning", {})["phones"] = [{"mac": "00:15:65:aa:bb:cc", "user": "bob",
                                                         "label": "Reception desk"}]
        doc.setdefault("mail", {})["aliases"] = [{"name": "team", "targets": ["bob", "alice"]}]
    runtime.engine.update("admin", "bob's phone and alias", mutate)
    asked = page(used_client, "/users/bob/delete")
    assert "Phone Reception desk (00:15:65:aa:bb:cc)" in asked and 'href="/lan/phones"' in asked
    assert "Mail alias team" in asked and 'href="/mail/aliases"' in asked and "(targets)" in asked
    assert "cannot be deleted" in asked and "Delete bob" not in asked
    assert runtime.store.current().config.user("bob") is not None
