"""The media process: one epoll loop owning every RTP/RTCP socket, its own clock, driven over the control
socket (protocol: services/pbx/media/__init__.py). Run by the PBX as `python -I engine.py <fd>`; stdlib only,
so it starts in a few tens of milliseconds and imports nothing of the signalling side.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

try:
    from . import disk, mixer, tap, transcode
    from .dsp import FRAME
    from .terminal import Terminal, open_source
except ImportError:  # run as a script (`python -I engine.py`): its directory is not on the path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import disk
    import mixer
    import tap
    import transcode
    from dsp import FRAME
    from terminal import Terminal, open_source

TICK = 0.25  # seconds between stats reports and silence checks
LOCAL_OPS = ("local", "play", "stop_play", "record", "stop_record", "dtmf")
RT_PRIORITY = 20  # SCHED_RR priority: above every normal process, below the kernel's own threads (50)
BATCH = 150  # sides per stats message (a message stays far below the socket buffer)
MAX_DATAGRAM = 60000  # characters of one batch of messages (the PBX reads up to 1 MiB)
_encode = json.JSONEncoder(separators=(",", ":")).encode
_random = random.SystemRandom()  # ports must not be guessable from earlier calls


class Stats:
    """What one side receives: packets, bytes, loss and jitter (RFC 3550 A.3 / A.8)."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.forwarded = 0
        self.rtcp = 0
        self.rejected = 0  # from a source other than the party's (strict source)
        self.lost_before = 0
        self._reset_seq()

    def _reset_seq(self) -> None:
        self.ssrc: int | None = None
        self.base = self.max_seq = self.cycles = self.received = 0
        self.transit: float | None = None
        self.jitter = 0.0

    def rtp(self, data: bytes, clock_rate: int) -> None:
        self.packets += 1
        self.bytes += len(data)
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.lost_before += self.lost_now()
            self._reset_seq()
            self.ssrc, self.base, self.max_seq = ssrc, seq, seq
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < 3000:
                if seq < self.max_seq:
                    self.cycles += 1 << 16
                self.max_seq = seq
        self.received += 1
        transit = time.monotonic() * clock_rate - ts
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < clock_rate * 10:
                self.jitter += (d - self.jitter) / 16
        self.transit = transit

    def lost_now(self) -> int:
        if self.ssrc is None:
            return 0
        expected = self.cycles + self.max_seq - self.base + 1
        return max(0, expected - self.received)

    def summary(self, clock_rate: int) -> dict:
        lost = self.lost_before + self.lost_now()
        expected = self.packets + lost
        return {"packets": self.packets, "bytes": self.bytes, "forwarded": self.forwarded, "rtcp": self.rtcp,
                "lost": lost, "loss_pct": round(100 * lost / expected, 3) if expected else 0.0,
                "jitter_ms": round(self.jitter * 1000 / clock_rate, 3), "rejected": self.rejected}


