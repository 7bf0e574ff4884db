"""ACD agents and queues through CTI: a CSTA client over TCP (cstaclient.py, written from the standards)
and the JSON API log an agent in, make them not ready with a reason, ready, and out, and the PBX's ACD
state (what the agent page shows) follows; a change on the PBX's side (the agent page's
acd_agent_action) reaches the monitors; a baresip caller dialling the queue gives QueuedEvent to a
monitor of the queue's number and of the calling device, then EstablishedEvent when the agent answers,
or ConnectionClearedEvent when the caller gives up."""
from __future__ import annotations

import hashlib
import secrets
from contextlib import ExitStack

import pytest

from appliance import schema
from appliance.users import hash_password
from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.conftest import ALICE, BOB, CAROL
from tests.services.pbx.pbxrunner import PbxRunner

from .conftest import APP_PASSWORD, PASSWORDS, Box, CtiRunner
from .cstaclient import CstaClient
from .test_csta_calls import phone
from .test_jsonapi import events_socket, next_of, rest

SUP_PASSWORD = "supervisor-app-pass"
SUP_TOKEN = "sup-" + secrets.token_urlsafe(24)
CRM_TOKEN = "crm-" + secrets.token_urlsafe(24)
QUEUE_PASSWORD = "queue-wallboard-pass"
QUEUE_TOKEN = "q600-" + secrets.token_urlsafe(24)


def _document() -> schema.CoreConfig:
    users = [{**u, "password_hash": hash_password(PASSWORDS[u["login"]])} for u in (ALICE, BOB, CAROL)]
    token = lambda name, t, scope: {"name": name, "token_hash": hashlib.sha256(t.encode()).hexdigest(),  # noqa: E731
                                    "scope": scope}
    cti = {"enabled": True, "lab_tcp_port": 0, "lab_tls_port": 0, "lab_api_port": 0,
           "accounts": [{"name": "crm", "password_hash": hash_password(APP_PASSWORD), "scope": ["202", "203"]},
                        {"name": "sup", "password_hash": hash_password(SUP_PASSWORD), "scope": ["*"]},
                        {"name": "wallboard", "password_hash": hash_password(QUEUE_PASSWORD), "scope": ["600"]}],
           "api_tokens": [token("sup", SUP_TOKEN, ["*"]), token("crm", CRM_TOKEN, ["202", "203"]),
                          token("q600", QUEUE_TOKEN, ["600"])]}
    queue = {"number": "600", "name": "sales", "agent_timeout": 10, "wrap_up": 0, "announce_every": 0,
             "auto_pause_after": 0, "members": [{"agent": "202"}, {"agent": "203"}],
             "supervisors": ["201"]}
    return schema.parse({"users": users, "cti": cti,
                         "pbx": {"lab_sip_port": 0, "lab_rtp_port_min": 23600, "lab_rtp_port_max": 23799,
                                 "queues": [queue]}})


@pytest.fixture
def acd(tmp_path):
    cfg = _document()
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti:
        yield Box(pbx, cti)


def session(box, login: str, password: str) -> CstaClient:
    c = CstaClient(box.cti.tcp)
    assert c.start_session(login, password).name == "StartApplicationSessionPosResponse"
    return c


def set_state(c: CstaClient, device: str, state: str, reason: str = ""):
    private = f"<extensions><privateData><private>{reason}</private></privateData></extensions>" if reason else ""
    return c.csta("SetAgentState", f"<device>{device}</device><requestedAgentState>{state}</requestedAgentState>"
                                   f"{private}")


