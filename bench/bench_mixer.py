"""Conference mixer benchmark (issue 14): services/pbx/media/mixer.py.

1. Mixing CPU per participant, in this process: Room.mix() of a 5-member room (all G.711, then with
   one G.722 member: the room mixes at 16 kHz) timed over many frames; the figure is the share of one
   core a participant costs for mixing alone (sums, its own voice taken out, rate conversion).
2. ROOMS rooms of MEMBERS participants at once through the real media engine process (started and
   driven by services/pbx/relay.RtpRelay as the PBX does): each participant is a UDP socket here that
   sends its own tone as 20 ms G.711 packets and receives what the room mixes for it, for SECONDS.
   Continuity from what each participant receives: missing frames (sequence numbers never received),
   and silent frames (received, but without the others' voices: the mixer had nothing from them that
   frame); the engine's CPU from /proc; the engine's own count of input frames it missed.

Goal (issue 14): 50 participants on the 2-core machine with no missing 20 ms frames.

    .venv/bin/python -m bench mixer
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from pathlib import Path

from services.pbx.media import dsp, mixer
from services.pbx.relay import RtpRelay

ROOMS = 10
MEMBERS = 5
SECONDS = 20.0
PORTS = (47000, 47499)
SILENT_RMS = 300  # a received frame quieter than this carries none of the others' tones (each is 6000 peak)
WARM_UP = 1.0  # seconds after the start that are not counted (joins, first packets)


class _Term:
    """What a mixer member needs of a local endpoint: its codec's rate."""

    def __init__(self, rate: int) -> None:
        self.codec = type("C", (), {"rate": rate})()
        self.member = None


def mixing_cpu(rates: list[int], frames: int = 3000) -> float:
    """Microseconds of CPU per participant per 20 ms frame for Room.mix() with members at `rates`."""
    room = mixer.Room("bench", 0.0)
    members = []
    for i, rate in enumerate(rates):
        m = mixer.Member(_Term(rate), room, False)
        room.members[i] = m
        members.append((m, dsp.ToneSource([300 + 200 * i], rate, 3600, amplitude=6000)))
    samples = {rate: int(rate * dsp.FRAME) for rate in rates}
    inputs = [[src.read(samples[m.term.codec.rate]) for _ in range(50)] for m, src in members]
    t0 = time.process_time()
    for n in range(frames):
        for (m, _), frames_in in zip(members, inputs, strict=True):
            m.received(frames_in[n % 50])
        room.mix()
        for m, _ in members:
            m.outgoing()
    return 1e6 * (time.process_time() - t0) / frames / len(rates)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Participant:
    def __init__(self, side, freq: float) -> None:
        self.side = side
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        tone = dsp.ToneSource([freq], 8000, 3600, amplitude=6000)
        self.payloads = [dsp.Codec("PCMU").encode(tone.read(160)) for _ in range(50)]  # one second, repeated
        self.seq = 0
        self.seqs: set[int] = set()
        self.silent = 0
        self.received = 0
        self.counting = False
        self.first: int | None = None

    def send(self) -> None:
        self.seq += 1
        header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, (160 * self.seq) & 0xFFFFFFFF, 0x5151)
        try:
            self.sock.sendto(header + self.payloads[self.seq % 50], ("127.0.0.1", self.side.port))
        except OSError:
            pass

    def readable(self) -> None:
        for _ in range(32):
            try:
                data = self.sock.recv(2048)
            except OSError:
                return
            if len(data) <= 12 or data[1] & 0x7F != 0 or not self.counting:
                continue
            seq = struct.unpack_from("!H", data, 2)[0]
            self.received += 1
            self.seqs.add(seq)
            if self.first is None:
                self.first = seq
            if _rms(dsp.Codec("PCMU").decode(data[12:])) < SILENT_RMS:
                self.silent += 1


def _rms(pcm: bytes) -> float:
    return dsp.audioop.rms(pcm, 2)


def _missing(p: Participant) -> int:
    """Sequence numbers between the first and the last received that never came."""
    if p.first is None:
        return 0
    offsets = {(seq - p.first) % 65536 for seq in p.seqs}  # 20 s are far fewer than 65536 frames
    return max(offsets) + 1 - len(offsets)