class Side:
    """A relay endpoint one party talks to (RTP on an even port, RTCP on the next one), forwarding what
    it accepts to its linked side. Strict source: before latching, only packets from the addresses the
    party's SDP and signalling name are accepted; the first such packet latches the exact address, and
    from then on only that address is accepted until the PBX allows a re-latch (a re-INVITE of the party).
    A terminating endpoint (player, recorder, mixer input) is a later subclass overriding `deliver`."""

    def __init__(self, sid: int, port: int, rtp: socket.socket, rtcp: socket.socket) -> None:
        self.id = sid
        self.port = port
        self.rtp_sock, self.rtcp_sock = rtp, rtcp
        self.other: Side | None = None
        self.allowed: frozenset[str] = frozenset()
        self.on_loopback = False  # a party on the box itself: the kernel may pick any 127/8 source address
        self.sdp_addr: tuple[str, int] | None = None
        self.peer: tuple[str, int] | None = None  # where its media goes: the SDP address, then the latched one
        self.peer_rtcp: tuple[str, int] | None = None
        self.latched = self.latched_rtcp = False
        self.refused: tuple = (None, None)  # the exact RTP and RTCP sources of a party that left (a transfer)
        self.clock_rate = 8000
        self.stats = Stats()
        self.last_media = time.monotonic()
        self.silence_limit = 0.0  # seconds without accepted media before a "silent" event; 0: not watched
        self.reported: tuple = ()
        self.tap: tap.Listen | None = None  # keys, recording, notice on a relayed side (tap.py)

    def set_peer(self, ip: str, port: int, clock_rate: int, source: str | None, relatch: bool,
                 new_party: bool = False) -> None:
        self.clock_rate = clock_rate
        if new_party:  # the party leaving may still send for a moment, maybe from the new one's address
            self.refused = (self.peer if self.latched else None, self.peer_rtcp if self.latched_rtcp else None)
        if ip == "0.0.0.0" or not port:
            return  # on hold (RFC 2543 style) or rejected: keep the latched address
        self.allowed = frozenset(a for a in (ip, source) if a)
        self.on_loopback = any(a.startswith("127.") for a in self.allowed)
        moved = self.sdp_addr != (ip, port) or (self.peer is not None and self.peer[0] not in self.allowed)
        self.sdp_addr = (ip, port)
        if relatch or moved:
            self.peer, self.peer_rtcp = (ip, port), (ip, port + 1)
            self.latched = self.latched_rtcp = False

    def received(self, data: bytes, addr: tuple[str, int], rtcp: bool) -> None:
        if rtcp:
            if self.latched_rtcp:
                if addr != self.peer_rtcp:
                    self.stats.rejected += 1
                    return
            elif addr != self.refused[1] and self.accepts(addr[0]):
                self.peer_rtcp, self.latched_rtcp = addr, True
            else:
                self.stats.rejected += 1
                return
            self.stats.rtcp += 1
        else:
            if self.latched:
                if addr != self.peer:
                    self.stats.rejected += 1
                    return
            elif addr != self.refused[0] and self.accepts(addr[0]):
                self.peer, self.latched = addr, True
            else:
                self.stats.rejected += 1
                return
            self.stats.rtp(data, self.clock_rate)
        self.last_media = time.monotonic()
        if self.tap is not None and not rtcp:
            data = self.tap(data)
            if data is None:
                return  # a key of an in-call feature code, swallowed or held back (tap.py)
        other = self.other
        if other is not None and other.deliver(data, rtcp):
            if not rtcp:
                self.stats.forwarded += 1

    def accepts(self, ip: str) -> bool:
        """May a packet from `ip` latch this side (the party's SDP or signalling address)?"""
        return ip in self.allowed or (self.on_loopback and ip.startswith("127."))

    def deliver(self, data: bytes, rtcp: bool) -> bool:
        """Send media from the linked side to this side's party; False if it could not go."""
        dest = self.peer_rtcp if rtcp else self.peer
        if dest is None:
            return False
        try:
            (self.rtcp_sock if rtcp else self.rtp_sock).sendto(data, dest)
        except OSError:
            return False  # full buffer or unreachable peer: UDP semantics, the packet is lost
        return True

    def figures(self) -> list:
        s = self.stats
        lost = s.lost_before + s.lost_now()
        return [s.packets, s.bytes, s.forwarded, s.rtcp, lost, round(s.jitter * 1000 / self.clock_rate, 3),
                s.rejected]


