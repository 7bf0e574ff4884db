"""Auto attendant sessions in parallel (issue 14): the real PBX service in its own process (bench_pbx.
PbxProcess) with an attendant of two menus whose greetings are typed texts (spoken by espeak-ng once,
then cached); CALLERS sipload callers dial it at once. Each caller sends 20 ms G.711 and hears the main
greeting, keys 1 (RFC 4733) after KEY_AT[0] s to reach the second menu, keys # after KEY_AT[1] s (its
"hang up" option: goodbye, then the PBX's BYE). A session counts when the PBX hangs up within
SESSION_LIMIT s and the caller received the greetings' audio. Figures: sessions completed, their
length, and sessions per CPU second of the PBX's signalling process and of its media engine. Warm-up
sessions first, until one completes: a fresh box makes its prompts and the greetings' speech with
espeak-ng (about 30 s), so the run measures sessions, not espeak-ng.

    .venv/bin/python -m bench attendant
"""
from __future__ import annotations

import asyncio
import statistics
import struct
import time
from collections import Counter

from bench.bench_pbx import PbxProcess
from bench.sipload import scenarios, sip
from bench.sipload.endpoint import Endpoint, Failed
from bench.sipload.rtp import HEADER, SAMPLES, Stream

CALLERS = 40
KEY_AT = (2.5, 5.0)  # seconds after the answer: key 1, then key #
SESSION_LIMIT = 15.0
EVENT_PT = 101
WARM_UP_TRIES = 8
ARRIVAL = 0.05  # seconds between two callers' INVITEs: all of them are in the menus at once, and a
# burst of 40 INVITEs in one instant would meet the PBX's overload shedding (503) instead
ATTENDANT = {"name": "bench", "timeout": 5, "attempts": 2, "menus": [
    {"name": "main", "greeting_text": "Welcome to the benchmark company. For sales, press one.",
     "options": [{"key": "1", "action": "menu", "target": "sales"}]},  # "#" hangs up in "sales" only
    {"name": "sales", "greeting_text": "Sales. To leave, press the hash key.",
     "options": [{"key": "#", "action": "hangup"}]}]}


def _users(n: int) -> list[dict]:
    return [{"login": f"caller{i:03d}", "full_name": f"Caller {i}", "extension": f"2{i:03d}",
             "sip_secret": f"callersecret{i:03d}"} for i in range(n)]


class Session:
    def __init__(self, ep: Endpoint, target: scenarios.Target, user: str, password: str) -> None:
        self.call = scenarios.Caller(ep, target, user, password, "800")
        self.ended = asyncio.get_running_loop().create_future()
        self.stream: Stream | None = None
        self.seconds = float("nan")
        self.ok = False

    def _key(self, k: int, event: int, n: int) -> None:
        """Packet `n` (0-2) of a key sent in place of audio packet k; the last one ends the event."""
        s = self.stream
        began = k - n
        payload = struct.pack("!BBH", event, 0x8A if n == 2 else 0x0A, SAMPLES * (n + 1))
        packet = HEADER.pack(0x80, (0x80 if n == 0 else 0) | EVENT_PT, (s.seq0 + k) & 0xFFFF,
                             (s.ts0 + began * SAMPLES) & 0xFFFFFFFF, s.ssrc) + payload
        try:
            s.sock.sendto(packet, s.remote)
        except OSError:
            pass
        s.sent += 1

    async def run(self, delay: float = 0.0) -> str:
        """"" once done, else why not."""
        await asyncio.sleep(delay)
        self.stream = await Stream.open()
        try:
            self.call.ep.dialogs[self.call.call_id] = {}  # the PBX's BYE is answered and reported
            await self.call.invite(sip.sdp("127.0.0.1", self.stream.port, 1))
            self.stream.remote = sip.sdp_media_address(self.call.answer.body)
            started = time.monotonic()
            keys = {int(at / 0.02) + n: (event, n) for at, event in zip(KEY_AT, (1, 11), strict=True)
                    for n in range(3)}
            for k in range(int(SESSION_LIMIT / 0.02)):
                if self.ended.done():
                    break
                if k in keys:
                    self._key(k, *keys[k])
                else:
                    self.stream.tick(k)
                await asyncio.sleep(max(0.0, started + (k + 1) * 0.02 - time.monotonic()))
            if not self.ended.done():
                await self.call.bye()
                return "no hangup by the attendant"
            self.seconds = time.monotonic() - started
            return "" if self.stream.received > 100 else "no greeting heard"
        except Failed as exc:
            return str(exc)
        finally:
            self.stream.close()