async def rooms_through_engine() -> dict:
    relay = RtpRelay("127.0.0.1", *PORTS)
    await relay.start()
    loop = asyncio.get_running_loop()
    parties: list[Participant] = []
    try:
        sides = await relay.open(ROOMS * MEMBERS)
        for i, side in enumerate(sides):
            p = Participant(side, 300 + 150 * (i % MEMBERS))
            side.set_peer("127.0.0.1", p.sock.getsockname()[1], 8000)
            side.terminate("PCMU", 0, None, send=True, inband=False)
            relay.send({"op": "conf_join", "side": side.id, "room": f"room{i // MEMBERS}"})
            loop.add_reader(p.sock.fileno(), p.readable)
            parties.append(p)
        start = time.monotonic()
        cpu0 = None
        late = 0.0
        stalls = 0  # send ticks later than PRIME frames: the others' voices cannot all be there in time
        n = 0
        while time.monotonic() - start < SECONDS + WARM_UP:
            n += 1
            due = start + n * dsp.FRAME
            now = time.monotonic()
            late = max(late, now - due) if n > 5 else late
            stalls += cpu0 is not None and now - due > mixer.PRIME * dsp.FRAME
            if cpu0 is None and now - start >= WARM_UP:
                cpu0, t0 = _cpu(relay.pid), now
                for p in parties:
                    p.counting = True
            for p in parties:
                p.send()
            await asyncio.sleep(max(0.0, start + (n + 1) * dsp.FRAME - time.monotonic()))
        elapsed = time.monotonic() - t0
        cpu = 100.0 * (_cpu(relay.pid) - cpu0) / elapsed
        await asyncio.sleep(0.2)
        stats = (await relay._request({"op": "conf_stats"}))["rooms"]
    finally:
        for p in parties:
            loop.remove_reader(p.sock.fileno())
            p.sock.close()
        await relay.close()
    expected = int(elapsed / dsp.FRAME)
    missing = [_missing(p) for p in parties]
    short = [max(0, expected - 2 - len(p.seqs)) for p in parties]  # frames short of what was due (2: edges)
    return {"cpu": cpu, "expected": expected, "missing_total": sum(missing), "missing_worst": max(missing),
            "short_total": sum(short),
            "silent_total": sum(p.silent for p in parties), "silent_worst": max(p.silent for p in parties),
            "received": sum(p.received for p in parties), "sender_late_ms": 1000 * late, "stalls": stalls,
            "engine_missed_inputs": sum(row[3] for rows in stats.values() for row in rows),
            "engine_dropped_inputs": sum(row[4] for rows in stats.values() for row in rows)}


def run() -> list[dict]:
    rows = []
    narrow = mixing_cpu([8000] * MEMBERS)
    wide = mixing_cpu([16000] + [8000] * (MEMBERS - 1))
    for metric, us in (("mixing CPU per participant (5 G.711)", narrow),
                       ("mixing CPU per participant (1 G.722 + 4 G.711, 16 kHz)", wide)):
        rows.append({"area": "mixer", "metric": metric, "value": round(100 * us / 20000, 3), "unit": "% of a core",
                     "note": f"{us:.1f} us per 20 ms frame; Room.mix() alone, in-process"})
    load = os.getloadavg()[0]
    r = asyncio.run(rooms_through_engine())
    n = ROOMS * MEMBERS
    note = f"{ROOMS} rooms x {MEMBERS}, {SECONDS:.0f} s, G.711; host load average before {load:.1f}"
    rows += [
        {"area": "mixer", "metric": f"engine CPU, {n} participants", "value": round(r["cpu"], 1), "unit": "%",
         "note": f"{r['cpu'] / n:.2f} % per participant (RTP in and out, decode, mix, encode); {note}"},
        {"area": "mixer", "metric": "missing 20 ms frames received", "value": r["missing_total"], "unit": "frames",
         "note": f"worst participant {r['missing_worst']} of {r['expected']}; goal 0"},
        {"area": "mixer", "metric": "silent frames received (others' voices absent)", "value": r["silent_total"],
         "unit": "frames", "note": f"worst participant {r['silent_worst']}; the engine missed "
         f"{r['engine_missed_inputs']} input frames and dropped {r['engine_dropped_inputs']} (queue full); "
         f"the sender here was late by more than {mixer.PRIME * 20} ms on {r['stalls']} of its ticks (worst "
         f"{r['sender_late_ms']:.1f} ms): its {MEMBERS - 1} voices missing for each of those"},
        {"area": "mixer", "metric": "frames received in all", "value": r["received"], "unit": "frames",
         "note": f"{n} x {r['expected']} due; {r['short_total']} short of that beyond the window's edges"},
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
