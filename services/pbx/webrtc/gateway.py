"""The PBX's handle on the WebRTC gateway process (engine.py), and the rewrite of SIP messages to and from
browsers (sip/ws.py calls `inbound` / `outbound` on every message of a WebSocket flow).

A browser leg's SDP is swapped at the edge: call control, the relay and the media engine only ever see a
plain RTP phone at the gateway's plain port. One gateway session per Call-ID of a browser flow; it ends
with the dialog (BYE, CANCEL, a failed INVITE), with the browser's connection, or when ICE/DTLS do not
complete in engine.SETUP_TIMEOUT (logged and counted in `counters`).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

from .. import control
from ..sdp import SdpError
from ..sip import message as sipmsg
from ..sip.message import ParseError, Request
from . import sdp as wsdp
from .watchdog import Watchdog

log = logging.getLogger("officebox.pbx.webrtc")
ENGINE = Path(__file__).resolve().parent / "engine.py"
REQUEST_TIMEOUT = 5.0
MAX_SESSIONS = 512  # browser calls at once, the box over
MAX_PER_FLOW = 8  # per browser connection (calls, plus a transfer or two)
SETUP_TIMEOUT = 20.0  # as engine.py's default (that module is run as a script, not imported here)
FAILURES = ("ice_timeout", "dtls_timeout", "dtls_error", "fingerprint", "dtls_closed")


class _Leg:
    """One browser call's gateway session."""

    def __init__(self, sid: int, flow: tuple, info: dict, host: str, plain_host: str) -> None:
        self.id = sid
        self.flow = flow
        self.info = info  # port, plain_port, ufrag, pwd, fingerprint
        self.host = host
        self.plain_host = plain_host
        self.mid = "0"
        self.version = 0
        self.first_invite: int | None = None  # CSeq of the INVITE that opened it
        self.opus: int | None = None  # the browser's Opus payload type when the gateway transcodes
        self.transcoding = False
        self.up = False

    def next_version(self) -> int:
        self.version += 1
        return self.version


