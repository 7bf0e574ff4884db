"""CTI benchmark: the real PBX and CTI services (one process, their own loop threads, one bus) under a
call storm of sipload, watched by SESSIONS CSTA sessions over TCP each monitoring MONITORS of the called
extensions. Reported: CSTA events/s delivered to the clients, event latency p50/p95 (from the PBX's
state change, stamped on its bus event, to the client reading the event), and MakeCall requests/s
(answered MakeCallResponse, sessions asking in parallel; each call is cleared afterwards). Then the same
storm watched by WS_SUBSCRIBERS JSON API WebSocket subscribers (services/cti/jsonapi.py), each following
MONITORS called extensions: events/s and latency p50/p95 from the PBX's state change to the client."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import struct
import tempfile
import threading
import time
from pathlib import Path

from bench.sipload import scenarios

AREA = "cti"
SESSIONS, MONITORS = 250, 4
CALLERS, CALLEES = 20, 20
STORM_SECONDS, MAKECALL_SECONDS = 8.0, 5.0
PASSWORD = "bench-cti-password"
WS_SUBSCRIBERS = 250
API_TOKEN = "obx_bench-json-api-token-0123456789abcdef"
CSTA = "http://www.ecma-international.org/standards/ecma-323/csta/ed3"
ACSE = "http://www.ecma-international.org/standards/ecma-354/appl_session"
FIELDS = re.compile(rb"<(\w+Event) .*?<callID>([^<]*)</callID><deviceID>([^<]*)</deviceID>")
KINDS = {b"DeliveredEvent": "alerting", b"EstablishedEvent": "connected", b"ConnectionClearedEvent": "cleared"}


def row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": value, "unit": unit, "note": note}


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Session:
    """A minimal CSTA client on asyncio streams (8-byte header framing)."""

    def __init__(self, reader, writer, on_event) -> None:
        self.reader, self.writer, self.on_event = reader, writer, on_event
        self.invoke = 0
        self.waiting: dict[str, asyncio.Future] = {}
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int, on_event) -> "Session":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, on_event)

    async def _read(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(8)
                body = await self.reader.readexactly(struct.unpack(">H", header[2:4])[0] - 8)
                invoke = header[4:8].decode()
                if invoke == "9999":
                    self.on_event(body)
                elif invoke in self.waiting:
                    self.waiting.pop(invoke).set_result(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def request(self, xml: str) -> bytes:
        self.invoke = self.invoke % 9998 + 1
        invoke = f"{self.invoke:04d}"
        body = xml.encode()
        fut = asyncio.get_running_loop().create_future()
        self.waiting[invoke] = fut
        self.writer.write(b"\x00\x00" + struct.pack(">H", 8 + len(body)) + invoke.encode() + body)
        return await asyncio.wait_for(fut, 30)

    async def start(self) -> None:
        answer = await self.request(
            f'<StartApplicationSession xmlns="{ACSE}"><applicationInfo><applicationID>bench</applicationID>'
            f"<applicationSpecificInfo><userName>bench</userName><password>{PASSWORD}</password>"
            f"</applicationSpecificInfo></applicationInfo></StartApplicationSession>")
        if b"PosResponse" not in answer:
            raise RuntimeError(answer.decode()[:200])

    async def monitor(self, device: str) -> None:
        await self.request(f'<MonitorStart xmlns="{CSTA}"><monitorObject><deviceObject>{device}</deviceObject>'
                           f"</monitorObject></MonitorStart>")

    def close(self) -> None:
        self.task.cancel()
        self.writer.close()


def _document(callers, callees):
    from appliance import schema
    from appliance.users import hash_password
    users = [{"login": f"u{ext}", "full_name": f"User {ext}", "extension": ext, "sip_secret": secret}
             for ext, secret in callers + callees]
    return schema.parse({"users": users, "pbx": {
        "lab_sip_port": 0, "lab_rtp_port_min": 48000, "lab_rtp_port_max": 49999,
        "abuse": {"trusted": ["127.0.0.1"], "max_requests": 100000, "request_window": 1}},
        "cti": {"enabled": True, "lab_tcp_port": 0, "lab_tls_port": 0, "max_sessions": SESSIONS + 10,
                "requests_per_second": 10000, "lab_api_port": 0, "api_max_connections": WS_SUBSCRIBERS + 10,
                "api_tokens": [{"name": "bench", "token_hash": hashlib.sha256(API_TOKEN.encode()).hexdigest(),
                                "scope": ["*"]}],
                "accounts": [{"name": "bench", "password_hash": hash_password(PASSWORD), "scope": ["*"]}]}})


async def _storm(port: int, target: scenarios.Target, pbx_times: dict) -> list[dict]:
    latencies: list[float] = []
    counted = [0]

    def on_event(body: bytes) -> None:
        now = time.time()
        counted[0] += 1
        m = FIELDS.search(body)
        if m and m.group(1) in KINDS:
            sent = pbx_times.get((m.group(2).decode(), m.group(3).decode(), KINDS[m.group(1)]))
            if sent is not None:
                latencies.append(now - sent)

    sessions = []
    for _ in range(SESSIONS):
        s = await Session.open(port, on_event)
        await s.start()
        for ext, _secret in random.sample(target.callees, MONITORS):
            await s.monitor(ext)
        sessions.append(s)
    counted[0] = 0
    started = time.monotonic()
    result = await scenarios.call_load(target, seconds=STORM_SECONDS, workers=10)
    await asyncio.sleep(1.0)  # the last events reach the clients
    elapsed = time.monotonic() - started
    rows = [row("call storm: call cycles/s", result["rate"], "1/s",
                f"sipload, {STORM_SECONDS:.0f} s, {result['failed']} failed"),
            row(f"events/s delivered to {SESSIONS} monitoring sessions", counted[0] / elapsed, "1/s",
                f"each session monitors {MONITORS} of {CALLEES} called extensions"),
            row("event latency p50", _percentile(latencies, 0.5) * 1000, "ms",
                f"PBX bus event to CSTA client, {len(latencies)} events"),
            row("event latency p95", _percentile(latencies, 0.95) * 1000, "ms")]
    for s in sessions:
        s.close()
    return rows


EVENT_TIME = re.compile(rb'^\{"type": "call".*"time": ([0-9.]+)\}$')


class WsSubscriber:
    """A minimal WebSocket client on asyncio streams (RFC 6455; the server's frames are unmasked), so the
    figures measure the server rather than a client library."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, hello: dict) -> "WsSubscriber":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        if b" 101 " not in await reader.readuntil(b"\r\n\r\n"):
            raise RuntimeError("no WebSocket upgrade")
        ws = cls(reader, writer)
        ws.send(json.dumps(hello).encode())
        await ws.recv()  # hello
        return ws

    def send(self, data: bytes) -> None:
        mask = os.urandom(4)
        size = len(data)
        head = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + struct.pack(">H", size)
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    async def recv(self) -> bytes:
        head = await self.reader.readexactly(2)
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack(">H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", await self.reader.readexactly(8))[0]
        return await self.reader.readexactly(size)

    def close(self) -> None:
        self.writer.close()


async def _ws_storm(port: int, target: scenarios.Target) -> list[dict]:
    latencies: list[float] = []
    counted = [0]

    async def follow(ws: WsSubscriber) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await ws.recv()
                m = EVENT_TIME.match(message)
                if m:
                    counted[0] += 1
                    latencies.append(time.time() - float(m.group(1)))

    sockets = []
    for _ in range(WS_SUBSCRIBERS):
        devices = [ext for ext, _secret in random.sample(target.callees, MONITORS)]
        sockets.append(await WsSubscriber.open(port, {"token": API_TOKEN, "devices": devices}))
    readers = [asyncio.get_running_loop().create_task(follow(ws)) for ws in sockets]
    started = time.monotonic()
    storm = LoopThread()  # sipload on a loop of its own: the subscribers' reading does not slow the callers
    try:
        result = await asyncio.to_thread(storm.call, scenarios.call_load(target, seconds=STORM_SECONDS, workers=10))
    finally:
        storm.close()
    await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    for ws in sockets:
        ws.close()
    for task in readers:
        task.cancel()
    return [row("JSON API: call storm cycles/s", result["rate"], "1/s", f"{result['failed']} failed"),
            row(f"JSON API: events/s to {WS_SUBSCRIBERS} WebSocket subscribers", counted[0] / elapsed, "1/s",
                f"each follows {MONITORS} of {CALLEES} called extensions"),
            row("JSON API: event latency p50", _percentile(latencies, 0.5) * 1000, "ms",
                f"PBX bus event to WebSocket client, {len(latencies)} events"),
            row("JSON API: event latency p95", _percentile(latencies, 0.95) * 1000, "ms")]


async def _makecalls(port: int, target: scenarios.Target) -> list[dict]:
    uas, _ = await scenarios._callee_endpoint(target, None)
    from bench.sipload import sip
    from bench.sipload.rtp import Stream
    sink = await Stream.open()
    uas.answer_sdp = lambda call_id, offer: sip.sdp("127.0.0.1", sink.port, 2)
    sessions = [await Session.open(port, lambda body: None) for _ in range(10)]
    for s in sessions:
        await s.start()
    made: list[tuple[Session, str, str]] = []
    stop_at = time.monotonic() + MAKECALL_SECONDS

    async def worker(s: Session) -> None:
        while time.monotonic() < stop_at:
            (a, _), (b, _) = random.sample(target.callees, 2)
            answer = await s.request(f'<MakeCall xmlns="{CSTA}"><callingDevice>{a}</callingDevice>'
                                     f"<calledDirectoryNumber>{b}</calledDirectoryNumber></MakeCall>")
            call = re.search(rb"<callID>([^<]*)</callID>", answer)
            if call:
                made.append((s, call.group(1).decode(), a))
    started = time.monotonic()
    await asyncio.gather(*(worker(s) for s in sessions))
    elapsed = time.monotonic() - started
    await asyncio.sleep(2.0)
    for s, call, device in made:
        await s.request(f'<ClearCall xmlns="{CSTA}"><callToBeCleared><callID>{call}</callID><deviceID>{device}'
                        f"</deviceID></callToBeCleared></ClearCall>")
    for s in sessions:
        s.close()
    uas.close()
    sink.close()
    return [row("MakeCall requests/s", len(made) / elapsed, "1/s",
                f"10 sessions in parallel, {len(made)} calls made (3PCC: both legs answered by sipload's UAS)")]


def run() -> list[dict]:
    from appliance.bus import appliance_bus
    from appliance.context import Context
    from services.cti import SERVICE as CTI
    from services.pbx import SERVICE as PBX

    callers = [(f"2{i:03d}", f"callersecret{i:03d}") for i in range(CALLERS)]
    callees = [(f"3{i:03d}", f"calleesecret{i:03d}") for i in range(CALLEES)]
    cfg = _document(callers, callees)
    tmp = tempfile.TemporaryDirectory(prefix="bench-cti-")
    ctx = Context(Path(tmp.name), lab=True)
    pbx_loop, cti_loop = LoopThread(), LoopThread()
    pbx, cti = PBX(ctx), CTI(ctx)
    pbx_times: dict[tuple[str, str, str], float] = {}

    def stamp(event) -> None:
        data = event.data
        if data is None:
            return
        if event.topic == "pbx.device":
            pbx_times.setdefault((data["call"], data["device"], data["event"]), data["time"])
        elif event.topic == "pbx.call" and data["event"] == "cleared":
            for device in data.get("devices") or ():
                pbx_times.setdefault((data["call"], device, "cleared"), data["time"])
    off = appliance_bus(ctx).subscribe("pbx.", stamp)
    try:
        pbx_loop.call(pbx.start(cfg))
        cti_loop.call(cti.start(cfg))
        target = scenarios.Target(("127.0.0.1", pbx.sip_port), "127.0.0.1", callers, callees)
        port = cti.server.ports["tcp"]
        rows = asyncio.run(_storm(port, target, pbx_times))
        rows += asyncio.run(_makecalls(port, target))
        rows += asyncio.run(_ws_storm(cti.server.ports["api"], target))
        figures = cti.server.figures()
        rows.append(row("events dropped for slow clients", figures["dropped_events"], "", "bounded queues"))
        rows.append(row("JSON API subscribers dropped as too slow", figures["api_dropped_subscribers"], "",
                        "1 MiB write buffer each"))
        return rows
    finally:
        off()
        cti_loop.call(cti.stop())
        pbx_loop.call(pbx.stop())
        cti_loop.close()
        pbx_loop.close()
        tmp.cleanup()


if __name__ == "__main__":
    for r in run():
        print(r)
