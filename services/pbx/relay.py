"""The PBX's handle on the media process (services/pbx/media): it starts and supervises the engine, and
gives call control one `Side` per party (the relay port that party talks to) to steer over the control
socket. Nothing per packet happens in the PBX: figures arrive from the engine 4 times a second, so
what snapshots and call records show is at most that old.

If the engine dies, every live side is lost: `on_down(sides, "media_engine_restart")` lets call control
end those calls, then a fresh engine starts (after a short pause if it keeps dying). A side whose party
sent nothing for the watched time comes back as `on_down([side], "rtp_timeout")`. An engine that stops
answering pings (stuck, stopped) is killed and handled the same way.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path

from . import control

log = logging.getLogger("officebox.pbx.relay")
ENGINE = Path(__file__).resolve().parent / "media" / "engine.py"
FIGURES = ("packets", "bytes", "forwarded", "rtcp", "lost", "jitter_ms", "rejected")
LOCAL_FIGURES = ("sent", "late", "malformed", "unknown_pt", "dtmf", "dtmf_dropped", "rtcp_sent")
LOCAL_EVENTS = ("dtmf", "play_done", "record_done", "local_error", "notice_done")
CLOSING = 256  # closed sides whose listener awaits the engine's last events (until its "closed")
START_TIMEOUT = 5.0  # seconds a request waits for a (re)starting engine
RESTART_PAUSE = 2.0  # after the third death within a minute
WATCHDOG = 5.0  # seconds between pings; an engine that does not answer one in that time is killed


class LegStats:
    """The engine's figures for what one side receives (packets, loss, jitter, strict-source rejects)."""

    def __init__(self) -> None:
        for name in FIGURES:
            setattr(self, name, 0)
        self.reported = self.reported_lost = 0  # what was already added to the service totals

    def update(self, figures: list) -> None:
        for name, value in zip(FIGURES, figures, strict=True):
            setattr(self, name, value)

    def summary(self) -> dict:
        expected = self.packets + self.lost
        return {name: getattr(self, name) for name in FIGURES} | {
            "loss_pct": round(100 * self.lost / expected, 3) if expected else 0.0}


class Side:
    """The relay end one party talks to (RTP on an even port, RTCP on the next one), in the engine."""

    def __init__(self, relay: "RtpRelay", sid: int, port: int) -> None:
        self.relay = relay
        self.id = sid
        self.port = port
        self.clock_rate = 8000
        self.stats = LegStats()
        self.closed = False
        self.local: dict | None = None  # the local endpoint's figures (LOCAL_FIGURES), once terminated
        self.listener: Callable[[dict], None] | None = None  # gets the local endpoint's events
        self.on_code: Callable[[str], None] | None = None  # an in-call feature code its party keyed

    # -- a local endpoint: the box itself is this side's party (media/terminal.py) ------------------
    def terminate(self, codec: str, pt: int, event_pt: int | None, send: bool = True,
                  inband: bool | None = None) -> None:
        """Make this side a local endpoint speaking `codec` on payload type `pt` (again after a
        re-INVITE); `event_pt`: telephone-event's, `send`: False while the party holds the call,
        `inband`: detect DTMF tones in the audio (None: only without telephone-event)."""
        if self.local is None:
            self.local = dict.fromkeys(LOCAL_FIGURES, 0)
        self.relay.send({"op": "local", "side": self.id, "codec": codec, "pt": pt, "event_pt": event_pt,
                         "send": send, "inband": inband})

    def play(self, play_id: int, file: str | None = None, tone: dict | None = None) -> None:
        self.relay.send({"op": "play", "side": self.id, "play": play_id} |
                        ({"file": file} if file is not None else {"tone": tone}))

    def record(self, record_id: int, path: str, max_seconds: float, silence_stop: float) -> None:
        self.relay.send({"op": "record", "side": self.id, "record": record_id, "path": path,
                         "max_seconds": max_seconds, "silence_stop": silence_stop})

    def stop(self, what: str) -> None:
        """Stop the current "play" or "record"."""
        self.relay.send({"op": f"stop_{what}", "side": self.id})

    def send_dtmf(self, keys: str) -> None:
        self.relay.send({"op": "dtmf", "side": self.id, "keys": keys})

    def tap(self, op: str, **fields) -> None:
        """A tap on this relayed side (media/tap.py: keys, tap_record, tap_stop, notice); its events
        reach `listener` like a local endpoint's."""
        self.relay.send({"op": op, "side": self.id, **fields})

    def watch_codes(self, codes: list[str], event_pt: int | None, gap: float,
                    on_code: Callable[[str], None] | None) -> None:
        """Swallow the RFC 4733 keys of these in-call feature codes (media/tap.py key_codes) and tell
        `on_code` which one the party keyed; other keys pass (those that may begin a code, once they
        cannot or after `gap` seconds). No codes: stop."""
        self.on_code = on_code if codes else None
        self.relay.send({"op": "key_codes", "side": self.id, "event_pt": event_pt, "codes": codes, "gap": gap})

    def set_peer(self, ip: str, port: int, clock_rate: int = 8000, source: str | None = None,
                 relatch: bool = False, new_party: bool = False) -> None:
        """Where the SDP says this party receives; media is accepted only from `ip` or `source` (its
        signalling address), latched on the first packet; `relatch` (its own new offer) allows a new latch;
        `new_party` (a transfer: another party takes this side) also refuses the address latched so far."""
        self.clock_rate = clock_rate
        self.relay.send({"op": "peer", "side": self.id, "ip": ip, "port": port, "rate": clock_rate,
                         "source": source, "relatch": relatch or new_party, "new_party": new_party},
                        now=True)  # before the SIP that makes the party send

    def watch(self, seconds: float) -> None:
        """Report this side if its party sends nothing for `seconds` (0: stop watching)."""
        self.relay.send({"op": "watch", "side": self.id, "seconds": seconds})

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.relay.forget(self)


