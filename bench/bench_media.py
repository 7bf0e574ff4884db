"""Media benchmark: N local endpoints of our media engine (services/pbx/media) each playing a file (hold
music, a greeting) and recording what its party sends (a voicemail) at once, for SECONDS, without SIP.

Each endpoint's party is a UDP socket of this process sending a 440 Hz G.711 tone every 20 ms (one
schedule for all, bench/sipload/rtp.py) and counting what the engine sends it. Measured per N:
  - engine CPU (its process, from /proc) in all and per endpoint;
  - outgoing frames late: the engine's count of frames it skipped (too far behind its grid) plus packets
    that reached the party (kernel receive time) more than LATE_MS behind their RTP timestamp's
    schedule, taken from the earliest packet;
  - outgoing frames missing: sequence numbers never received between a party's first and last packet
    (a party that received nothing counts SECONDS / 20 ms missing);
  - gaps in the recordings, measured from the WAV files: silent 20 ms frames inside the recorded tone.
The knee is the largest N whose late and missing frames stay under 0.1 %. The engine is one Python
process: on a machine loaded by other work its frames come late long before its own CPU runs out,
so read the late figures with the load average beside them (the note of the knee row gives it).

    python -m bench media          # via the bench runner (results under bench/results/)
    python -m bench.bench_media    # alone: prints the table, writes bench/results/media.md
"""
from __future__ import annotations

import array
import asyncio
import math
import os
import socket
import struct
import sys
import tempfile
import time
import wave
from pathlib import Path

from bench.sipload.rtp import CLOCK, HEADER, PTIME, SAMPLES, Stream, pump
from services.pbx.media.dsp import Codec
from services.pbx.relay import RtpRelay

COUNTS = (50, 100, 200)
SECONDS = 10.0
PORTS = (46000, 46999)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux
LATE_MS = 40.0  # a packet this much behind its schedule counts as late (two frames)
SILENT_RMS = 200.0
GOAL_PCT = 0.1
MODES = {True: "real-time", False: "normal scheduling"}  # the engine's policy, as it reported it


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tone_pcm(seconds: float, freq: float, rate: int = 8000) -> bytes:
    return array.array("h", (int(6000 * math.sin(2 * math.pi * freq * n / rate))
                             for n in range(int(seconds * rate)))).tobytes()


def _music(path: Path, seconds: float) -> Path:
    """A file to play: a slow sweep (stands for hold music or a long greeting)."""
    rate = 8000
    samples = array.array("h", (int(5000 * math.sin(2 * math.pi * (300 + 200 * math.sin(n / rate)) * n / rate))
                                for n in range(int(seconds * rate))))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


