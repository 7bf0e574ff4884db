"""End-to-end calls between real baresip user agents through the PBX (B2BUA + RTP relay)."""
import time
from contextlib import ExitStack

import pytest

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL
from .pbxrunner import PbxRunner, config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
SECRETS = {u["extension"]: u["sip_secret"] for u in (ALICE, BOB, CAROL)}


def phones(stack: ExitStack, pbx: PbxRunner, *exts: str, **kw) -> list[Baresip]:
    uas = [stack.enter_context(Baresip(f"p{ext}-{i}", user=ext, password=SECRETS[ext], registrar=pbx.registrar, **kw))
           for i, ext in enumerate(exts)]
    for ua in uas:
        ua.register()
    return uas


def closed_after(ua: Baresip, start: int, timeout: float = 10.0) -> str:
    """The reason of the first CALL_CLOSED event after event number `start`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in ua.events[start:]:
            if ev.get("type") == "CALL_CLOSED":
                return ev.get("param", "")
        time.sleep(0.05)
    raise AssertionError(f"{ua.name}: no CALL_CLOSED")


def cdr_rows(pbx: PbxRunner, n: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = pbx.svc.cdr_query()
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_call_with_audio_hold_resume_and_hangup(pbx):
    with ExitStack() as stack:
        alice, bob = phones(stack, pbx, "201", "202")
        alice.dial("202")
        incoming = bob.answer()
        assert incoming["peerdisplayname"] == "Alice Martin" and incoming["peeruri"].startswith("sip:201@")
        alice.wait_for("CALL_ESTABLISHED")
        a_stats = alice.wait_rtp(tx=50, rx=50)
        bob.wait_rtp(tx=50, rx=50)
        relay_port = int(a_stats["remote"].rsplit(":", 1)[1])
        cfg = pbx.cfg.pbx
        assert cfg.lab_rtp_port_min <= relay_port <= cfg.lab_rtp_port_max  # media goes to the relay, not to bob
        [call] = pbx.svc.active_calls()
        assert call["state"] == "connected" and call["caller"] == "201" and call["callee"] == "202"
        assert all(leg["packets"] >= 40 and leg["forwarded"] >= 40 for leg in call["relay"].values())
        alice.send_dtmf("15#")  # RFC 4733 events cross the relay like any RTP
        deadline = time.monotonic() + 5
        while bob.dtmf_received != "15#" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bob.dtmf_received == "15#"
        alice.hold()
        deadline = time.monotonic() + 5
        while not pbx.svc.active_calls()[0]["on_hold"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pbx.svc.active_calls()[0]["on_hold"]
        deadline = time.monotonic() + 5
        while bob.rtp_stats().get("dir") not in ("recvonly", "inactive") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bob.rtp_stats()["dir"] in ("recvonly", "inactive")
        alice.resume()
        deadline = time.monotonic() + 5
        while pbx.svc.active_calls()[0]["on_hold"] and time.monotonic() < deadline:
            time.sleep(0.05)
        rx = bob.rtp_stats()["rx"]
        bob.wait_rtp(rx=rx + 20)  # audio flows again after resume
        bob.hangup()  # BYE from the called side
        alice.wait_for("CALL_CLOSED")
    [row] = cdr_rows(pbx, 1)
    assert (row["caller"], row["caller_name"], row["dialled"], row["callee"]) == ("201", "Alice Martin", "202", "202")
    assert row["disposition"] == "answered" and row["direction"] == "internal" and row["status"] == 200
    assert row["answer"] >= row["start"] and row["end"] >= row["answer"] and row["billsec"] > 1
    a_packets, a_lost = map(int, row["rtp_a"].split("/"))
    assert a_packets >= 70 and a_lost <= 2
    assert pbx.svc.active_calls() == [] and pbx.svc.status().figures["relay_ports_in_use"] == 0


def test_busy_not_found_unavailable_and_cancel(pbx):
    with ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")
        alice.dial("202")
        bob.wait_for("CALL_INCOMING")
        bob.reject()
        assert alice.wait_for("CALL_CLOSED")["param"].startswith("486")
        alice.dial("299")
        assert alice.wait_for("CALL_CLOSED")["param"].startswith("404")
        carol.unregister()
        deadline = time.monotonic() + 5
        while any(r["extension"] == "203" for r in pbx.svc.registrations()) and time.monotonic() < deadline:
            time.sleep(0.05)
        alice.dial("203")
        assert alice.wait_for("CALL_CLOSED")["param"].startswith("480")
        alice.dial("202")
        bob.wait_for("CALL_INCOMING")
        alice.hangup()  # CANCEL while ringing
        bob.wait_for("CALL_CLOSED")
    rows = {r["dialled"] + r["disposition"]: r for r in cdr_rows(pbx, 4)}
    assert set(rows) == {"202busy", "299failed", "203missed", "202missed"}
    assert rows["202busy"]["status"] == 486 and rows["299failed"]["status"] == 404
    assert rows["203missed"]["status"] == 480 and rows["202missed"]["status"] == 487
    assert pbx.svc.cdr_query(disposition="busy")[0]["dialled"] == "202"


def test_all_contacts_of_an_extension_ring_together(pbx):
    with ExitStack() as stack:
        alice, desk, soft = phones(stack, pbx, "201", "202", "202")
        assert len([r for r in pbx.svc.registrations() if r["extension"] == "202"]) == 2
        alice.dial("202")
        desk.wait_for("CALL_INCOMING")
        soft.answer()
        alice.wait_for("CALL_ESTABLISHED")
        desk.wait_for("CALL_CLOSED")  # the other phone stops ringing
        alice.wait_rtp(rx=20)
        alice.hangup()
        soft.wait_for("CALL_CLOSED")


def test_blind_transfer(pbx):
    blind_transfer(pbx)


def test_blind_transfer_while_the_held_party_s_music_is_looked_up(pbx, monkeypatch):
    """baresip holds before its REFER: the held party's music, found only after the transfer linked it to
    the new party, must not take that party's audio away."""
    from services.pbx import moh

    found = moh.MohLibrary.class_files

    def slow(self, *args, **kwargs):
        time.sleep(1.5)
        return found(self, *args, **kwargs)
    monkeypatch.setattr(moh.MohLibrary, "class_files", slow)
    blind_transfer(pbx)


