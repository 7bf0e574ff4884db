"""In-call feature codes in the media engine (media/tap.py key_codes) with UDP parties on loopback: the
keys of a code never reach the other party and the PBX hears of the code; a key that begins a code waits
for the next one and then passes in order; the numbering the other party sees has no gap."""
import asyncio
import struct

from .conftest import run
from .test_media_engine import until
from .test_recording_engine import Call, _relay


def _keys(*spec: tuple[int, int]) -> dict[int, tuple[int, int]]:
    """(event, first frame): each key in 3 packets of one timestamp."""
    return {frame + n: (event, frame) for event, frame in spec for n in range(3)}


def test_the_keys_of_a_code_are_swallowed_and_other_keys_pass_in_order():
    async def main():
        relay = _relay()
        await relay.start()
        try:
            call = await Call(relay).open()
            codes: list[str] = []
            call.a.watch_codes(["*70", "*1"], 101, 2.0, codes.append)
            await asyncio.sleep(0.1)
            # "5", then "*" "9" (begins a code, then is none), then "*" "7" "0"
            await call.talk(1.4, keys=_keys((5, 5), (10, 10), (9, 20), (10, 35), (7, 45), (0, 55)))
            await until(lambda: codes, 2, "the code")
            call.close()
            return call, codes
        finally:
            await relay.close()
    call, codes = run(main())
    assert codes == ["*70"]
    events = [p for p in call.received_b if p[1] & 0x7F == 101]
    assert [p[12] for p in events] == [5] * 3 + [10] * 3 + [9] * 3, "keys passed out of order, or a code's keys passed"
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in call.received_b]
    assert all(b - a == 1 for a, b in zip(seqs, seqs[1:], strict=False)), "the other party sees a gap"
    assert len(call.received_b) == 70 - 9, "packets other than the code's keys went missing"


def test_a_lone_key_that_begins_a_code_passes_after_the_gap():
    async def main():
        relay = _relay()
        await relay.start()
        try:
            call = await Call(relay).open()
            call.a.watch_codes(["*70"], 101, 0.4, lambda code: None)
            await asyncio.sleep(0.1)
            await call.talk(0.3, keys=_keys((10, 2)))
            early = [p for p in call.received_b if p[1] & 0x7F == 101]
            await call.talk(0.8)
            call.close()
            return early, [p for p in call.received_b if p[1] & 0x7F == 101]
        finally:
            await relay.close()
    early, late = run(main())
    assert early == [] and [p[12] for p in late] == [10] * 3