async def _sessions(pbx: PbxProcess, users: list[dict]) -> tuple[list[Session], Counter]:
    target = scenarios.Target(("127.0.0.1", pbx.port), "127.0.0.1", [(u["extension"], u["sip_secret"]) for u in users],
                              [])
    ep = await Endpoint.open(server=target.server, timeout=10.0)
    sessions = [Session(ep, target, ext, secret) for ext, secret in target.callers]
    by_call = {s.call.call_id: s for s in sessions}
    ep.on_bye = lambda call_id: by_call[call_id].ended.done() or by_call[call_id].ended.set_result(True)
    try:
        outcomes = await asyncio.gather(*(s.run(n * ARRIVAL) for n, s in enumerate(sessions)))
    finally:
        ep.close()
    for s, outcome in zip(sessions, outcomes, strict=True):
        s.ok = not outcome
    return sessions, Counter(o for o in outcomes if o)


def run() -> list[dict]:
    users = _users(CALLERS + 1)
    pbx = PbxProcess(users, application_numbers={"800": "attendant:bench"}, attendants=[ATTENDANT])
    try:
        for _ in range(WARM_UP_TRIES):  # until the prompts and the speech are made (espeak-ng, ~30 s)
            _warm, failed = asyncio.run(_sessions(pbx, users[-1:]))
            if not failed:
                break
        if failed:
            raise RuntimeError(f"the warm-up session failed: {dict(failed)}; {pbx.log_tail()}")
        cpu0, engine0, t0 = pbx.cpu_seconds(), pbx.engine_cpu_seconds(), time.monotonic()
        sessions, failed = asyncio.run(_sessions(pbx, users[:-1]))
        wall = time.monotonic() - t0
        cpu, engine = pbx.cpu_seconds() - cpu0, pbx.engine_cpu_seconds() - engine0
    finally:
        pbx.close()
    done = [s.seconds for s in sessions if s.ok]
    note = (f"{CALLERS} callers at once (one every {ARRIVAL * 1000:.0f} ms), 2 menus, keys 1 then #; "
            f"wall {wall:.1f} s; PBX {cpu:.2f} CPU s, "
            f"engine {engine:.2f} CPU s" + (f"; failures {dict(failed)}" if failed else ""))
    per_cpu = len(done) / (cpu + engine) if cpu + engine else float("nan")
    return [{"metric": "sessions completed", "value": len(done), "unit": f"of {CALLERS}", "note": note},
            {"metric": "sessions per CPU second (PBX + engine)", "value": round(per_cpu, 2), "unit": "1/s",
             "note": note},
            {"metric": "PBX signalling CPU per session", "value": round(1000 * cpu / max(1, len(done)), 1),
             "unit": "ms", "note": "the PBX process (SIP, attendant, prompts)"},
            {"metric": "media engine CPU per session", "value": round(1000 * engine / max(1, len(done)), 1),
             "unit": "ms", "note": "the media engine process (greetings played, keys)"},
            {"metric": "session length p50", "value": round(statistics.median(done), 2) if done else float("nan"),
             "unit": "s", "note": f"answer to the PBX's BYE; keys at {KEY_AT[0]} s and {KEY_AT[1]} s"}]


if __name__ == "__main__":
    from bench.__main__ import main
    raise SystemExit(main(["attendant"]))
