"""WebRTC gateway benchmark (services/pbx/webrtc): CALLS concurrent browser legs bridged to plain RTP.

Each call is a scripted browser (a controlling ICE agent: authenticated STUN check with USE-CANDIDATE,
then a DTLS client handshake with its own certificate, keys exported for SRTP as RFC 5764 says; SRTP by
libsrtp2, the gateway's own library) and a plain RTP peer standing for the PBX's relay side. Measured:
ICE + DTLS set-up time per call (all calls started at once), then MEDIA_SECONDS of 20 ms G.711 both ways:
loss each way, and the CPU of the gateway process per call (its /proc figures, apart from this
generator's). Twice: browsers speaking G.711 (passed through, what real browsers negotiate here), then
browsers speaking Opus alone (the gateway transcodes Opus <-> G.711). Goal (issue 17): 25 concurrent
calls on the 2-core box.

    python -m bench webrtc
"""
from __future__ import annotations

import asyncio
import os
import secrets
import socket
import statistics
import struct
import time
from pathlib import Path

from OpenSSL import SSL

from services.pbx.webrtc import engine, stun
from services.pbx.webrtc.gateway import WebRtcGateway
from services.pbx.webrtc.opus import FRAME_SAMPLES, Opus
from services.pbx.webrtc.srtp import KEY_LEN, SALT_LEN, Srtp, SrtpError

CALLS = 25
MEDIA_SECONDS = 10.0
PORTS = (47000, 47999)  # away from the lab ranges the tests use
PAYLOAD = b"\xff" * 160  # 20 ms of PCMU silence
TICKS = os.sysconf("SC_CLK_TCK")


def _client_context() -> tuple[SSL.Context, str]:
    """A browser's DTLS client side: its own self-signed certificate, as the gateway makes its own."""
    cert, key, fingerprint = engine._certificate()
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    return ctx, fingerprint


