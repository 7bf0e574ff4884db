"""Call centre pages: queues configured through the real apply engine (field errors for an unknown agent
and a number clashing with an extension), the wallboard and the agent panel on the runtime's real PBX with
a baresip caller, reports and their CSV checked against the calls made."""
from __future__ import annotations

import csv
import io
import re
import time
from contextlib import ExitStack

import pytest

from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import post, sign_in
from tests.webadmin.test_pbx_pages import _LivePbx, _until, page
from webadmin.blueprints.callcentre import _safe_cell

PEOPLE = [
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1",
},
    {"login": "bob", "full_name": "Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
]
QUEUE = {"number": "600", "name": "sales", "title": "Sales", "strategy": "skills", "members_text": "201:4\n202:7",
         "overflow": "", "max_wait": "120", "max_length": "20", "moh_class": "default", "announce_every": "0",
         "callback_every": "0", "agent_timeout": "5", "wrap_up": "0", "auto_pause_after": "3", "service_level": "20",
         "priority": "0", "vip_text": "", "vip_priority": "9", "did_text": "", "web_callback_pending": "10"}


@pytest.fixture
def cc_client(admin_client, runtime):
    def mutate(doc):
        doc["users"] += [dict(p) for p in PEOPLE]
        doc.setdefault("pbx", {})["lab_sip_port"] = 0
        doc["pbx"]["digest_algorithms"] = ["MD5"]
    runtime.engine.update("admin", "test users", mutate)
    return admin_client


def test_queue_form_checks_agents_and_numbers_then_saves(cc_client, runtime):
    page(cc_client, "/callcentre/queues")
    bad = post(cc_client, "/callcentre/queues/new", {**QUEUE, "members_text": "201:4\n299:2"})
    assert bad.status_code == 400 and "unknown agent 299" in bad.get_data(as_text=True)
    clash = post(cc_client, "/callcentre/queues/new", {**QUEUE, "number": "202"})
    assert clash.status_code == 400 and "uses the number of an extension" in clash.get_data(as_text=True)
    level = post(cc_client, "/callcentre/queues/new", {**QUEUE, "members_text": "201:x"})
    assert level.status_code == 400 and "201:5" in level.get_data(as_text=True)
    assert runtime.config.pbx.queues == []  # nothing saved by the refused forms
    ok = post(cc_client, "/callcentre/queues/new", {**QUEUE, "vip_text": "0612345678, 203", "did_text": "0140:5",
                                                       "supervisors_text": "203", "web_callback": "on",
                                                       "web_numbers_text": "0ZXXXXXXXX, 6[0-5]XX", "chat": "on"})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:3000]
    [q] = runtime.config.pbx.queues
    assert [(m.agent, m.skill) for m in q.members] == [("201", 4), ("202", 7)]
    assert q.vip_callers == ["0612345678", "203"] and q.did_priorities == {"0140": 5} and q.strategy == "skills"
    assert runtime.config.pbx.application_for("600") == "queue:sales" and q.supervisors == ["203"]
    assert runtime.config.pbx.application_for("*56201") == "app:supervisor-whisper"
    assert q.web_callback and q.web_callback_numbers == ["0ZXXXXXXXX", "6[0-5]XX"] and q.chat
    assert 'name="chat" id="f-chat" checked' in page(cc_client, "/callcentre/queues/sales")
    pattern = post(cc_client, "/callcentre/queues/sales", {**QUEUE, "web_numbers_text": "0.*"})
    assert pattern.status_code == 400 and "is not a number pattern" in pattern.get_data(as_text=True)
    edit = post(cc_client, "/callcentre/queues/sales", {**QUEUE, "wrap_up": "30"})
    assert edit.status_code == 302 and runtime.config.pbx.queues[0].wrap_up == 30
    assert "Sales" in page(cc_client, "/callcentre/queues")
    gone = post(cc_client, "/callcentre/queues/sales/delete", {"confirm": "1"}, form_path="/callcentre/queues")
    assert gone.status_code == 302
    assert runtime.config.pbx.queues == []


def test_pages_need_an_admin_and_the_panel_a_signed_in_user(client):
    for path in ("/callcentre/", "/callcentre/events", "/callcentre/queues", "/callcentre/reports.csv", "/agent/"):
        assert client.get(path).status_code == 302


