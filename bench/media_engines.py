"""Media engines side by side, without SIP: CALLS relayed G.711 calls (20 ms RTP both ways for SECONDS)
through our media process (services/pbx/media, driven by RtpRelay) and, when it is installed, through
Debian's rtpengine in userspace (driven over its ng control protocol; no kernel forwarding module here).
The same sipload streams measure loss and jitter; the engine's own CPU is read from /proc.

    python -m bench.media_engines          # also called by bench_pbx.run()
"""
from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import time
from pathlib import Path

from bench.sipload import sip
from bench.sipload.rtp import Stream, pump
from services.pbx.relay import RtpRelay

CALLS = 200
SECONDS = 10.0
OURS_RANGE = (48000, 48999)
RTPENGINE_RANGE = (49000, 49999)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(pairs: list[tuple[Stream, Stream]], pid: int) -> dict:
    streams = [s for pair in pairs for s in pair]
    cpu0, t0 = _cpu(pid), time.monotonic()
    lateness = await pump(streams, SECONDS)
    await asyncio.sleep(1.0)
    cpu = 100.0 * (_cpu(pid) - cpu0) / (time.monotonic() - t0)
    sent = sum(s.sent for s in streams)
    lost = sum(max(0, a.sent - b.received) + max(0, b.sent - a.received) for a, b in pairs)
    jitters = [s.jitter_ms for s in streams if s.received > 1]
    return {"loss_pct": 100.0 * lost / sent if sent else float("nan"), "sent": sent, "cpu": cpu,
            "jitter_mean_ms": statistics.fmean(jitters) if jitters else float("nan"),
            "jitter_max_ms": max(jitters) if jitters else float("nan"), "lateness_ms": lateness}


async def ours() -> dict:
    relay = RtpRelay("127.0.0.1", *OURS_RANGE)
    await relay.start()
    pairs = []
    try:
        for _ in range(CALLS):
            a, b = await Stream.open(), await Stream.open()
            side_a, side_b = await relay.pair()
            side_a.set_peer("127.0.0.1", a.port, source="127.0.0.1")
            side_b.set_peer("127.0.0.1", b.port, source="127.0.0.1")
            a.remote, b.remote = ("127.0.0.1", side_a.port), ("127.0.0.1", side_b.port)
            pairs.append((a, b))
        await relay.ping()
        return await _measure(pairs, relay.pid)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        await relay.close()


# -- rtpengine's ng protocol: a cookie, a space, a bencoded dictionary, over UDP ------------------------
def bencode(value) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"


def bdecode(data: bytes, i: int = 0):
    """(value, next index); strings come back as str."""
    kind = data[i:i + 1]
    if kind == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if kind in (b"l", b"d"):
        items, i = [], i + 1
        while data[i:i + 1] != b"e":
            item, i = bdecode(data, i)
            items.append(item)
        return (dict(zip(items[::2], items[1::2], strict=True)) if kind == b"d" else items), i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n].decode(errors="replace"), colon + 1 + n


class Ng:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.addr = ("127.0.0.1", port)

    def __call__(self, **command) -> dict:
        cookie = secrets.token_hex(6).encode()
        self.sock.sendto(cookie + b" " + bencode(command), self.addr)
        while True:
            data = self.sock.recv(65536)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                if reply.get("result") not in ("ok", "pong"):
                    raise RuntimeError(f"rtpengine: {reply}")
                return reply


def _media_port(sdp_text: str) -> int:
    return int(re.search(r"^m=audio (\d+) ", sdp_text, re.MULTILINE).group(1))


async def rtpengine() -> dict | None:
    binary = shutil.which("rtpengine")
    if binary is None:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        ng_port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--foreground", "--log-stderr", "--log-level=3", "--table=-1", "--interface=127.0.0.1",
         f"--listen-ng=127.0.0.1:{ng_port}", f"--port-min={RTPENGINE_RANGE[0]}", f"--port-max={RTPENGINE_RANGE[1]}",
         "--num-threads=2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ng = Ng(ng_port)
    pairs = []
    try:
        for _ in range(50):
            try:
                ng(command="ping")
                break
            except OSError:
                await asyncio.sleep(0.1)
        for n in range(CALLS):
            a, b = await Stream.open(), await Stream.open()
            pairs.append((a, b))
            call = {"call-id": f"bench-{n}", "from-tag": f"a{n}"}
            offer = ng(command="offer", sdp=sip.sdp("127.0.0.1", a.port, 1), **call)
            answer = ng(command="answer", sdp=sip.sdp("127.0.0.1", b.port, 1), **{"to-tag": f"b{n}"}, **call)
            b.remote = ("127.0.0.1", _media_port(offer["sdp"]))   # B sends where the offer sent to B says
            a.remote = ("127.0.0.1", _media_port(answer["sdp"]))
        return await _measure(pairs, proc.pid)
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _row(engine: str, m: dict) -> list[dict]:
    note = (f"{CALLS} calls, {m['sent']} packets, jitter mean {m['jitter_mean_ms']:.2f} ms max"
            f" {m['jitter_max_ms']:.1f} ms, loss {m['loss_pct']:.3f} %, worst send lateness {m['lateness_ms']:.1f} ms")
    return [{"area": "pbx", "metric": f"media engine CPU, {engine}", "value": round(m["cpu"], 1), "unit": "%",
             "note": note}]


def run() -> list[dict]:
    rows = _row("ours (Python process)", asyncio.run(ours()))
    theirs = asyncio.run(rtpengine())
    if theirs is not None:
        rows += _row("rtpengine userspace (comparison)", theirs)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