class Browser:
    """One scripted browser leg and the plain RTP peer on the other side of the gateway."""

    def __init__(self, ctx: SSL.Context, info: dict, host: str, opus_pt: int | None = None,
                 keep: bool = False) -> None:
        self.info = info
        self.opus_pt = opus_pt  # the browser sends and expects Opus on this payload type (the gateway transcodes)
        self.keep = keep  # keep the payloads received on each side (tests look at them)
        self.heard: list[bytes] = []
        self.plain_heard: list[bytes] = []
        self.gateway_addr = (host, info["port"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.plain.bind(("127.0.0.1", 0))
        self.plain.setblocking(False)
        self.dtls = SSL.Connection(ctx, None)
        self.dtls.set_connect_state()
        self.ufrag = secrets.token_hex(4)
        self.started = time.monotonic()
        self.setup_s: float | None = None
        self.out: Srtp | None = None
        self.inb: Srtp | None = None
        self.seq = self.ts = 0
        self.ssrc = secrets.randbits(32)
        self.plain_seq = 0
        self.sent = self.received = self.plain_sent = self.plain_received = 0
        self.tid = secrets.token_bytes(12)

    def start(self) -> None:
        self.sock.sendto(stun.request(self.tid, f"{self.info['ufrag']}:{self.ufrag}", self.info["pwd"]),
                         self.gateway_addr)

    def readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            if stun.is_stun(data):
                self._handshake(b"")
            elif 20 <= data[0] <= 63:
                self._handshake(data)
            elif self.inb is not None:
                try:
                    rtp = self.inb.unprotect(data)
                    self.received += 1
                    if self.keep:
                        self.heard.append(rtp[12:])
                except SrtpError:
                    pass

    def _handshake(self, data: bytes) -> None:
        if self.out is not None:
            return
        try:
            if data:
                self.dtls.bio_write(data)
            self.dtls.do_handshake()
            material = self.dtls.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (KEY_LEN + SALT_LEN))
            keys, salts = material[:2 * KEY_LEN], material[2 * KEY_LEN:]
            self.out = Srtp(keys[:KEY_LEN], salts[:SALT_LEN], outbound=True)  # the DTLS client's keys
            self.inb = Srtp(keys[KEY_LEN:], salts[SALT_LEN:], outbound=False)
            self.setup_s = time.monotonic() - self.started
        except SSL.WantReadError:
            pass
        self._flush()

    def _flush(self) -> None:
        while True:
            try:
                self.sock.sendto(self.dtls.bio_read(4096), self.gateway_addr)
            except SSL.WantReadError:
                return

    def retransmit(self) -> None:
        if self.out is None:
            try:
                self.dtls.DTLSv1_handle_timeout()
            except SSL.Error:
                pass
            self._flush()

    def plain_readable(self) -> None:
        while True:
            try:
                rtp = self.plain.recv(4096)
                self.plain_received += 1
                if self.keep:
                    self.plain_heard.append(rtp[12:])
            except BlockingIOError:
                return

    def send_frame(self, browser_payload: bytes = PAYLOAD, plain_payload: bytes = PAYLOAD) -> None:
        """20 ms both ways: SRTP from the browser (PCMU, or Opus), PCMU RTP from the relay's side."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + (960 if self.opus_pt is not None else 160)) & 0xFFFFFFFF
        pt = self.opus_pt if self.opus_pt is not None else 0
        rtp = struct.pack("!BBHII", 0x80, pt, self.seq, self.ts, self.ssrc) + browser_payload
        self.sock.sendto(self.out.protect(rtp), self.gateway_addr)
        self.sent += 1
        plain = struct.pack("!BBHII", 0x80, 0, self.seq, (self.seq * 160) & 0xFFFFFFFF, self.ssrc) + plain_payload
        self.plain.sendto(plain, ("127.0.0.1", self.info["plain_port"]))
        self.plain_sent += 1

    def close(self) -> None:
        for s in (self.sock, self.plain):
            s.close()
        for srtp in (self.out, self.inb):
            if srtp is not None:
                srtp.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def connect(gateway: WebRtcGateway, calls: int, opus_pt: int | None = None, keep: bool = False,
                  host: str = "127.0.0.1") -> list[Browser]:
    """`calls` scripted browsers through `gateway` (started), all set up at once; those that got SRTP keys
    within 20 s have `out` set. Opus: the gateway is told to transcode, as for an Opus-only offer."""
    loop = asyncio.get_running_loop()
    ctx, fingerprint = _client_context()
    browsers: list[Browser] = []
    for n in range(calls):
        leg = await gateway._leg(f"bench-{n}", ("wss", host, 40000 + n))
        b = Browser(ctx, leg.info, host, opus_pt, keep)
        gateway._send({"op": "remote", "session": leg.id, "fingerprint": fingerprint})
        gateway._send({"op": "plain_peer", "session": leg.id, "ip": "127.0.0.1", "port": b.plain.getsockname()[1]})
        if opus_pt is not None:
            gateway._send({"op": "transcode", "session": leg.id, "opus_pt": opus_pt, "plain_pt": 0, "codec": "PCMU"})
        loop.add_reader(b.sock.fileno(), b.readable)
        loop.add_reader(b.plain.fileno(), b.plain_readable)
        browsers.append(b)
    started = time.monotonic()
    for b in browsers:
        b.started = time.monotonic()
        b.start()
    while any(b.out is None for b in browsers) and time.monotonic() - started < 20:
        await asyncio.sleep(0.05)
        for b in browsers:
            b.retransmit()
    await asyncio.sleep(0.3)  # the gateway has every session "up"
    return browsers


async def _drained(browsers: list[Browser], seconds: float = 3.0) -> None:
    """Until no more packets arrive on either side (at most `seconds`)."""
    deadline, last = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        now = sum(b.received + b.plain_received for b in browsers)
        if now == last:
            return
        last = now
        await asyncio.sleep(0.2)


def disconnect(browsers: list[Browser]) -> None:
    loop = asyncio.get_running_loop()
    for b in browsers:
        loop.remove_reader(b.sock.fileno())
        loop.remove_reader(b.plain.fileno())
        b.close()


async def _measure(calls: int, seconds: float, opus: bool) -> dict:
    gateway = WebRtcGateway(lambda ip: "127.0.0.1", "127.0.0.1", *PORTS)
    await gateway.start()
    browsers: list[Browser] = []
    try:
        browsers = await connect(gateway, calls, 111 if opus else None)
        ready = [b for b in browsers if b.out is not None]
        payload = PAYLOAD
        if opus:
            encoder = Opus()
            payload = encoder.encode(b"\0\1" * FRAME_SAMPLES)  # one 20 ms Opus packet, sent again and again
            encoder.close()
        pid = gateway._proc.pid
        cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
        next_tick = wall0
        while time.monotonic() - wall0 < seconds:
            for b in ready:
                b.send_frame(payload)
            next_tick += 0.02
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        wall = time.monotonic() - wall0
        await _drained(ready)  # what the gateway still had queued (a busy machine) is not loss
        cpu = _cpu_seconds(pid) - cpu0
        sent = sum(b.sent for b in ready)
        plain_sent = sum(b.plain_sent for b in ready)
        setups = sorted(1000 * b.setup_s for b in ready)
        return {
            "established": len(ready), "setup_median_ms": statistics.median(setups) if setups else float("nan"),
            "setup_max_ms": setups[-1] if setups else float("nan"),
            "loss_to_relay_pct": 100.0 * (sent - sum(b.plain_received for b in ready)) / sent if sent else float("nan"),
            "loss_to_browser_pct": 100.0 * (plain_sent - sum(b.received for b in ready)) / plain_sent
            if plain_sent else float("nan"),
            "cpu_pct": 100.0 * cpu / wall, "packets_per_s": (sent + plain_sent) / wall,
        }
    finally:
        disconnect(browsers)
        await gateway.close()


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": "webrtc", "metric": metric, "value": value, "unit": unit, "note": note}


def run() -> list[dict]:
    rows = []
    for opus in (False, True):
        m = asyncio.run(_measure(CALLS, MEDIA_SECONDS, opus))
        mode = "Opus<->G.711" if opus else "G.711"
        per_call = m["cpu_pct"] / m["established"] if m["established"] else float("nan")
        rows += [
            _row(f"{mode}: browser legs established (ICE-lite + DTLS-SRTP)", m["established"], "calls",
                 f"of {CALLS} started at once; goal 25 on the 2-core box"),
            _row(f"{mode}: set-up time, median (STUN check to SRTP keys)", m["setup_median_ms"], "ms",
                 f"slowest {m['setup_max_ms']:.0f} ms"),
            _row(f"{mode}: loss browser -> relay", m["loss_to_relay_pct"], "%", f"{MEDIA_SECONDS:g} s of 20 ms frames"),
            _row(f"{mode}: loss relay -> browser", m["loss_to_browser_pct"], "%"),
            _row(f"{mode}: gateway CPU, all calls", m["cpu_pct"], "% of a core",
                 f"{m['packets_per_s']:.0f} packets/s through it"),
            _row(f"{mode}: gateway CPU per call", per_call, "% of a core",
                 "transcoded each way (libopus, 8 kHz)" if opus else "payload passed through"),
        ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:<52} {row['value']:>10.3g} {row['unit']:<12} {row['note']}")
