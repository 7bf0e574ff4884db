"""Call events on the appliance bus (events.py) in order, for a blind transfer between baresip phones
and an attended transfer (scripted transferor, baresip parties)."""
import time
from contextlib import ExitStack

import pytest

from appliance.bus import appliance_bus

from .baresip import have_baresip
from .conftest import run
from .test_attended_transfer import attended_transfer, bob_and_carol
from .test_calls import phones

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


class Recorder:
    def __init__(self, pbx) -> None:
        self.seen = []
        self.bus = appliance_bus(pbx.ctx)
        self.off = self.bus.subscribe("pbx.", lambda e: self.seen.append((e.topic, e.key, e.data)))

    def calls(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for topic, key, data in self.seen:
            if topic == "pbx.call" and data is not None:
                out.setdefault(key, []).append(data["event"])
        return out

    def device(self, ext: str) -> list[tuple[str, str]]:
        return [(d["call"], d["dialog"]) for t, k, d in self.seen if t == "pbx.device" and k == ext]

    def wait_cleared(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while sum(ev[-1:] == ["cleared"] for ev in self.calls().values()) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def seqs_increase(self) -> bool:
        seqs = [d["seq"] for t, _, d in self.seen if d is not None and t in ("pbx.call", "pbx.device")]
        return seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_blind_transfer_events(pbx):
    rec = Recorder(pbx)
    with ExitStack() as stack:
        alice, bob, carol = phones(stack, pbx, "201", "202", "203")
        alice.dial("202")
        bob.answer()
        alice.wait_for("CALL_ESTABLISHED")
        bob.transfer("203")
        carol.answer()
        carol.wait_for("CALL_ESTABLISHED")
        bob.wait_for("CALL_CLOSED")
        carol.hangup()
        alice.wait_for("CALL_CLOSED")
        rec.wait_cleared(1)
    rec.off()
    [(call_id, events)] = rec.calls().items()
    assert events == ["initiated", "alerting", "connected", "transferred", "cleared"]
    assert rec.device("201") == [(call_id, s) for s in ("trying", "early", "confirmed", "confirmed", "terminated")]
    assert rec.device("202") == [(call_id, s) for s in ("early", "confirmed", "terminated")]
    assert rec.device("203") == [(call_id, s) for s in ("early", "confirmed", "terminated")]
    assert rec.seqs_increase()
    records = [(d["caller"], d["callee"], d["disposition"]) for t, _, d in rec.seen if t == "pbx.cdr"]
    assert records == [("201", "202", "transferred"), ("201", "203", "answered")]  # what the CDR store writes
    assert rec.bus.retained("pbx.call") == {}
    assert all(d["calls"] == [] for d in rec.bus.retained("pbx.device").values())


def test_attended_transfer_events(pbx):
    rec = Recorder(pbx)
    with ExitStack() as stack:
        bob, carol = bob_and_carol(stack, pbx)
        byes, _, call1, call2 = run(attended_transfer(pbx, bob, carol))
        assert byes == {call1, call2}
        carol.hangup()
        bob.wait_for("CALL_CLOSED")
        rec.wait_cleared(2)
    rec.off()
    calls = rec.calls()
    first, second = list(calls)  # in the order they started
    assert calls[first] == ["initiated", "alerting", "connected", "transferred", "cleared"]
    assert calls[second] == ["initiated", "alerting", "connected", "cleared"]
    assert rec.device("202") == [(first, s) for s in ("early", "confirmed", "confirmed", "terminated")]
    assert rec.device("203") == [(second, "early"), (second, "confirmed"), (second, "terminated"),
                                 (first, "confirmed"), (first, "terminated")]
    transferor = rec.device("201")
    assert transferor[-1][1] == "terminated" and {c for c, _ in transferor} == {first, second}
    assert rec.seqs_increase()
    assert rec.bus.retained("pbx.call") == {}