def test_csv_cells_that_look_like_formulas_are_escaped():
    assert [_safe_cell(v) for v in ("=1+1", "+33", "@x", "-2", "sales", 4)] == ["'=1+1", "'+33", "'@x", "'-2",
                                                                                 "sales", 4]


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_wallboard_agent_panel_and_reports_with_a_real_caller(cc_client, runtime, app):
    assert post(cc_client, "/callcentre/queues/new", QUEUE).status_code == 302
    with _LivePbx(runtime) as live, ExitStack() as stack:
        registrar = f"127.0.0.1:{live.svc.sip_port}"
        bob = stack.enter_context(Baresip("bob", user="202", password="bobsecret12", registrar=registrar,
                                          auto_answer=True))
        bob.register()
        staff = app.test_client()
        runtime.engine.update("admin", "bob's password", lambda doc: _password(doc, "bob", "bob-password-1"))
        assert sign_in(staff, "bob", "bob-password-1").status_code == 302
        assert "Agent panel" in page(staff, "/account/")
        panel = page(staff, "/agent/")
        assert "logged out" in panel and "sales" in panel
        assert post(staff, "/agent/", {"action": "login"}).status_code == 302
        assert post(staff, "/agent/", {"action": "pause", "reason": "lunch"}).status_code == 302
        assert "paused" in page(staff, "/agent/") and "lunch" in page(staff, "/agent/")
        board = page(cc_client, "/callcentre/")
        since = re.search(r'data-f="since">([^<]*)<', board).group(1)
        assert re.fullmatch(r"\d{1,2}:\d{2}:\d{2}( [AP]M)?", since.replace("\u202f", " ")), since  # a time of day
        assert 'data-f="waiting">0<' in board and "Sales" in board
        alice = stack.enter_context(Baresip("alice", user="201", password="alicesecret1", registrar=registrar))
        alice.register()
        alice.dial("600")
        alice.wait_for("CALL_ESTABLISHED")
        _until(lambda: cc_client.get("/callcentre/wallboard.json").get_json()["queues"][0]["waiting"] == 1)
        assert 'data-f="waiting">1<' in page(cc_client, "/callcentre/")  # the page shows it without JavaScript
        assert post(staff, "/agent/", {"action": "resume"}).status_code == 302
        bob.wait_for("CALL_ESTABLISHED", timeout=20)
        time.sleep(1.0)
        bob.hangup()
        alice.wait_for("CALL_CLOSED", timeout=20)
        json_board = _until(lambda: (b := cc_client.get("/callcentre/wallboard.json").get_json())["queues"][0][
            "answered"] == 1 and b)
        assert json_board["queues"][0]["service_level"] == 100.0
    report = _until(lambda: list(csv.reader(io.StringIO(
        cc_client.get("/callcentre/reports.csv?by=agent").get_data(as_text=True)))))
    assert report[0][:4] == ["agent", "offered", "answered", "abandoned"]
    assert [row[:4] for row in report[1:]] == [["202", "1", "1", "0"]]
    shown = page(cc_client, "/callcentre/reports?by=queue")
    assert "<svg" in shown and "sales" in shown


def _password(doc: dict, login: str, password: str) -> None:
    from appliance.users import hash_password
    for user in doc["users"]:
        if user["login"] == login:
            user["password_hash"] = hash_password(password)


def test_event_streams_are_bounded_and_only_for_event_sources(cc_client):
    from webadmin.blueprints import callcentre
    assert cc_client.get("/callcentre/events").status_code == 406  # a plain GET (a crawler) gets no stream
    headers = {"Accept": "text/event-stream"}
    streams = [cc_client.get("/callcentre/events", headers=headers) for _ in range(callcentre.MAX_STREAMS)]
    assert [s.status_code for s in streams] == [200] * callcentre.MAX_STREAMS
    assert next(streams[0].response).startswith(b"retry:")
    assert cc_client.get("/callcentre/events", headers=headers).status_code == 503  # the page polls instead
    for s in streams:
        s.close()
    again = cc_client.get("/callcentre/events", headers=headers)
    assert again.status_code == 200  # closed streams gave their places back
    again.close()
