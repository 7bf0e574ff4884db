"""Pure parts: dial plan, SDP offer/answer, relay statistics, call records (digest: test_auth_digest.py)."""
import struct
import time

import pytest

from services.pbx import dialplan
from services.pbx.cdr import CallRecord, CdrStore
from services.pbx.config import PbxConfig
from services.pbx.media.engine import Stats
from services.pbx.sdp import Sdp, SdpError, answer, filter_offer, is_hold

CFG = PbxConfig(local_prefixes=["01"], groups=[{"number": "600", "members": []}],
                trunks=[{"name": "op", "host": "192.0.2.5", "number_format": "e164"}, {"name": "op2", "host": "x.y"}],
                routes=[{"name": "all", "prefix": "0", "trunks": ["op", "op2"]},
                        {"name": "intl", "prefix": "00", "strip": 2, "prepend": "+", "trunks": ["op2"]}],
                dids=[{"number": "+33198765432", "destination": "201"}])


@pytest.mark.parametrize("number,kind,category", [
    ("201", "extension", "internal"), ("600", "group", "internal"), ("112", "emergency", "emergency"),
    ("0123456789", "external", "local"), ("0612345678", "external", "national"),
    ("+33612345678", "external", "national"), ("0033612345678", "external", "national"),
    ("004930123456", "external", "international"), ("+4930123456", "external", "international"),
    ("06 12 34 56 78", "external", "national"), ("20a", "invalid", "invalid"), ("", "invalid", "invalid"),
])
def test_classify(number, kind, category):
    dest = dialplan.classify(number, CFG, {"201", "202"})
    assert (dest.kind, dest.category) == (kind, category)


def test_permissions_and_routes():
    national = dialplan.classify("0612345678", CFG, set())
    intl = dialplan.classify("004930123456", CFG, set())
    emergency = dialplan.classify("112", CFG, set())
    assert not dialplan.permitted("internal", national) and dialplan.permitted("internal", emergency)
    assert dialplan.permitted("national", national) and not dialplan.permitted("national", intl)
    assert dialplan.permitted("international", intl)
    assert dialplan.select_route("004930123456", CFG).name == "intl"  # longest prefix
    assert dialplan.select_route("0612345678", CFG).name == "all"
    assert dialplan.select_route("3949", CFG) is None
    op, op2 = CFG.trunks
    assert dialplan.number_for_trunk("0612345678", CFG.routes[0], op, CFG, False) == "+33612345678"
    assert dialplan.number_for_trunk("0612345678", CFG.routes[0], op2, CFG, False) == "0612345678"
    assert dialplan.number_for_trunk("004930123456", CFG.routes[1], op2, CFG, False) == "+4930123456"
    assert dialplan.number_for_trunk("112", CFG.routes[0], op, CFG, True) == "112"


def test_inbound_numbers():
    for called in ("+33198765432", "0198765432", "0033198765432", "+33 1 98 76 54 32"):
        assert dialplan.match_did(called, CFG) == "201"
    assert dialplan.match_did("0198765433", CFG) is None
    assert dialplan.display_number("+33612345678", CFG) == "0612345678"
    assert dialplan.display_number("+4930123456", CFG) == "004930123456"


OFFER = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 18 9 0 8 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-16\r\na=rtcp:4001\r\na=ptime:20\r\na=sendrecv\r\nm=video 5000 RTP/AVP 96\r\n")


def test_sdp_offer_answer():
    offer = filter_offer(Sdp.parse(OFFER), ["PCMU", "PCMA", "G722"])
    audio = offer.audio()
    assert audio.formats == [9, 0, 8, 101] and offer.media[1].port == 0  # G729 dropped, video refused
    assert audio.other == ["ptime:20"]  # a=rtcp pointed at the phone: dropped
    ans = answer(offer, ["PCMA", "PCMU"], "198.51.100.1", 30000)
    m = ans.audio()
    assert m.formats == [0, 101] and m.port == 30000 and ans.connection == "198.51.100.1"
    assert len(ans.media) == 2 and ans.media[1].port == 0
    again = Sdp.parse(ans.to_bytes())
    assert again.audio().codec(101) == "TELEPHONE-EVENT" and again.audio().fmtp[101] == "0-16"
    held = Sdp.parse(OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    assert is_hold(held) and answer(held, ["G722"], "h", 1).audio().direction == "recvonly"
    assert is_hold(Sdp.parse(OFFER.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0")))
    with pytest.raises(SdpError):
        filter_offer(Sdp.parse(OFFER.replace(b"18 9 0 8 101", b"18 101")), ["PCMU"])
    for bad in (b"garbage", b"v=0\r\nc=IN IP6 ::1\r\n", b"v=0\r\nm=audio x RTP/AVP 0\r\n", b"o=only\r\n"):
        with pytest.raises(SdpError):
            Sdp.parse(bad)


def _rtp(seq: int, ts: int, ssrc: int = 7) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160


def test_relay_stats_loss_wrap_and_jitter():
    stats = Stats()
    seqs = [s for s in range(65500, 65500 + 100) if s not in (65530, 65540, 65541)]  # wraps past 65535
    for seq in seqs:
        stats.rtp(_rtp(seq, seq * 160), 8000)
    summary = stats.summary(8000)
    assert summary["packets"] == 97 and summary["lost"] == 3 and summary["loss_pct"] == pytest.approx(3.0, 0.01)
    assert summary["jitter_ms"] >= 0
    stats.rtp(b"\x00junk", 8000)  # not RTP: counted, no crash
    assert stats.summary(8000)["packets"] == 98


def test_cdr_store_query_and_csv(tmp_path):
    store = CdrStore(tmp_path / "cdr.sqlite")
    now = time.time()
    store.add(CallRecord("a", "internal", "201", "Alice", "202", "202", start=now - 100, answer=now - 90, end=now - 30,
                         disposition="answered", status=200))
    store.add(CallRecord("b", "outbound", "202", "=HYPERLINK(1)", "0612345678", "", "op", start=now - 20,
                         end=now - 10, disposition="busy", status=486))
    store.flush()  # the writer thread opens the file
    assert (tmp_path / "cdr.sqlite").stat().st_mode & 0o777 == 0o600
    assert [r["call_id"] for r in store.query()] == ["b", "a"]
    assert [r["call_id"] for r in store.query(party="202", disposition="answered")] == ["a"]
    assert [r["call_id"] for r in store.query(since=now - 50)] == ["b"]
    assert store.query(trunk="op")[0]["billsec"] == 0 and store.query(direction="internal")[0]["billsec"] == 60
    text = store.csv(direction="outbound")
    lines = text.strip().splitlines()
    assert lines[0].startswith("id,call_id,direction") and len(lines) == 2
    assert "'=HYPERLINK(1)" in lines[1]  # spreadsheet formula neutralised