def test_csta_agent_states_follow_both_ways(acd):
    pbx = acd.pbx.svc
    with session(acd, "sup", SUP_PASSWORD) as c, session(acd, "alice", PASSWORDS["alice"]) as staff:
        ref = c.monitor("202")
        assert set_state(c, "202", "loggedOn").name == "SetAgentStateResponse"
        assert c.wait_event("AgentLoggedOnEvent", monitorCrossRefID=ref).value("agentID") == "202"
        c.wait_event("AgentReadyEvent", monitorCrossRefID=ref)
        assert pbx.acd_agent("202")["status"] == "available"

        assert set_state(c, "202", "notReady", "lunch").name == "SetAgentStateResponse"
        ev = c.wait_event("AgentNotReadyEvent", monitorCrossRefID=ref)
        assert ev.value("agentDevice", "deviceIdentifier") == "202"
        assert ev.value("extensions", "privateData", "private") == "lunch"
        assert (pbx.acd_agent("202")["status"], pbx.acd_agent("202")["reason"]) == ("paused", "lunch")
        got = c.csta("GetAgentState", "<device>202</device>")
        assert got.name == "GetAgentStateResponse", got
        assert got.all("loggedOnState") == ["true"] and got.all("agentState") == ["agentNotReady"]
        vendor = c.csta("SetAgentState", "<device>202</device><requestedAgentState>notReady</requestedAgentState>"
                                         '<extensions><privateData><private xmlns:pri="urn:example:acd">'
                                         "<pri:reasonName>break</pri:reasonName></private></privateData></extensions>")
        assert vendor.name == "SetAgentStateResponse", vendor  # private data as an element of its own namespace
        assert c.wait_event("AgentNotReadyEvent", monitorCrossRefID=ref).value(
            "extensions", "privateData", "private") == "break"
        assert pbx.acd_agent("202")["reason"] == "break"

        assert pbx.acd_agent_action("202", "resume") == {"status": "available"}  # the agent page
        c.wait_event("AgentReadyEvent", monitorCrossRefID=ref)
        assert pbx.acd_agent_action("202", "logout") == {"status": "logged_out"}
        c.wait_event("AgentLoggedOffEvent", monitorCrossRefID=ref)
        assert c.csta("GetAgentState", "<device>202</device>").all("loggedOnState") == ["false"]

        assert set_state(staff, "202", "loggedOn").value("operation") == "privilegeViolationOnSpecifiedDevice"
        assert set_state(c, "201", "loggedOn").value("stateIncompatibility"), "201 is in no queue"
        assert set_state(c, "202", "busy").value("operation") == "invalidParameterValue"
        assert pbx.acd_agent("202")["status"] == "logged_out"
        c.drain(0.3)
        assert not [e.name for e in c.events if e.name.startswith("Agent")]


def test_json_agent_state_and_events(acd):
    pbx = acd.pbx.svc
    with events_socket(acd, SUP_TOKEN, devices=["203"]) as ws:
        next_of(ws, lambda m: m["type"] == "hello")
        status, body = rest(acd, "PUT", "/api/v1/devices/203/agent", SUP_TOKEN, {"state": "not_ready", "reason": "x"})
        assert status == 409, body  # log in first
        status, body = rest(acd, "PUT", "/api/v1/devices/203/agent", SUP_TOKEN, {"state": "logged_on"})
        assert (status, body["status"], body["queues"]) == (200, "available", ["sales"])
        assert next_of(ws, lambda m: m["type"] == "agent")["event"] == "logged_on"
        assert next_of(ws, lambda m: m["type"] == "agent")["event"] == "ready"
        status, body = rest(acd, "PUT", "/api/v1/devices/203/agent", SUP_TOKEN, {"state": "not_ready",
                                                                                 "reason": "training"})
        assert (status, body["status"], body["reason"]) == (200, "paused", "training")
        ev = next_of(ws, lambda m: m["type"] == "agent")
        assert (ev["event"], ev["device"], ev["reason"], ev["state"]) == ("not_ready", "203", "training",
                                                                        "agentNotReady")
        assert pbx.acd_agent_action("203", "logout") == {"status": "logged_out"}
        assert next_of(ws, lambda m: m["type"] == "agent")["event"] == "logged_off"
        assert rest(acd, "GET", "/api/v1/devices/203/agent", SUP_TOKEN)[1]["status"] == "logged_out"
    assert rest(acd, "PUT", "/api/v1/devices/201/agent", CRM_TOKEN, {"state": "logged_on"})[0] == 403
    assert rest(acd, "PUT", "/api/v1/devices/203/agent", CRM_TOKEN, {"state": "away"})[0] == 400


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_caller_dialling_the_queue_gives_queued_then_established(acd):
    with ExitStack() as stack:
        bob, carol = phone(stack, acd.pbx, "202"), phone(stack, acd.pbx, "203")
        c = stack.enter_context(session(acd, "sup", SUP_PASSWORD))
        crm = stack.enter_context(session(acd, "crm", APP_PASSWORD))
        ws = stack.enter_context(events_socket(acd, SUP_TOKEN, devices=["600"]))
        next_of(ws, lambda m: m["type"] == "hello")
        q_ref, caller_ref, agent_ref = c.monitor("600"), c.monitor("202"), c.monitor("203")
        assert crm.csta("MonitorStart", "<monitorObject><deviceObject>600</deviceObject></monitorObject>").value(
            "operation") == "privilegeViolationOnSpecifiedDevice"  # a scope of extensions only
        assert acd.pbx.svc.acd_agent_action("203", "login") == {"status": "available"}
        c.wait_event("AgentReadyEvent", monitorCrossRefID=agent_ref)
        bob.dial("600")
        queued = c.wait_event("QueuedEvent", monitorCrossRefID=q_ref)
        call = queued.value("queuedConnection", "callID")
        assert queued.value("queue", "deviceIdentifier") == "600"
        assert queued.value("callingDevice", "deviceIdentifier") == "202"
        assert queued.value("numberQueued") == "1" and queued.value("cause") == "enteringDistribution"
        c.wait_event("QueuedEvent", monitorCrossRefID=caller_ref, callID=call)
        js = next_of(ws, lambda m: m["type"] == "queue")
        assert (js["event"], js["device"], js["call"], js["caller"]) == ("queued", "600", call, "202")

        carol.answer(timeout=15)
        est = c.wait_event("EstablishedEvent", monitorCrossRefID=q_ref, callID=call)
        assert est.value("answeringDevice", "deviceIdentifier") == "203"
        c.wait_event("AgentBusyEvent", monitorCrossRefID=agent_ref)
        js = next_of(ws, lambda m: m["type"] == "queue")
        assert (js["event"], js["agent"]) == ("answered", "203")
        bob.hangup()
        c.wait_event("AgentReadyEvent", monitorCrossRefID=agent_ref)  # 203 is free again (no wrap-up)

        bob.dial("600")  # abandoned while the agent's phone rings
        call = c.wait_event("QueuedEvent", monitorCrossRefID=q_ref).value("queuedConnection", "callID")
        carol.wait_for("CALL_INCOMING", timeout=10)
        bob.hangup()
        cleared = c.wait_event("ConnectionClearedEvent", monitorCrossRefID=q_ref, callID=call)
        assert cleared.value("releasingDevice", "deviceIdentifier") == "202"
        assert cleared.value("cause") == "normalClearing"
        js = next_of(ws, lambda m: m["type"] == "queue" and m["event"] == "left")
        assert (js["call"], js["outcome"]) == (call, "abandoned")


