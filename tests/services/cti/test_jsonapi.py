"""The CTI JSON API against real baresip phones: a WebSocket client (the `websockets` package) sees a
call's events in order; REST MakeCall rings the caller's phone first; bad tokens, foreign devices,
oversized bodies and a token past its rate are refused; every route is in openapi.json."""
from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import socket
import time
from contextlib import ExitStack, contextmanager

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from services.cti import jsonapi
from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.pbxrunner import PbxRunner

from .conftest import Box, CtiRunner, document
from .test_csta_calls import phone

CRM = "crm-" + secrets.token_urlsafe(24)  # scope 202, 203
ALICE_APP = "alice-" + secrets.token_urlsafe(24)  # scope 201


def _token(name: str, token: str, scope: list[str]) -> dict:
    return {"name": name, "token_hash": hashlib.sha256(token.encode()).hexdigest(), "scope": scope}


@pytest.fixture
def api(tmp_path):
    cfg = document(lab_api_port=0, api_requests_per_second=20, api_max_message=4096, api_max_connections=12,
                   api_tokens=[_token("crm", CRM, ["202", "203"]), _token("alice app", ALICE_APP, ["201"])])
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti:
        yield Box(pbx, cti)


def rest(box, method: str, path: str, token: str | None = CRM, body=None, raw: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", box.cti.svc.server.ports["api"], timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, json.loads(payload) if payload else None


@contextmanager
def events_socket(box, token: str, **hello):
    with connect(f"ws://127.0.0.1:{box.cti.svc.server.ports['api']}/api/v1/events", open_timeout=5) as ws:
        ws.send(json.dumps({"token": token, **hello}))
        yield ws


def next_of(ws, wanted, timeout: float = 15.0) -> dict:
    """The next message matching `wanted` (a predicate), skipping others."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
        if wanted(msg):
            return msg
    raise AssertionError("no such message")


def test_every_route_is_documented():
    spec = json.loads(jsonapi.OPENAPI.read_text())
    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert set(jsonapi.ROUTES) == documented
    for path, item in spec["paths"].items():
        for op in item.values():
            assert op.get("summary"), path


def test_tokens_scopes_and_limits_are_enforced(api):
    assert rest(api, "GET", "/api/v1/openapi.json", token=None)[0] == 200
    assert rest(api, "GET", "/api/v1/me", token=None)[0] == 401
    assert rest(api, "GET", "/api/v1/me", token="obx_" + secrets.token_urlsafe(32))[1]["code"] == "bad_token"
    status, me = rest(api, "GET", "/api/v1/me")
    assert status == 200 and me["scope"] == ["202", "203"]
    status, answer = rest(api, "POST", "/api/v1/calls", body={"from": "201", "to": "202"})
    assert status == 403 and answer["code"] == "scope"
    assert rest(api, "GET", "/api/v1/devices/201/dnd")[0] == 403
    assert rest(api, "POST", "/api/v1/calls", body={"from": "202", "to": "20; DROP"})[0] == 400
    assert rest(api, "POST", "/api/v1/calls", raw=b"{not json")[1]["code"] == "bad_json"
    assert rest(api, "POST", "/api/v1/calls", raw=b"x" * 5000)[0] == 413
    assert rest(api, "DELETE", "/api/v1/me")[0] == 405
    assert rest(api, "GET", "/api/v1/nothing")[0] == 404
    directory = rest(api, "GET", "/api/v1/directory")[1]["extensions"]
    assert [d["extension"] for d in directory] == ["201", "202", "203"]
    assert directory[1]["presence"] == "idle"
    with pytest.raises(ConnectionClosed) as closed, events_socket(api, "obx_wrong") as ws:
        assert json.loads(ws.recv(timeout=5))["code"] == "bad_token"
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4401
    with pytest.raises(ConnectionClosed) as closed, events_socket(api, ALICE_APP, devices=["202"]) as ws:
        ws.recv(timeout=5)
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 4403
    with pytest.raises(ConnectionClosed) as closed, events_socket(api, CRM) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "pong"
        ws.send("x" * 5000)  # over api_max_message
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009
    codes = [rest(api, "GET", "/api/v1/me", token=ALICE_APP)[0] for _ in range(40)]
    assert 429 in codes and codes[0] == 200
    assert rest(api, "GET", "/api/v1/me")[0] == 200  # another token's rate is its own

    with ExitStack() as stack:  # api_max_connections: the 13th connection is closed at once
        port = api.cti.svc.server.ports["api"]
        held = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5)) for _ in range(12)]
        _until(lambda: api.cti.svc.server.api.connections == 12)
        extra = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        assert extra.recv(100) == b""
        assert held[0].send(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n") and held[0].recv(12)

    # revoking a token ends its event stream
    with events_socket(api, CRM) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        revoked = api.cti.cfg.model_copy(deep=True)
        revoked.cti.api_tokens = [t for t in revoked.cti.api_tokens if t.name != "crm"]
        api.cti.call(api.cti.svc.reload(revoked))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401
    assert rest(api, "GET", "/api/v1/me")[0] == 401


def _until(predicate, seconds: float = 10.0):
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "not reached in time"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_events_in_order_and_make_call_rings_the_caller_first(api):
    with ExitStack() as stack:
        bob, carol = phone(stack, api.pbx, "202"), phone(stack, api.pbx, "203")
        ws = stack.enter_context(events_socket(api, CRM))
        alice_ws = stack.enter_context(events_socket(api, ALICE_APP))
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        assert json.loads(alice_ws.recv(timeout=5))["type"] == "hello"
        bob.dial("203")
        calls = lambda m: m.get("type") == "call"  # noqa: E731
        delivered = next_of(ws, lambda m: calls(m) and m["event"] == "delivered")
        call = delivered["call"]
        assert delivered["device"] == "203" and delivered["calling"] == "202"
        assert delivered["connections"]["203"] == "alerting"
        ringing = next_of(ws, lambda m: m.get("type") == "presence" and m["device"] == "203")
        assert ringing["presence"] == "ringing"
        carol.answer()
        established = next_of(ws, lambda m: calls(m) and m["event"] == "established")
        assert established["call"] == call and established["device"] == "203"
        assert established["connections"] == {"202": "connected", "203": "connected"}
        assert rest(api, "GET", "/api/v1/calls")[1]["calls"][0]["call"] == call
        status, held = rest(api, "POST", f"/api/v1/calls/{call}/hold", body={"device": "202"})
        assert status == 200, held
        assert next_of(ws, lambda m: calls(m) and m["event"] == "held")["device"] == "202"
        assert rest(api, "POST", f"/api/v1/calls/{call}/retrieve", body={"device": "202"})[0] == 200
        assert next_of(ws, lambda m: calls(m) and m["event"] == "retrieved")["device"] == "202"
        status, answer = rest(api, "POST", f"/api/v1/calls/{call}/answer", body={"device": "203"})
        assert status == 409 and answer["code"] == "state"
        assert rest(api, "POST", f"/api/v1/calls/{call}/hangup", body={"device": "202"})[0] == 200
        cleared = next_of(ws, lambda m: calls(m) and m["event"] == "cleared")
        assert cleared["call"] == call
        carol.wait_for("CALL_CLOSED")
        # alice's token (scope 201) saw none of it
        alice_ws.send(json.dumps({"type": "ping"}))
        assert json.loads(alice_ws.recv(timeout=5))["type"] == "pong"

        status, made = rest(api, "POST", "/api/v1/calls", body={"from": "202", "to": "203"})
        assert status == 201, made
        bob.wait_for("CALL_INCOMING")
        initiated = next_of(ws, lambda m: calls(m) and m["call"] == made["call"])
        assert initiated["event"] == "initiated" and initiated["device"] == "202"
        time.sleep(1.0)
        assert sum(e.get("type") == "CALL_INCOMING" for e in carol.events) == 1  # only the first call so far
        bob.command("accept")
        carol.wait_for("CALL_INCOMING", timeout=10)
        status, refused = rest(api, "POST", f"/api/v1/calls/{made['call']}/answer", body={"device": "202"})
        assert status in (404, 409), refused
        log = rest(api, "GET", "/api/v1/devices/202/calls?limit=5")
        assert log[0] == 200 and log[1]["calls"][0]["caller"] == "202"