class RtpRelay:
    def __init__(self, host: str, port_min: int, port_max: int,
                 on_down: Callable[[list[Side], str], None] | None = None, realtime: bool = True) -> None:
        self.host, self.port_min, self.port_max = host, port_min, port_max
        self.on_down = on_down
        self.realtime = realtime  # the engine asks for real-time scheduling (needs CAP_SYS_NICE)
        self.sides: dict[int, Side] = {}
        self.closing: collections.OrderedDict[int, Side] = collections.OrderedDict()  # closed, last events due
        self.sides_opened = 0
        self.restarts = 0
        self.pid: int | None = None
        self._channel: control.ControlChannel | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()
        self._deaths: list[float] = []
        self._stopping = False
        self._supervisor: asyncio.Task | None = None
        self.watchdog = WATCHDOG

    @property
    def in_use(self) -> set[int]:
        return {side.port for side in self.sides.values()}

    # -- the engine process -----------------------------------------------------------------------
    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _spawn(self) -> None:
        # forked from the loop thread: the engine lives in the PBX's network namespace
        self._proc, sock = await control.spawn(ENGINE)
        self.pid = self._proc.pid
        self._channel = control.ControlChannel(sock, "the media engine", self._handle, self._ready.clear,
                                               batch=True)
        self.configure(self.host, self.port_min, self.port_max)
        self._ready.set()

    async def _supervise(self) -> None:
        while not self._stopping:
            status = await self._watch(self._proc)
            if self._stopping:
                return
            self._engine_lost(status)
            while not self._stopping:
                now = time.monotonic()
                self._deaths = [t for t in self._deaths if now - t < 60] + [now]
                if len(self._deaths) >= 3:
                    await asyncio.sleep(RESTART_PAUSE)  # it keeps dying: do not spin
                try:
                    await self._spawn()
                except OSError:
                    log.exception("cannot start the media engine")
                    continue
                self.restarts += 1
                break

    async def _watch(self, proc: asyncio.subprocess.Process) -> int:
        """The engine's exit status; one that stops answering (stuck, stopped) is killed first."""
        exited = asyncio.ensure_future(proc.wait())
        while not exited.done():
            await asyncio.wait({exited}, timeout=self.watchdog)
            if exited.done() or self._stopping:
                break
            ping = asyncio.ensure_future(self._request({"op": "ping"}, self.watchdog))
            await asyncio.wait({ping, exited}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                ping.cancel()
            elif ping.exception() is not None:
                log.error("media engine %s does not answer: killing it", proc.pid)
                proc.kill()
        return await exited

    def _engine_lost(self, status: int) -> None:
        self._drop_channel()
        lost = list(self.sides.values())
        self.sides.clear()
        self.closing.clear()  # their last events died with the engine
        for side in lost:
            side.closed = True
        log.error("media engine exited with status %s: restarting it; %d relay sides lost", status, len(lost))
        if lost and self.on_down is not None:
            self.on_down(lost, "media_engine_restart")

    def _drop_channel(self) -> None:
        """No engine to talk to: requests fail at once (and wait for the next engine)."""
        self._ready.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    async def close(self) -> None:
        self._stopping = True
        self._drop_channel()  # the engine sees the end of its control socket and exits
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 2)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            self._supervisor.cancel()
        for side in self.sides.values():
            side.closed = True
        self.sides.clear()
        self.closing.clear()

    # -- control socket (services/pbx/control.py) ---------------------------------------------------
    def send(self, msg: dict, now: bool = False) -> None:
        if self._channel is not None:
            self._channel.send(msg, now)

    async def _request(self, msg: dict, timeout: float = START_TIMEOUT) -> dict:
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), START_TIMEOUT)
            except TimeoutError:
                raise OSError("the media engine is not running") from None
        return await self._channel.request(msg, timeout)

    def _handle(self, msg: dict) -> None:
        ev = msg.get("ev")
        if ev == "stats":
            for sid, *figures in msg["sides"]:
                side = self.sides.get(sid)
                if side is not None:
                    side.stats.update(figures)
        elif ev == "local_stats":
            for sid, *figures in msg["sides"]:
                side = self.sides.get(sid)
                if side is not None and side.local is not None:
                    side.local.update(zip(LOCAL_FIGURES, figures, strict=True))
        elif ev in LOCAL_EVENTS:
            side = self.sides.get(msg.get("side")) or self.closing.get(msg.get("side"))
            if side is not None and side.listener is not None:
                side.listener(msg)
        elif ev == "closed":
            self.closing.pop(msg.get("side"), None)
        elif ev == "dtmf_code":
            self._code_keyed(msg)
        elif ev == "silent":
            side = self.sides.get(msg["side"])
            if side is not None and self.on_down is not None:
                log.info("no media on relay port %s for %s s", side.port, msg["seconds"])
                self.on_down([side], "rtp_timeout")
        else:
            log.warning("media engine: %s", msg)

    def _code_keyed(self, msg: dict) -> None:
        side = self.sides.get(msg.get("side"))
        if side is not None and side.on_code is not None:
            side.on_code(str(msg.get("code", "")))

    # -- sides ------------------------------------------------------------------------------------
    def configure(self, host: str, port_min: int, port_max: int) -> None:
        self.host, self.port_min, self.port_max = host, port_min, port_max
        self.send({"op": "config", "host": host, "min": port_min, "max": port_max, "batch": True,
                   "realtime": self.realtime})

    async def open(self, count: int = 1) -> list[Side]:
        """`count` new sides, each on a random free even/odd port pair of the range."""
        reply = await self._request({"op": "open", "count": count})
        sides = [Side(self, sid, port) for sid, port in reply["sides"]]
        for side in sides:
            self.sides[side.id] = side
        self.sides_opened += len(sides)
        return sides

    async def pair(self) -> tuple[Side, Side]:
        a, b = await self.open(2)
        self.link(a, b)
        return a, b

    def link(self, a: Side, b: Side) -> None:
        """Forward between `a` and `b` (their former partners forward nowhere)."""
        self.send({"op": "link", "side": a.id, "to": b.id})

    def transcode(self, a: Side, b: Side, a_codec: tuple, b_codec: tuple, oneway: bool = False) -> None:
        """Forward between `a` and `b` whose parties speak `a_codec` and `b_codec` ((codec, payload
        type, telephone-event payload type)), transcoding (media/transcode.py); `oneway`: `a` to `b` only."""
        self.send({"op": "transcode", "side": a.id, "to": b.id, "codecs": [list(a_codec), list(b_codec)],
                   "oneway": oneway})

    def forget(self, side: Side) -> None:
        if self.sides.pop(side.id, None) is not None:
            if side.listener is None:
                self.send({"op": "close", "side": side.id})
                return
            # its local endpoint's last events (record_done "hangup") follow, then "closed"
            self.send({"op": "close", "side": side.id, "closed": True})
            self.closing[side.id] = side
            while len(self.closing) > CLOSING:  # an engine that died never says "closed"
                self.closing.popitem(last=False)

    async def ping(self) -> dict:
        return await self._request({"op": "ping"})