def blind_transfer(pbx):
    with ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        bob.wait_rtp(rx=10)
        bob.transfer("203")
        incoming = carol.answer()
        assert incoming["peeruri"].startswith("sip:201@")  # carol sees who she will talk to
        carol.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_CLOSED")
        carol_stats = carol.wait_rtp(tx=30, rx=30)
        rx_before = alice.rtp_stats()["rx"]
        alice.wait_rtp(rx=rx_before + 20)  # alice now hears carol
        assert carol_stats["remote"] == alice.rtp_stats()["remote"].rsplit(":", 1)[0] + ":" + \
            carol_stats["remote"].rsplit(":", 1)[1]
        [call] = pbx.svc.active_calls()
        assert set(call["relay"]) == {"201", "203"}
        carol.hangup()
        alice.wait_for("CALL_CLOSED")
    rows = cdr_rows(pbx, 2)
    first, second = sorted(rows, key=lambda r: r["id"])
    assert (first["disposition"], first["callee"], first["transferred_to"]) == ("transferred", "202", "203")
    assert (second["disposition"], second["caller"], second["callee"]) == ("answered", "201", "203")


def test_tcp_phone_calls_udp_phone(pbx):
    with ExitStack() as stack:
        [alice] = phones(stack, pbx, "201", transport="tcp")
        [bob] = phones(stack, pbx, "202")
        assert any(r["source"].startswith("tcp:") for r in pbx.svc.registrations())
        bob.dial("201")
        alice.answer()
        bob.wait_for("CALL_ESTABLISHED")
        alice.wait_rtp(tx=20, rx=20)
        alice.hangup()
        bob.wait_for("CALL_CLOSED")


def test_ring_groups_forwarding_and_dnd(tmp_path):
    cfg = config([ALICE, BOB, CAROL], groups=[
        {"number": "600", "name": "Sales", "strategy": "in_order", "members": ["202", "203"], "member_timeout": 1,
         "timeout": 10},
        {"number": "601", "name": "Support", "strategy": "simultaneous", "members": ["202", "203"], "timeout": 1,
         "overflow": "201"},
    ], extensions={"202": {"forward_no_answer": "203", "no_answer_timeout": 5}})
    with PbxRunner(tmp_path / "p", cfg) as pbx, ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")
        # in order: bob rings first, then carol
        alice.dial("600")
        bob.wait_for("CALL_INCOMING")
        bob.wait_for("CALL_CLOSED", timeout=5)
        carol.answer()
        alice.wait_for("CALL_ESTABLISHED")
        alice.hangup()
        carol.wait_for("CALL_CLOSED")
        # simultaneous: bob calls the group (himself and carol); nobody answers in 1 s -> overflow to alice
        bob.dial("601")
        carol.wait_for("CALL_INCOMING")
        alice.answer(timeout=8)
        carol.wait_for("CALL_CLOSED")
        bob.wait_for("CALL_ESTABLISHED")
        bob.hangup()
        alice.wait_for("CALL_CLOSED")
        # forward on no answer: 202 -> 203 after 5 s
        alice.dial("202")
        bob.wait_for("CALL_INCOMING")
        carol.answer(timeout=10)
        alice.wait_for("CALL_ESTABLISHED")
        alice.hangup()
        carol.wait_for("CALL_CLOSED")
        # do not disturb, reached through an always-forward
        pbx.reload(config([ALICE, BOB, CAROL], extensions={"202": {"dnd": True, "voicemail": False},
                                                           "203": {"forward_always": "202"}}))
        start = len(alice.events)
        alice.dial("203")  # 203 forwards always to 202, which is in DND: busy
        assert closed_after(alice, start).startswith("486")
    rows = sorted(cdr_rows(pbx, 4), key=lambda r: r["id"])
    assert [(r["dialled"], r["callee"], r["disposition"]) for r in rows] == [
        ("600", "203", "answered"), ("601", "201", "answered"), ("202", "203", "answered"), ("203", "", "busy")]
