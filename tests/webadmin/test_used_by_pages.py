"""Delete confirmations list what uses the object (appliance.references), and delete only once confirmed."""
from __future__ import annotations

import pytest

from tests.webadmin.helpers import ALICE_AND_BOB, page, post

PEOPLE = ALICE_AND_BOB


@pytest.fixture
def used_client(admin_client, runtime):
    def mutate(doc):
        doc["users"] += PEOPLE
        pbx = doc.setdefault("pbx", {})
        pbx["lab_sip_port"] = 0
        pbx["groups"] = [{"number": "600", "members": ["202"], "overflow": "voicemail:201"}]
        pbx["dids"] = [{"number": "0140000000", "destination": "600"},
                       {"number": "0140000001", "destination": "queue:sales"}]
        pbx["queues"] = [{"number": "610", "name": "sales", "members": [{"agent": "201"}]}]
        pbx["attendants"] = [{"name": "main", "menus": [{"name": "main", "options": [
            {"key": "1", "action": "group", "target": "600"}]}]}]
    runtime.engine.update("admin", "test references", mutate)
    return admin_client


def test_user_delete_lists_the_users_of_the_extension_then_deletes(used_client, runtime):
    asked = page(used_client, "/users/alice/delete")
    assert "Used by:" in asked
    assert 'href="/pbx/groups/600/edit"' in asked and 'href="/callcentre/queues/sales"' in asked
    assert "cannot be deleted" in asked and "Delete alice" not in asked   # a queue's agent must be an extension
    post(used_client, "/callcentre/queues/sales/delete", {"confirm": "1"}, form_path="/callcentre/queues")
    asked = page(used_client, "/users/alice/delete")
    assert 'href="/pbx/groups/600/edit"' in asked and "pointing at nothing" in asked and "Delete alice" in asked
    assert runtime.store.current().config.user("alice") is not None  # asking deletes nothing
    assert post(used_client, "/users/alice/delete", {}).status_code == 302
    assert runtime.store.current().config.user("alice") is None


def test_ring_group_refused_while_an_attendant_points_at_it(used_client, runtime):
    listed = page(used_client, "/pbx/groups/")
    assert 'href="/pbx/groups/600/delete"' in listed   # the list's button asks first (a link, no JavaScript)
    asked = page(used_client, "/pbx/groups/600/delete")
    assert 'href="/pbx/dids/0140000000/edit"' in asked and 'href="/attendant/main/menus/main"' in asked
    assert "cannot be deleted" in asked and 'name="confirm"' not in asked
    unconfirmed = post(used_client, "/pbx/groups/600/delete", {}, form_path="/pbx/groups/")
    assert unconfirmed.status_code == 200 and "Used by:" in unconfirmed.get_data(as_text=True)
    assert [g.number for g in runtime.store.current().config.pbx.groups] == ["600"]


def test_queue_delete_says_where_then_deletes_on_confirm(used_client, runtime):
    asked = page(used_client, "/callcentre/queues/sales/delete")
    assert 'href="/pbx/dids/0140000001/edit"' in asked and 'name="confirm"' in asked
    assert "pointing at nothing" in asked
    assert post(used_client, "/callcentre/queues/sales/delete", {}, form_path="/callcentre/queues").status_code == 200
    assert runtime.store.current().config.pbx.queues
    done = post(used_client, "/callcentre/queues/sales/delete", {"confirm": "1"}, form_path="/callcentre/queues")
    assert done.status_code == 302 and runtime.store.current().config.pbx.queues == []


def test_unused_attendant_asks_once_then_goes(used_client, runtime):
    asked = page(used_client, "/attendant/main/delete")
    assert "Used by:" not in asked and 'name="confirm"' in asked
    done = post(used_client, "/attendant/main/delete", {"confirm": "1"}, form_path="/attendant/")
    assert done.status_code == 302 and runtime.store.current().config.pbx.attendants == []


def test_time_profile_and_conference_room(used_client, runtime):
    def mutate(doc):
        doc["pbx"]["time_profiles"] = [{"name": "office"}]
        doc["pbx"]["attendants"][0]["profile"] = "office"
        doc["pbx"]["conference_rooms"] = [{"number": "620", "name": "board"}]
        doc["pbx"]["dids"].append({"number": "0140000002", "destination": "conference:board"})
    runtime.engine.update("admin", "test profile and room", mutate)
    asked = page(used_client, "/attendant/profiles/office/delete")
    assert 'href="/attendant/main"' in asked and "cannot be deleted" in asked and 'name="confirm"' not in asked
    asked = page(used_client, "/conference/board/delete")
    assert 'href="/pbx/dids/0140000002/edit"' in asked and 'name="confirm"' in asked
    done = post(used_client, "/conference/board/delete", {"confirm": "1"}, form_path="/conference/")
    assert done.status_code == 302 and runtime.store.current().config.pbx.conference_rooms == []
