"""Conference pages: rooms through the real apply engine (the PIN argon2-hashed, never shown, kept when
left empty), and the live view of a room on the real PBX with baresip phones in it: both listed, muted
from the page (the media engine's member is muted), removed from the page (the phone is hung up)."""
from __future__ import annotations

import asyncio

import pytest

from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import post
from tests.webadmin.test_pbx_pages import (
    _LivePbx,
    _until,
    page,
    pbx_client,  # noqa: F401 (fixture: users alice 201, bob 202)
)


def _rooms(runtime):
    return runtime.config.pbx.conference_rooms


def test_rooms_are_added_edited_and_deleted_with_a_hashed_pin(pbx_client, runtime):  # noqa: F811
    assert "No conference room yet." in page(pbx_client, "/conference/")
    bad = post(pbx_client, "/conference/new", {"number": "8a", "name": "sales", "pin": "12", "alone": "music"})
    assert bad.status_code == 400 and "a conference PIN has 4 to 12 digits" in bad.get_data(as_text=True)
    bad = post(pbx_client, "/conference/new", {"number": "8a", "name": "sales", "alone": "music"})
    assert bad.status_code == 400 and 'id="e-number"' in bad.get_data(as_text=True)
    assert _rooms(runtime) == []
    ok = post(pbx_client, "/conference/new", {"number": "800", "name": "sales", "title": "Sales weekly",
                                               "pin": "2468", "max_participants": "6", "alone": "prompt",
                                               "tones": "on", "mute_key": "#"}, form_path="/conference/new")
    assert ok.status_code == 302
    [room] = _rooms(runtime)
    assert (room.number, room.max_participants, room.alone, room.tones, room.mute_key) == \
        ("800", 6, "prompt", True, "#")
    assert room.pin_hash.startswith("$argon2")
    listing = page(pbx_client, "/conference/")
    assert 'id="room-sales"' in listing and "Sales weekly" in listing and "2468" not in listing
    edit = page(pbx_client, "/conference/sales/edit")
    assert "2468" not in edit and room.pin_hash not in edit
    kept = post(pbx_client, "/conference/sales/edit", {"number": "801", "name": "sales", "alone": "music",
                                                        "max_participants": "6", "mute_key": "*"})
    assert kept.status_code == 302
    [room2] = _rooms(runtime)
    assert room2.number == "801" and room2.pin_hash == room.pin_hash and room2.tones is False
    cleared = post(pbx_client, "/conference/sales/edit", {"number": "801", "name": "sales", "alone": "music",
                                                           "max_participants": "6", "no_pin": "on"})
    assert cleared.status_code == 302 and _rooms(runtime)[0].pin_hash is None
    assert runtime.config.pbx.application_for("801") == "conference:sales"
    page(pbx_client, "/conference/nothing/edit", 404)
    page(pbx_client, "/conference/nothing/live", 404)
    gone = post(pbx_client, "/conference/sales/delete", {"confirm": "1"}, form_path="/conference/")
    assert gone.status_code == 302 and _rooms(runtime) == []


def test_a_rooms_codes_and_leaders_are_set_and_checked(pbx_client, runtime):  # noqa: F811
    form = {"number": "800", "name": "board", "alone": "music", "max_participants": "6", "mute_key": "*",
            "count_key": "#", "lock_key": "", "remove_key": "9", "leaders": "201, 202"}
    edit = page(pbx_client, "/conference/new")
    assert 'name="count_key"' in edit and 'name="leaders"' in edit
    assert post(pbx_client, "/conference/new", form, form_path="/conference/new").status_code == 302
    [room] = _rooms(runtime)
    assert (room.count_key, room.lock_key, room.remove_key, room.leaders) == ("#", "", "9", ["201", "202"])
    assert 'value="201 202"' in page(pbx_client, "/conference/board/edit")
    bad = post(pbx_client, "/conference/board/edit", form | {"leaders": "20x"})
    assert bad.status_code == 400 and _rooms(runtime)[0].leaders == ["201", "202"]


def test_a_room_number_may_not_be_an_extension(pbx_client, runtime):  # noqa: F811
    bad = post(pbx_client, "/conference/new", {"number": "201", "name": "clash", "alone": "music"})
    assert bad.status_code == 400 and "extension number" in bad.get_data(as_text=True)
    assert _rooms(runtime) == []


def test_pages_need_an_admin(client):
    assert client.get("/conference/").status_code == 302


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_live_view_lists_mutes_and_removes_participants(pbx_client, runtime):  # noqa: F811
    post(pbx_client, "/conference/new", {"number": "800", "name": "team", "alone": "prompt", "tones": "on",
                                          "max_participants": "5", "mute_key": "*"})
    with _LivePbx(runtime) as live:
        registrar = f"127.0.0.1:{live.svc.sip_port}"
        with Baresip("alice", user="201", password="alicesecret1", registrar=registrar) as alice, \
                Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
            for ua in (alice, bob):
                ua.register()
                ua.dial("800")
                ua.wait_for("CALL_ESTABLISHED")
            view = _until(lambda: (lambda t: t if t.count('id="participant-') == 2 else None)(
                page(pbx_client, "/conference/team/live")))
            assert "Alice Martin" in view and "Bob Durand" in view and 'http-equiv="refresh"' in view
            assert "2 of 5" in page(pbx_client, "/conference/")
            alice_id = next(p["id"] for p in live.svc.conference_rooms()[0]["participants"] if p["label"] == "201")
            muted = post(pbx_client, f"/conference/team/participants/{alice_id}/mute", {"muted": "1"},
                         form_path="/conference/team/live")
            assert muted.status_code == 302
            assert "muted" in page(pbx_client, "/conference/team/live")
            core = live.svc.core
            stats = asyncio.run_coroutine_threadsafe(core.relay._request({"op": "conf_stats"}), live.loop).result(5)
            assert sorted(row[1] for row in stats["rooms"]["team"]) == [False, True]  # the engine mutes her
            removed = post(pbx_client, f"/conference/team/participants/{alice_id}/remove", {},
                           form_path="/conference/team/live")
            assert removed.status_code == 302
            alice.wait_for("CALL_CLOSED", timeout=10)
            _until(lambda: page(pbx_client, "/conference/team/live").count('id="participant-') == 1)
            assert bob.call_state() == "CALL_ESTABLISHED"
            gone = post(pbx_client, f"/conference/team/participants/{alice_id}/remove", {},
                        form_path="/conference/team/live", follow_redirects=True)
            assert "That participant has left the conference." in gone.get_data(as_text=True)
            bob.hangup()
