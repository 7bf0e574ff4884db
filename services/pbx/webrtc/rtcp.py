"""The gateway's own RTCP toward a browser whose leg it transcodes (Opus): the far side's reports speak of
packets the browser never saw (renumbered, another clock), so the gateway reports itself (RFC 3550) about
the two streams it has with the browser: a sender report for the Opus it sends (its SSRC, packet and octet
counts, the NTP/RTP time pair) with one report block for the browser's stream (losses, highest sequence
number, interarrival jitter, and LSR/DLSR from the browser's last sender report, for its round-trip time),
then an SDES CNAME, as every compound packet needs. Pure functions of what it was told: no sockets.
"""
from __future__ import annotations

import secrets
import struct
import time

NTP_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
SR, SDES = 200, 202


def _ntp(wall: float) -> tuple[int, int]:
    seconds = int(wall) + NTP_OFFSET
    return seconds & 0xFFFFFFFF, int((wall % 1) * (1 << 32)) & 0xFFFFFFFF


class Reports:
    def __init__(self, clock: int = 48000, cname: str = "") -> None:
        self.clock = clock  # RTP clock of both streams with the browser (Opus: 48 kHz)
        self.cname = (cname or f"officebox-{secrets.token_hex(4)}").encode()[:255]
        self.ssrc_out: int | None = None  # what we send to the browser
        self.packets = self.octets = 0
        self.last_ts = 0
        self.last_ts_at = 0.0
        self.ssrc_in: int | None = None  # the browser's stream
        self.base = self.highest = 0  # extended sequence numbers
        self.received = 0
        self.expected_prior = self.received_prior = 0
        self.jitter = 0.0
        self.transit: float | None = None
        self.lsr = 0  # middle 32 bits of the NTP time of the browser's last SR, and when it came
        self.lsr_at = 0.0

    def sent(self, rtp: bytes, now: float) -> None:
        """An RTP packet (header of 12 bytes) that went to the browser."""
        self.ssrc_out = struct.unpack_from("!I", rtp, 8)[0]
        self.last_ts, self.last_ts_at = struct.unpack_from("!I", rtp, 4)[0], now
        self.packets = (self.packets + 1) & 0xFFFFFFFF
        self.octets = (self.octets + len(rtp) - 12) & 0xFFFFFFFF

    def arrived(self, rtp: bytes, now: float) -> None:
        """An RTP packet from the browser (unprotected)."""
        seq, ts, ssrc = struct.unpack_from("!HII", rtp, 2)
        if ssrc != self.ssrc_in:  # first packet, or the browser changed its stream: start over
            self.ssrc_in, self.base, self.highest, self.received = ssrc, seq, seq, 0
            self.expected_prior = self.received_prior = 0
            self.jitter, self.transit = 0.0, None
        else:
            cycle = self.highest & ~0xFFFF
            candidate = cycle | seq
            if candidate < self.highest - 0x8000:  # wrapped
                candidate += 0x10000
            elif candidate > self.highest + 0x8000:  # a late packet from before a wrap
                candidate -= 0x10000
            self.highest = max(self.highest, candidate)
        self.received += 1
        transit = now * self.clock - ts
        if self.transit is not None:
            self.jitter += (abs(transit - self.transit) - self.jitter) / 16
        self.transit = transit

    def browser_report(self, rtcp: bytes, now: float) -> None:
        """The browser's compound RTCP (unprotected): its sender report's time, for LSR and DLSR."""
        if len(rtcp) >= 20 and rtcp[1] == SR:
            self.lsr, self.lsr_at = struct.unpack_from("!I", rtcp, 10)[0], now

    def _block(self, now: float) -> bytes:
        expected = self.highest - self.base + 1
        lost = max(0, min(expected - self.received, 0x7FFFFF))
        interval_expected = expected - self.expected_prior
        interval_lost = interval_expected - (self.received - self.received_prior)
        self.expected_prior, self.received_prior = expected, self.received
        fraction = (interval_lost << 8) // interval_expected if interval_expected > 0 and interval_lost > 0 else 0
        dlsr = int((now - self.lsr_at) * 65536) & 0xFFFFFFFF if self.lsr else 0
        return struct.pack("!IIIIII", self.ssrc_in, min(fraction, 255) << 24 | lost, self.highest & 0xFFFFFFFF,
                           int(self.jitter) & 0xFFFFFFFF, self.lsr, dlsr)

    def compound(self, now: float, wall: float | None = None) -> bytes | None:
        """SR (+ a report block once the browser sent) + SDES CNAME; None before we sent anything."""
        if self.ssrc_out is None:
            return None
        msw, lsw = _ntp(time.time() if wall is None else wall)
        ts = (self.last_ts + int((now - self.last_ts_at) * self.clock)) & 0xFFFFFFFF
        blocks = self._block(now) if self.ssrc_in is not None else b""
        body = struct.pack("!IIIIII", self.ssrc_out, msw, lsw, ts, self.packets, self.octets) + blocks
        sr = struct.pack("!BBH", 0x80 | len(blocks) // 24, SR, len(body) // 4) + body
        item = bytes([1, len(self.cname)]) + self.cname
        chunk = struct.pack("!I", self.ssrc_out) + item + b"\0" * (4 - len(item) % 4)  # ends with a null item
        return sr + struct.pack("!BBH", 0x81, SDES, len(chunk) // 4) + chunk
