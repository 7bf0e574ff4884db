"""Supervising from the wallboard: a queue call's row has Listen / Whisper / Barge in buttons for a
supervisor of the agent's queue only (others see none and get 403); a button makes the box ring the
supervisor's own phone, which joins the call in that mode once answered. Real baresip phones each send
their own tone (caller, agent, supervisor) and what each heard is measured."""
from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

from tests.services.pbx import test_channel as ch
from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.test_conference import heard_tones
from tests.webadmin.helpers import csrf_of, post, sign_in
from tests.webadmin.test_browser import page, server  # noqa: F401 (fixtures of the Chromium test)
from tests.webadmin.test_pbx_pages import _LivePbx, _until
from tests.webadmin.test_pbx_pages import page as html_of

PEOPLE = [  # alice calls the queue, bob is its agent, carol its supervisor, dave an agent who supervises nothing
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1"},
    {"login": "bob", "full_name": "Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
    {"login": "carol", "full_name": "Carol Petit", "extension": "203", "sip_secret": "carolsecret1"},
    {"login": "dave", "full_name": "Dave Roux", "extension": "204", "sip_secret": "davesecret12"},
]
PASSWORD = "staff-password-1"
QUEUE = {"number": "600", "name": "sales", "title": "Sales", "strategy": "longest_idle", "agent_timeout": 15,
         "wrap_up": 0, "announce_every": 0, "members": [{"agent": "202"}, {"agent": "204"}], "supervisors": ["203"]}
CALLER, AGENT, SUPERVISOR = 520.0, 1020.0, 1250.0
FREQS = [CALLER, AGENT, SUPERVISOR]
HEARD, SILENT = 0.03, 0.01


@pytest.fixture
def cc(admin_client, runtime, app):
    from appliance.users import hash_password

    def mutate(doc):
        doc["users"] += [{**p, "password_hash": hash_password(PASSWORD)} for p in PEOPLE]
        pbx = doc.setdefault("pbx", {})
        pbx.update(lab_sip_port=0, digest_algorithms=["MD5"], codecs=["PCMU"], queues=[dict(QUEUE)])
    runtime.engine.update("admin", "call centre people", mutate)
    staff = {}
    for login in ("carol", "dave"):
        staff[login] = app.test_client()
        assert sign_in(staff[login], login, PASSWORD).status_code == 302
    return admin_client, staff["carol"], staff["dave"]


def test_only_a_supervisor_of_the_agents_queue_may_supervise(cc):
    admin, carol, dave = cc
    assert dave.get("/callcentre/").status_code == 403  # an agent, not a supervisor: no wallboard
    assert dave.get("/callcentre/wallboard.json").status_code == 403
    token = csrf_of(dave, "/agent/")
    for client in (admin, dave):  # the admin supervises no queue either
        refused = client.post("/callcentre/calls/202/supervise", data={"mode": "monitor", "csrf_token": token
                                                                       if client is dave else csrf_of(admin, "/")})
        assert refused.status_code == 403
    assert carol.post("/callcentre/calls/202/supervise", data={"mode": "monitor"}).status_code == 400  # no CSRF
    assert carol.post("/callcentre/calls/203/supervise", data={"mode": "monitor", "csrf_token": csrf_of(
        carol, "/callcentre/")}).status_code == 403  # not an agent of carol's queues
    board = html_of(carol, "/callcentre/")  # carol sees the board (the PBX is not running here: nothing live)
    assert "No agent is on a queue call." in board and 'value="monitor"' not in board
    assert "Call centre wallboard" in html_of(carol, "/agent/")  # her way to it


def _tones(tmp_path):
    return ch.tone_files(tmp_path, FREQS)


def _heard(ua, seconds: float = 1.5) -> dict[float, float]:
    return heard_tones(ua, FREQS, seconds)


def _phone(stack, registrar: str, who: dict, tone) -> ch.AudioBaresip:
    ua = stack.enter_context(ch.AudioBaresip(who["login"], tone, user=who["extension"], password=who["sip_secret"],
                                             registrar=registrar, codecs=("pcmu",)))
    ua.register()
    return ua


def _supervise(client, mode: str):
    return post(client, "/callcentre/calls/202/supervise", {"mode": mode}, form_path="/callcentre/")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_listen_then_whisper_from_the_wallboard_with_real_phones(cc, runtime, tmp_path):
    admin, carol, dave = cc
    tones = _tones(tmp_path)
    with _LivePbx(runtime) as live, ExitStack() as stack:
        registrar = f"127.0.0.1:{live.svc.sip_port}"
        caller = _phone(stack, registrar, PEOPLE[0], tones[0])
        agent = _phone(stack, registrar, PEOPLE[1], tones[1])
        assert runtime.client("pbx").acd_agent_action("202", "login") == {"status": "available"}
        caller.dial("600")
        caller.wait_for("CALL_ESTABLISHED")
        agent.answer(timeout=15)
        _until(lambda: runtime.client("pbx").acd_wallboard(0)["calls"])
        assert _supervise(carol, "monitor").status_code == 302  # carol's phone is not registered yet
        assert "no registered phone" in html_of(carol, "/callcentre/")
        supervisor = _phone(stack, registrar, PEOPLE[2], tones[2])
        board = html_of(carol, "/callcentre/")
        assert 'id="c-202"' in board and 'value="monitor"' in board and 'value="whisper"' in board
        assert 'value="barge"' in board
        admin_board = html_of(admin, "/callcentre/")
        assert 'id="c-202"' in admin_board and 'value="monitor"' not in admin_board  # no buttons for a non-supervisor
        time.sleep(1.5)
        assert _heard(caller)[AGENT] > HEARD and _heard(agent)[CALLER] > HEARD

        assert _supervise(carol, "monitor").status_code == 302
        assert "is ringing" in html_of(carol, "/callcentre/")
        assert _supervise(carol, "barge").status_code == 302  # a second click while the phone rings
        assert "supervises this call already" in html_of(carol, "/callcentre/")
        supervisor.answer(timeout=15)
        supervisor.wait_for("CALL_ESTABLISHED")
        _until(lambda: runtime.client("pbx").acd_wallboard(0)["calls"][0]["supervised"])
        assert "supervised" in html_of(carol, "/callcentre/")
        time.sleep(2.5)
        to_supervisor, to_agent, to_caller = _heard(supervisor), _heard(agent), _heard(caller)
        assert to_supervisor[CALLER] > HEARD and to_supervisor[AGENT] > HEARD, to_supervisor  # hears both
        assert to_agent[SUPERVISOR] < SILENT and to_agent[CALLER] > HEARD, to_agent  # nobody hears them
        assert to_caller[SUPERVISOR] < SILENT and to_caller[AGENT] > HEARD, to_caller
        supervisor.hangup()
        supervisor.wait_for("CALL_CLOSED")
        _until(lambda: not runtime.client("pbx").acd_wallboard(0)["calls"][0]["supervised"])

        assert _supervise(carol, "whisper").status_code == 302
        supervisor.answer(timeout=15)
        supervisor.wait_for("CALL_ESTABLISHED")
        time.sleep(2.5)
        to_supervisor, to_agent, to_caller = _heard(supervisor), _heard(agent), _heard(caller)
        assert to_supervisor[CALLER] > HEARD and to_supervisor[AGENT] > HEARD, to_supervisor
        assert to_agent[SUPERVISOR] > HEARD and to_agent[CALLER] > HEARD, to_agent  # the agent is coached
        assert to_caller[SUPERVISOR] < SILENT and to_caller[AGENT] > HEARD, to_caller  # the caller hears nothing of it

        caller.hangup()  # the call ends: the supervisor's call ends with it
        supervisor.wait_for("CALL_CLOSED", timeout=10)
        agent.wait_for("CALL_CLOSED", timeout=10)
        _until(lambda: not runtime.client("pbx").acd_wallboard(0)["calls"])
        assert "No agent is on a queue call." in html_of(carol, "/callcentre/")
        gone = _supervise(carol, "barge")
        assert gone.status_code == 302 and "not on a call any more" in html_of(carol, "/callcentre/")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_the_row_appears_live_and_its_button_rings_the_supervisor_in_chromium(cc, runtime, request, tmp_path):
    from playwright.sync_api import expect

    tab = request.getfixturevalue("page")  # Playwright's loop runs in this thread from now
    tones = _tones(tmp_path)
    with _LivePbx(runtime) as live, ExitStack() as stack:
        registrar = f"127.0.0.1:{live.svc.sip_port}"
        caller = _phone(stack, registrar, PEOPLE[0], tones[0])
        agent = _phone(stack, registrar, PEOPLE[1], tones[1])
        supervisor = _phone(stack, registrar, PEOPLE[2], tones[2])
        assert live.svc.acd_agent_action("202", "login") == {"status": "available"}
        tab.goto("/login")
        tab.fill("#f-login", "carol")
        tab.fill("#f-password", PASSWORD)
        tab.click("button[type=submit]")
        tab.goto("/callcentre/")
        expect(tab.locator("#calls")).to_have_text("No agent is on a queue call.")
        tab.wait_for_timeout(500)  # the event stream is open
        caller.dial("600")
        agent.answer(timeout=15)
        listen = tab.locator("#c-202 button[value=monitor]")
        expect(listen).to_be_visible(timeout=5000)  # the page brought the new call's row by itself
        listen.click()
        expect(tab.locator("body")).to_contain_text("is ringing")
        supervisor.answer(timeout=15)
        supervisor.wait_for("CALL_ESTABLISHED")
        expect(tab.locator("#c-202")).to_contain_text("supervised", timeout=5000)
        expect(listen).to_have_count(0)  # no second supervision of the same call is offered
        time.sleep(2.0)
        to_supervisor = _heard(supervisor)
        assert to_supervisor[CALLER] > HEARD and to_supervisor[AGENT] > HEARD, to_supervisor
        caller.hangup()
        supervisor.wait_for("CALL_CLOSED", timeout=10)
        expect(tab.locator("#calls")).to_have_text("No agent is on a queue call.", timeout=5000)
