"""Trunks against a second PBX instance playing the carrier (on 127.0.0.2), with real baresip phones:
outbound registration with auth, outbound route with failover to the backup trunk, inbound DID,
permission classes and emergency numbers."""
import socket
import time
from contextlib import ExitStack

import pytest

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner, config, user

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
LINE = user("line", "5000", "linesecret99", "Office line")
REMOTE = user("remote", "6000", "remotesecret1", "Remote Customer")


def dead_port(host: str) -> int:
    """A UDP port on which nothing answers (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_outbound_failover_inbound_did_and_permissions(tmp_path):
    with ExitStack() as stack:
        carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, REMOTE]), host="127.0.0.2"))
        box_cfg = config(
            [ALICE, BOB], permissions={"bob": "internal"},
            trunks=[{"name": "primary", "host": "127.0.0.3", "port": dead_port("127.0.0.3"), "invite_timeout": 1},
                    {"name": "backup", "host": "127.0.0.2", "port": carrier.port, "username": "5000",
                     "auth_password": LINE["sip_secret"], "registration": True, "register_expires": 120}],
            routes=[{"name": "carrier", "prefix": "6", "trunks": ["primary", "backup"]},
                    {"name": "emergency", "prefix": "1", "trunks": ["backup"]}],
            dids=[{"number": "5000", "destination": "201"}])
        box = stack.enter_context(PbxRunner(tmp_path / "box", box_cfg))
        wait(lambda: box.svc.trunks()[1]["registered"], what="trunk registration")
        assert [r["extension"] for r in carrier.svc.registrations()] == ["5000"]
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=box.registrar))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=box.registrar))
        remote = stack.enter_context(Baresip("remote", user="6000", password=REMOTE["sip_secret"],
                                             registrar=carrier.registrar, addr="127.0.0.2"))
        for ua in (alice, bob, remote):
            ua.register()

        # outbound: the primary trunk never answers -> after 1 s the call goes out on the backup trunk
        alice.dial("6000")
        incoming = remote.answer(timeout=10)
        assert incoming["peeruri"].startswith("sip:5000@")  # the carrier sees our line, authenticated
        alice.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(tx=30, rx=30)
        remote.wait_rtp(tx=30, rx=30)
        [call] = box.svc.active_calls()
        assert call["direction"] == "outbound" and call["trunk"] == "backup"
        alice.hangup()
        remote.wait_for("CALL_CLOSED")

        # inbound: the carrier delivers a call for our DID 5000 -> alice
        remote.dial("5000")
        incoming = alice.answer(timeout=10)
        assert incoming["peeruri"].startswith("sip:6000@")
        remote.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(rx=20)
        remote.hangup()
        alice.wait_for("CALL_CLOSED")

        # bob may only call internally: the outside number is refused, emergency numbers always go out
        bob.dial("6000")
        assert bob.wait_for("CALL_CLOSED")["param"].startswith("403")
        bob.dial("112")
        assert bob.wait_for("CALL_CLOSED")["param"].startswith("404")  # the carrier had no route for it

    rows = sorted(box.svc.cdr_query(), key=lambda r: r["id"])
    assert [(r["direction"], r["caller"], r["dialled"], r["trunk"], r["disposition"], r["status"]) for r in rows] == [
        ("outbound", "201", "6000", "backup", "answered", 200),
        ("inbound", "6000", "201", "backup", "answered", 200),
        ("outbound", "202", "6000", "", "failed", 403),
        ("outbound", "202", "112", "backup", "failed", 404),
    ]
    carrier_dialled = [r["dialled"] for r in carrier.svc.cdr_query()]
    assert "112" in carrier_dialled and carrier_dialled.count("6000") == 1  # the refused call never left


def test_full_trunk_overflows_to_the_next(tmp_path):
    other = user("other", "6001", "othersecret12", "Other Customer")
    with ExitStack() as stack:
        carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, REMOTE, other]), host="127.0.0.2"))
        line = {"host": "127.0.0.2", "port": carrier.port, "username": "5000", "auth_password": LINE["sip_secret"],
                "max_channels": 1}
        box = stack.enter_context(PbxRunner(tmp_path / "box", config(
            [ALICE, BOB], trunks=[dict(line, name="first"), dict(line, name="second")],
            routes=[{"name": "out", "prefix": "6", "trunks": ["first", "second"]}])))
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=box.registrar))
        bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"], registrar=box.registrar))
        remote = stack.enter_context(Baresip("remote", user="6000", password=REMOTE["sip_secret"],
                                             registrar=carrier.registrar, addr="127.0.0.2"))
        remote2 = stack.enter_context(Baresip("remote2", user="6001", password=other["sip_secret"],
                                              registrar=carrier.registrar, addr="127.0.0.2"))
        for ua in (alice, bob, remote, remote2):
            ua.register()
        alice.dial("6000")
        remote.answer()
        alice.wait_for("CALL_ESTABLISHED")
        bob.dial("6001")  # "first" carries one call only: this one overflows to "second"
        remote2.answer()
        bob.wait_for("CALL_ESTABLISHED")
        assert sorted(c["trunk"] for c in box.svc.active_calls()) == ["first", "second"]
        assert {t["name"]: t["channels_in_use"] for t in box.svc.trunks()} == {"first": 1, "second": 1}
        alice.hangup()
        bob.hangup()
        remote.wait_for("CALL_CLOSED")
        remote2.wait_for("CALL_CLOSED")
    assert sorted(r["trunk"] for r in box.svc.cdr_query(disposition="answered")) == ["first", "second"]