class Party(Stream):
    """Sends the same 20 ms tone frame (PCMU) on every tick; notes each packet's kernel arrival time
    (SO_TIMESTAMPNS: what this process's own loop delays do not change) against its RTP timestamp."""

    frame = b""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self._packet[HEADER.size:] = self.frame
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.transits: list[float] = []
        self._ts0: int | None = None
        self.seqs: set[int] = set()  # unwrapped sequence numbers received
        self._last_seq: int | None = None

    def _readable(self) -> None:
        while True:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self.datagram_received(data, None)
            stamp = next((struct.unpack("qq", d[:16]) for level, kind, d in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            if stamp is None or len(data) < HEADER.size or data[1] & 0x7F != 0:
                continue
            seq, ts = struct.unpack_from("!H", data, 2)[0], struct.unpack_from("!I", data, 4)[0]
            if self._last_seq is not None:
                seq = self._last_seq + ((seq - self._last_seq + 0x8000) & 0xFFFF) - 0x8000
            self._last_seq = seq
            self.seqs.add(seq)
            if self._ts0 is None:
                self._ts0 = ts
            self.transits.append(stamp[0] + stamp[1] / 1e9 - ((ts - self._ts0) & 0xFFFFFFFF) / CLOCK)

    @property
    def missing(self) -> int:
        """Sequence numbers never received between the first and the last one that came."""
        return max(self.seqs) - min(self.seqs) + 1 - len(self.seqs) if self.seqs else 0

    @property
    def late(self) -> int:
        """Packets more than LATE_MS behind the earliest one's schedule."""
        if not self.transits:
            return 0
        best = min(self.transits)
        return sum(1 for t in self.transits if (t - best) * 1000 > LATE_MS)


def _gaps(path: Path) -> tuple[int, int]:
    """(silent frames inside the recorded tone, frames of it) of one recording."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            pcm = array.array("h", w.readframes(w.getnframes()))
    except (OSError, EOFError, wave.Error):
        return 0, 0
    step = rate // 50
    loud = [math.sqrt(sum(v * v for v in pcm[i:i + step]) / step) >= SILENT_RMS
            for i in range(0, len(pcm) - step + 1, step)]
    if True not in loud:
        return 0, 0
    first, last = loud.index(True), len(loud) - 1 - loud[::-1].index(True)
    inside = loud[first:last + 1]
    return inside.count(False), len(inside)


async def _round(count: int, work: Path, music: Path, realtime: bool) -> dict:
    relay = RtpRelay("127.0.0.1", *PORTS, realtime=realtime)
    await relay.start()
    parties: list[Party] = []
    try:
        sides = []
        for _ in range(0, count, 50):
            sides += await relay.open(min(50, count - len(sides)))
        for n, side in enumerate(sides):
            party = Party()
            side.set_peer("127.0.0.1", party.port, source="127.0.0.1")
            side.terminate("PCMU", 0, 101)
            party.remote = ("127.0.0.1", side.port)
            parties.append(party)
            side.play(n + 1, file=str(music))
            side.record(n + 1, str(work / f"rec-{count}-{n}.wav"), SECONDS + 30, 0)
        scheduled = (await relay.ping()).get("realtime", False)
        cpu0, t0 = _cpu(relay.pid), time.monotonic()
        await pump(parties, SECONDS)
        elapsed = time.monotonic() - t0
        cpu = 100.0 * (_cpu(relay.pid) - cpu0) / elapsed
        for side in sides:
            side.stop("record")
        await asyncio.sleep(1.5)  # the last packets in, the local figures reported, the files closed
        engine_late = sum((s.local or {}).get("late", 0) for s in sides)  # skipped: never sent, no seq
        expected = engine_late + sum(max(p.seqs) - min(p.seqs) + 1 if p.seqs else int(elapsed / PTIME)
                                     for p in parties)
        gaps = [_gaps(work / f"rec-{count}-{n}.wav") for n in range(count)]
        return {"count": count, "cpu": cpu, "expected": expected, "realtime": scheduled,
                "missing": sum(p.missing if p.seqs else int(elapsed / PTIME) for p in parties),
                "late": engine_late + sum(p.late for p in parties),
                "gap_frames": sum(g for g, _ in gaps), "recorded_frames": sum(f for _, f in gaps),
                "empty_recordings": sum(1 for _, f in gaps if f == 0)}
    finally:
        for party in parties:
            party.close()
        await relay.close()


def _rows(result: dict) -> list[dict]:
    n, expected = result["count"], result["expected"] or 1
    note = f"{n} endpoints playing and recording, {SECONDS:.0f} s"
    mode = MODES[result["realtime"]]

    def row(metric: str, value: float, unit: str, extra: str = "") -> dict:
        return {"area": "media", "metric": f"{metric}, {n} endpoints, {mode}", "value": value, "unit": unit,
                "note": note + (f"; {extra}" if extra else "")}
    return [row("engine CPU", result["cpu"], "% of a core"),
            row("engine CPU per endpoint", result["cpu"] / n, "% of a core"),
            row("outgoing frames late", 100.0 * result["late"] / expected, "%",
                f"{result['late']} of {expected} (engine behind its grid or > {LATE_MS:.0f} ms at the party)"),
            row("outgoing frames missing", 100.0 * result["missing"] / expected, "%",
                f"{result['missing']} of {expected}"),
            row("recording gaps", 100.0 * result["gap_frames"] / max(1, result["recorded_frames"]), "%",
                f"{result['gap_frames']} silent 20 ms frames of {result['recorded_frames']} recorded; "
                f"{result['empty_recordings']} empty recordings")]


def run() -> list[dict]:
    """Each count with the engine real-time (as the box runs it) and, side by side in the same run, with
    normal scheduling (the reference: how it ran before, and how it runs without CAP_SYS_NICE)."""
    Party.frame = Codec("PCMU").encode(_tone_pcm(PTIME, 440.0))
    assert len(Party.frame) == SAMPLES
    rows, knees = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        work = Path(tmp)
        music = _music(work / "music.wav", SECONDS + 10)
        for realtime in (True, False):
            for count in COUNTS:
                result = asyncio.run(_round(count, work, music, realtime))
                rows += _rows(result)
                knees.setdefault(result["realtime"], 0)
                expected = result["expected"] or 1
                if 100.0 * max(result["late"], result["missing"]) / expected < GOAL_PCT:
                    knees[result["realtime"]] = count
                for path in work.glob(f"rec-{count}-*.wav"):
                    path.unlink()
    load = os.getloadavg()[0]
    for scheduled, knee in knees.items():
        rows.append({"area": "media", "metric": f"knee (late and missing < 0.1 %), {MODES[scheduled]}",
                     "value": knee, "unit": "endpoints",
                     "note": f"largest of {', '.join(map(str, COUNTS))} endpoints tried (each plays and records); "
                             f"load average {load:.1f} on {os.cpu_count()} CPUs"})
    return rows


if __name__ == "__main__":
    from bench.__main__ import RESULTS, render_text
    found = run()
    text = render_text(found)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "media.md").write_text("```\n" + text + "\n```\n")
    sys.exit(0)