class WebRtcGateway:
    def __init__(self, host_for: Callable[[str], str], plain_host: str, port_min: int, port_max: int) -> None:
        self.host_for = host_for  # the box's address a browser at that IP reaches
        self.plain_host = plain_host
        self.port_min, self.port_max = port_min, port_max
        self.setup_timeout = SETUP_TIMEOUT  # seconds for a browser's ICE and DTLS to complete
        self.legs: dict[str, _Leg] = {}  # Call-ID -> its session
        self.counters = dict.fromkeys(("sessions", "established", "rewritten", "refused", *FAILURES), 0)
        self.setup_ms: list[int] = []  # ICE + DTLS set-up times of the last sessions
        self.figures: dict[int, list[int]] = {}  # session -> [from browser, to browser, dropped, RTCP out, RTCP in]
        self._ids = itertools.count(1)
        self._channel: control.ControlChannel | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self.watchdog = Watchdog(self.ensure_running)  # the PBX sets its on_lost (ends those calls)

    # -- the process ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._proc, sock = await control.spawn(ENGINE)
        self._channel = control.ControlChannel(sock, "the WebRTC gateway", self._handle, self._exited)
        await self._request({"op": "ping"})

    @property
    def running(self) -> bool:
        return self._channel is not None and self._proc is not None and self._proc.returncode is None

    async def ensure_running(self) -> None:
        """Start the process (if it is not running) and have the watchdog follow it."""
        if not self.running:
            for _ in range(40):  # a process just killed: its control socket's end is read first
                if self._channel is None:
                    break
                await asyncio.sleep(0.05)
            await self.start()
            self.watchdog.watch(self._proc)

    def status(self) -> dict:
        """The gateway's state for the PBX's status: counters, sessions, the watchdog's figures."""
        return {**self.counters, "running": self.running, "browser_calls": len(self.legs),
                **self.watchdog.figures()}

    async def close(self) -> None:
        self.watchdog.stop()
        if self._channel is not None:
            self._channel.close()  # the engine sees the end of its control socket and exits
            self._channel = None
        if self._proc is not None and self._proc.returncode is None:
            try:
                await asyncio.wait_for(self._proc.wait(), 2)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self.legs.clear()

    def _send(self, msg: dict) -> None:
        if self._channel is not None:
            self._channel.send(msg)

    async def _request(self, msg: dict) -> dict:
        if self._channel is None:
            raise OSError("the WebRTC gateway is not running")
        return await self._channel.request(msg, REQUEST_TIMEOUT)

    def _exited(self) -> None:
        log.error("the WebRTC gateway process exited: %d browser calls lost their media", len(self.legs))
        self._channel = None
        self.legs.clear()  # a new process starts with the next browser call

    def _handle(self, msg: dict) -> None:
        ev, sid = msg.get("ev"), msg.get("session")
        leg = next((leg for leg in self.legs.values() if leg.id == sid), None)
        if ev == "up":
            self.counters["established"] += 1
            self.setup_ms = (self.setup_ms + [msg["setup_ms"]])[-1000:]
            if leg is not None:
                leg.up = True
        elif ev == "failed":
            reason = msg.get("reason", "dtls_error")
            self.counters[reason] = self.counters.get(reason, 0) + 1
            log.warning("WebRTC gateway: browser call %s dropped: %s", sid, reason)
            self.legs = {k: v for k, v in self.legs.items() if v.id != sid}
        elif ev == "stats":
            for sid, *figures in msg["sessions"]:
                self.figures[sid] = figures

    # -- sessions ---------------------------------------------------------------------------------
    async def _leg(self, call_id: str, flow: tuple) -> _Leg:
        leg = self.legs.get(call_id)
        if leg is None or leg.flow != flow:
            if len(self.legs) >= MAX_SESSIONS or sum(1 for v in self.legs.values() if v.flow == flow) >= MAX_PER_FLOW:
                raise OSError("too many browser calls at once")
            if self.watchdog.backing_off:
                raise OSError("the WebRTC gateway died and starts again in a moment")
            await self.ensure_running()  # the process starts with the first browser call
            sid = next(self._ids)
            host = self.host_for(flow[1])
            info = await self._request({"op": "open", "session": sid, "host": host, "min": self.port_min,
                                        "max": self.port_max, "plain_host": self.plain_host,
                                        "timeout": self.setup_timeout})
            leg = self.legs[call_id] = _Leg(sid, flow, info, host, self.plain_host)
            self.counters["sessions"] += 1
        return leg

    def _opened_by(self, msg: sipmsg.Message) -> None:
        leg = self.legs.get(msg.call_id)
        if leg is not None and leg.first_invite is None and isinstance(msg, Request) and msg.method == "INVITE":
            leg.first_invite = msg.cseq[0]

    def end(self, call_id: str) -> None:
        leg = self.legs.pop(call_id, None)
        if leg is not None:
            self._send({"op": "close", "session": leg.id})
            self.figures.pop(leg.id, None)

    def flow_closed(self, flow: tuple) -> None:
        for call_id in [c for c, leg in self.legs.items() if leg.flow == flow]:
            self.end(call_id)

    # -- SIP messages of a browser flow -----------------------------------------------------------
    async def inbound(self, data: bytes, flow: tuple) -> bytes:
        """A message from the browser: its WebRTC SDP becomes the gateway's plain description."""
        msg = _parse(data)
        if msg is None:
            return data
        call_id = msg.call_id
        ends = _ends_dialog(msg, self.legs.get(call_id))
        # a new session only for a request that proves who sends it (the PBX challenges the first INVITE:
        # an unauthenticated client must not make the gateway open ports); answers use the session of our offer
        opens = call_id in self.legs or (isinstance(msg, Request) and bool(
            msg.get("Proxy-Authorization") or msg.get("Authorization")))
        if msg.body and wsdp.is_webrtc(msg.body) and opens:
            try:
                browser = wsdp.parse(msg.body)
                leg = await self._leg(call_id, flow)
                leg.mid = browser.mid or leg.mid
                leg.opus = browser.opus() if leg.opus is None else leg.opus
                self._send({"op": "remote", "session": leg.id, "ufrag": browser.ufrag, "pwd": browser.pwd,
                            "fingerprint": browser.fingerprint.partition(" ")[2]})
                msg.body = wsdp.to_plain(browser, leg.plain_host, leg.info["plain_port"], leg.id,
                                         leg.next_version())
                self._opened_by(msg)
                self.counters["rewritten"] += 1
                data = msg.to_bytes()
            except (SdpError, OSError) as exc:
                self.counters["refused"] += 1
                log.warning("WebRTC gateway: cannot bridge the browser's SDP (%s): %s", call_id, exc)
        if ends:
            self.end(call_id)
        return data

    async def outbound(self, data: bytes, flow: tuple) -> bytes:
        """A message to the browser: the PBX's plain SDP becomes a WebRTC one through the gateway."""
        msg = _parse(data)
        if msg is None:
            return data
        call_id = msg.call_id
        if msg.body and b"RTP/AVP" in msg.body and not wsdp.is_webrtc(msg.body):
            try:
                plain = wsdp.parse(msg.body)
                leg = await self._leg(call_id, flow)
                if plain.address != "0.0.0.0" and plain.port:
                    self._send({"op": "plain_peer", "session": leg.id, "ip": plain.address, "port": plain.port})
                offer = isinstance(msg, Request)
                if leg.opus is not None and not leg.transcoding:
                    chosen = next(pt for pt in plain.passthrough() if plain.codec(pt) in ("PCMU", "PCMA"))
                    self._send({"op": "transcode", "session": leg.id, "opus_pt": leg.opus, "plain_pt": chosen,
                                "codec": plain.codec(chosen)})
                    leg.transcoding = True
                msg.body = wsdp.to_browser(plain, leg.host, leg.info["port"], leg.info, offer, leg.mid, leg.id,
                                           leg.next_version(), leg.opus)
                self._opened_by(msg)
                self.counters["rewritten"] += 1
                data = msg.to_bytes()
            except (SdpError, OSError, StopIteration) as exc:
                self.counters["refused"] += 1
                log.warning("WebRTC gateway: cannot bridge the PBX's SDP (%s): %s", call_id, exc or "no G.711")
        if _ends_dialog(msg, self.legs.get(call_id)):
            self.end(call_id)
        return data


def _parse(data: bytes) -> sipmsg.Message | None:
    try:
        return sipmsg.parse(data)
    except (ParseError, ValueError):
        return None


def _ends_dialog(msg: sipmsg.Message, leg: _Leg | None) -> bool:
    """BYE, CANCEL, or a final failure answering the INVITE that opened the session (a failed re-INVITE
    leaves the call as it was)."""
    if isinstance(msg, Request):
        return msg.method in ("BYE", "CANCEL")
    try:
        cseq, method = msg.cseq
    except (ParseError, ValueError):
        return False
    return method == "INVITE" and msg.status >= 300 and (leg is None or leg.first_invite in (None, cseq))