def _monitor_queue(c: CstaClient):
    return c.csta("MonitorStart", "<monitorObject><deviceObject>600</deviceObject></monitorObject>")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_a_queue_named_in_the_scope_or_supervised_may_be_monitored_others_are_refused(acd):
    """An application account whose scope names the queue's number, and a staff login that is one of the queue's
    supervisors (alice), monitor the queue and get its events; bob (an agent, not a supervisor) and an account
    of extensions only are refused."""
    with ExitStack() as stack:
        bob, carol = phone(stack, acd.pbx, "202"), phone(stack, acd.pbx, "203")
        board = stack.enter_context(session(acd, "wallboard", QUEUE_PASSWORD))
        alice = stack.enter_context(session(acd, "alice", PASSWORDS["alice"]))
        for refused in (stack.enter_context(session(acd, "bob", PASSWORDS["bob"])),
                        stack.enter_context(session(acd, "crm", APP_PASSWORD))):
            got = _monitor_queue(refused)
            assert got.value("operation") == "privilegeViolationOnSpecifiedDevice", got
            assert "queue" in got.value("privateData", "private")
        assert board.csta("MonitorStart", "<monitorObject><deviceObject>202</deviceObject></monitorObject>").value(
            "operation") == "privilegeViolationOnSpecifiedDevice"  # the queue, not its agents
        refs = {}
        for name, c in (("wallboard", board), ("alice", alice)):
            got = _monitor_queue(c)
            assert got.name == "MonitorStartResponse", (name, got)
            refs[name] = got.value("monitorCrossRefID")
        ws = stack.enter_context(events_socket(acd, QUEUE_TOKEN, devices=["600"]))
        next_of(ws, lambda m: m["type"] == "hello")
        assert acd.pbx.svc.acd_agent_action("203", "login") == {"status": "available"}
        bob.dial("600")
        for name, c in (("wallboard", board), ("alice", alice)):
            queued = c.wait_event("QueuedEvent", monitorCrossRefID=refs[name])
            assert queued.value("callingDevice", "deviceIdentifier") == "202", (name, queued)
        assert next_of(ws, lambda m: m["type"] == "queue")["event"] == "queued"
        carol.answer(timeout=15)
        for name, c in (("wallboard", board), ("alice", alice)):
            est = c.wait_event("EstablishedEvent", monitorCrossRefID=refs[name])
            assert est.value("answeringDevice", "deviceIdentifier") == "203", (name, est)
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