class Engine:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.control.setblocking(False)
        self.epoll = select.epoll()
        self.epoll.register(control.fileno(), select.EPOLLIN)
        self.disk = disk.DiskThread()  # recordings' writes: never on this loop
        self.epoll.register(self.disk.fd, select.EPOLLIN)
        self.host, self.port_min, self.port_max = "127.0.0.1", 30000, 30999
        self.sides: dict[int, Side] = {}
        self.by_port: dict[int, Side] = {}
        self.fds: dict[int, tuple[Side, socket.socket, bool]] = {}
        self.outbox: list[str] = []  # encoded messages not sent yet
        self.batch = False  # the PBX reads JSON arrays of messages ("config": "batch")
        self.realtime = False  # real-time scheduling ("config": "realtime", scheduling())
        self.terminals: dict[int, Terminal] = {}  # side id -> the local endpoint it talks to
        self.recordings: dict[int, tap.StereoRecording] = {}  # by the side of its left channel
        self.running = True
        self.next_id = 1
        self.origin = time.monotonic()  # local endpoints send on one 20 ms grid from here: one wake-up for all
        self.mixer = mixer.Mixer(self)  # conference rooms of local endpoints (mixer.py)

    # -- control ----------------------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        """Queue a message; the loop sends what one of its turns queued together (flush)."""
        self.outbox.append(_encode(msg))
        if not self.batch:
            self.flush()

    def flush(self) -> None:
        """Send the queue: one message per datagram, or with `batch` as few JSON arrays as fit."""
        outbox = self.outbox
        while outbox:
            count, size = 1, len(outbox[0])
            if self.batch:
                while count < len(outbox) and size + len(outbox[count]) + 1 <= MAX_DATAGRAM:
                    size += len(outbox[count]) + 1
                    count += 1
            text = outbox[0] if count == 1 else "[" + ",".join(outbox[:count]) + "]"
            try:
                self.control.send(text.encode())
            except BlockingIOError:
                return  # the PBX is busy: retried on the next tick
            except OSError:
                self.running = False
                return
            del outbox[:count]

    def read_control(self) -> None:
        for _ in range(256):
            try:
                data = self.control.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.running = False  # the PBX is gone: so is its media
                return
            try:
                value = json.loads(data)
            except ValueError as exc:
                self.send({"ev": "error", "error": f"bad request: {exc}"[:200]})
                continue
            for msg in value if isinstance(value, list) else (value,):
                try:
                    self.handle(msg)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    self.send({"ev": "error", "error": f"bad request: {exc}"[:200]})
        self.flush()

    def handle(self, msg: dict) -> None:
        op = msg["op"]
        if op == "open":
            try:
                sides = [self.open() for _ in range(int(msg.get("count", 1)))]
            except OSError as exc:
                self.send({"re": msg["id"], "error": str(exc)})
                return
            self.send({"re": msg["id"], "sides": [[s.id, s.port] for s in sides]})
            return
        if op == "config":
            self.host, self.port_min, self.port_max = str(msg["host"]), int(msg["min"]), int(msg["max"])
            self.batch = bool(msg.get("batch", self.batch))
            self.realtime = scheduling(bool(msg.get("realtime", False)), self.disk.thread.native_id)
            return
        if op == "ping":
            self.send({"re": msg["id"], "sides": len(self.sides), "pid": os.getpid(), "realtime": self.realtime})
            return
        if op in mixer.OPS:
            side = self.sides.get(int(msg.get("side", 0)))
            self.mixer.handle(op, msg, side, self.terminals.get(side.id) if side else None)
            return
        side = self.sides.get(int(msg["side"]))
        if side is None:
            return  # closed meanwhile: nothing to do
        if op == "peer":
            side.set_peer(str(msg["ip"]), int(msg["port"]), max(1, int(msg.get("rate") or 8000)), msg.get("source"),
                          bool(msg.get("relatch")), bool(msg.get("new_party")))
        elif op == "link":
            self.link(side, self.sides.get(int(msg["to"])))
        elif op == "transcode":
            transcode.link(self, side, self.sides.get(int(msg["to"])), msg)
        elif op == "watch":
            side.silence_limit = float(msg["seconds"])
            side.last_media = time.monotonic()
        elif op == "close":
            self.close(side, bool(msg.get("closed")))
        elif op in LOCAL_OPS:
            self.local_op(op, side, msg)
        elif op in tap.OPS:
            tap.op(self, op, side, msg)
        else:
            raise ValueError(f"unknown op {op!r}")

    # -- local endpoints (terminal.py) ----------------------------------------------------------------
    def local_op(self, op: str, side: Side, msg: dict) -> None:
        term = self.terminals.get(side.id)
        if op == "local":
            event_pt = msg.get("event_pt")
            inband = msg.get("inband")
            args = (str(msg["codec"]), int(msg["pt"]), None if event_pt is None else int(event_pt),
                    bool(msg.get("send", True)), None if inband is None else bool(inband))
            try:
                if term is None:
                    term = Terminal(self, side, *args, start=self.frame_grid(time.monotonic()) - FRAME)
                    self.link(side, None)
                    self.terminals[side.id] = term
                    side.other = term
                else:
                    term.configure(*args)
            except ValueError as exc:
                self.send({"ev": "local_error", "side": side.id, "error": str(exc)})
            return
        if term is None:
            raise ValueError(f"side {side.id} is no local endpoint")
        if op == "play":
            try:
                term.start_play(msg.get("play"), open_source(msg, term.codec.rate))
            except (ValueError, KeyError, TypeError) as exc:
                self.send({"ev": "play_done", "side": side.id, "play": msg.get("play"), "reason": "error",
                           "error": str(exc)[:200]})
        elif op == "stop_play":
            term.stop_play("stopped")
        elif op == "record":
            try:
                term.start_record(msg.get("record"), str(msg["path"]), float(msg.get("max_seconds") or 0),
                                  float(msg.get("silence_stop") or 0))
            except OSError as exc:
                self.send({"ev": "record_done", "side": side.id, "record": msg.get("record"), "reason": "error",
                           "seconds": 0, "path": str(msg["path"]), "error": str(exc)[:200]})
        elif op == "stop_record":
            term.stop_record("stopped")
        elif op == "dtmf":
            term.send_keys(str(msg["keys"]))

    def frame_grid(self, now: float) -> float:
        """The first instant of the 20 ms send grid after `now`."""
        return self.origin + (int((now - self.origin) / FRAME) + 1) * FRAME

    def drop_terminal(self, side: Side, then=None) -> None:
        """`then()` after the local endpoint's last events (at once without one)."""
        self.mixer.leave(side.id)
        term = self.terminals.pop(side.id, None)
        if term is None:
            if then is not None:
                then()
            return
        if side.other is term:
            side.other = None
        term.close(then)

    # -- sides ------------------------------------------------------------------------------------
    def open(self) -> Side:
        """A side on a random free even/odd port pair of the range."""
        first = self.port_min + (self.port_min % 2)
        slots = max(0, (self.port_max - 1 - first) // 2 + 1)
        if slots == 0:
            raise OSError("the RTP port range is empty")
        if len(self.by_port) >= slots:
            raise OSError("no free RTP port in the configured range")
        start = _random.randrange(slots)
        guesses = (_random.randrange(slots) for _ in range(32))  # nearly always the first one is free
        for slot in itertools.chain(guesses, ((start + k) % slots for k in range(slots))):
            port = first + 2 * slot
            if port in self.by_port:
                continue
            socks = []
            try:
                for p in (port, port + 1):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    socks.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                    s.bind((self.host, p))
                    s.setblocking(False)
            except OSError:
                for s in socks:
                    s.close()
                continue
            side = Side(self.next_id, port, socks[0], socks[1])
            self.next_id += 1
            self.sides[side.id] = side
            self.by_port[port] = side
            for sock, rtcp in ((socks[0], False), (socks[1], True)):
                self.fds[sock.fileno()] = (side, sock, rtcp)
                self.epoll.register(sock.fileno(), select.EPOLLIN)
            return side
        raise OSError("no free RTP port in the configured range")

    def link(self, a: Side, b: Side | None) -> None:
        for side in (a, b):
            if side is not None:
                transcode.unlink(side)
            if side is not None and side.id in self.terminals:
                self.drop_terminal(side)  # relayed (or reflected) again: no longer a local endpoint
        for side in (a, b):
            if side is not None and side.other is not None and side.other.other is side:
                side.other.other = None  # its former partner forwards nowhere now
        a.other = b
        if b is not None:
            b.other = a

    def close(self, side: Side, report: bool = False) -> None:
        """Release the ports; with `report`, a "closed" event follows the side's last events."""
        tap.side_closed(self, side)
        transcode.unlink(side)
        sid = side.id
        self.drop_terminal(side, (lambda: self.send({"ev": "closed", "side": sid})) if report else None)
        self.sides.pop(side.id, None)
        self.by_port.pop(side.port, None)
        if side.other is not None and side.other.other is side:
            side.other.other = None
        for sock in (side.rtp_sock, side.rtcp_sock):
            fd = sock.fileno()
            if self.fds.pop(fd, None) is not None:
                self.epoll.unregister(fd)
            sock.close()

    # -- clock ------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        changed = []
        for side in self.sides.values():
            figures = side.figures()
            if figures != side.reported:
                side.reported = figures
                changed.append([side.id, *figures])
            if side.silence_limit and now - side.last_media > side.silence_limit:
                self.send({"ev": "silent", "side": side.id, "seconds": round(now - side.last_media, 1)})
                side.silence_limit = 0.0  # one event; the PBX re-arms it if the call goes on
        local = []
        for sid, term in self.terminals.items():
            figures = term.figures()
            if figures != term.reported:
                term.reported = figures
                local.append([sid, *figures])
        tap.clock(self, now)
        for name, rows in (("stats", changed), ("local_stats", local)):
            for i in range(0, len(rows), BATCH):
                if len(self.outbox) < 64:  # stats are dropped, never queued without bound, if the PBX lags
                    self.send({"ev": name, "sides": rows[i:i + BATCH]})
        self.flush()

    def run(self) -> None:
        fds, poll, control_fd, disk_fd = self.fds, self.epoll.poll, self.control.fileno(), self.disk.fd
        next_tick = time.monotonic() + TICK
        terminals = self.terminals
        next_frame = self.frame_grid(next_tick - TICK)
        while self.running:
            now = time.monotonic()
            wait = min(next_tick, next_frame) - now if terminals else next_tick - now
            events = poll(max(0.0, wait))
            for fd, _ in events:
                if fd == control_fd:
                    self.read_control()
                    continue
                if fd == disk_fd:
                    self.disk.complete()  # recordings written: their record_done
                    continue
                entry = fds.get(fd)
                if entry is None:
                    continue
                side, sock, rtcp = entry
                received = side.received
                for _ in range(64):  # drain, but let other sockets have their turn
                    try:
                        data, addr = sock.recvfrom(2048)
                    except OSError:
                        break
                    received(data, addr, rtcp)
            now = time.monotonic()
            if now >= next_frame:
                next_frame = self.frame_grid(now)
                self.mixer.clock(now)  # this frame's mix first: the members send it below
                for term in list(terminals.values()):
                    term.clock(now)
            if now >= next_tick:
                next_tick = now + TICK
                self.tick(now)
            if self.outbox:
                self.flush()  # the events of this turn (keys, play_done...), together


def scheduling(realtime: bool, *threads: int) -> bool:
    """Real-time round-robin scheduling at RT_PRIORITY (as PBXs run their media: frames leave on time
    while other work loads the box; the kernel still keeps 5 % of each CPU for the rest), or the normal
    policy, for this thread and `threads` (the disk thread: at a lower priority it could be preempted
    holding the GIL the loop waits for). True if real-time is on: it needs CAP_SYS_NICE, without which
    the engine runs as before."""
    policy, param = (os.SCHED_RR, RT_PRIORITY) if realtime else (os.SCHED_OTHER, 0)
    for tid in (0, *threads):
        try:
            if os.sched_getscheduler(tid) != policy or realtime:
                os.sched_setscheduler(tid, policy, os.sched_param(param))
        except OSError:
            pass
    return os.sched_getscheduler(0) == os.SCHED_RR


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the PBX, which stops us in order
    control = socket.socket(fileno=int(sys.argv[1]))
    engine = Engine(control)
    try:
        engine.run()
    finally:
        engine.disk.stop()  # what recordings handed over reaches their files


if __name__ == "__main__":
    main()
