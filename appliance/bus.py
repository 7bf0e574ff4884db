"""The event bus: how services learn of each other's events without importing each other.

An event is a topic ("dhcp.lease", "pbx.call"...), a key (the lease's address, the call's id) and a
JSON-able dict; `None` as data says the key is gone. A topic can be retained: the bus keeps the newest
data per key, so a late subscriber seeds itself from `retained(topic)` (the bound leases, the calls in
progress). Events are plain JSON so they cross process boundaries unchanged:

    bus = appliance_bus(ctx)                        # one per appliance (data directory)
    off = bus.subscribe("dhcp.", callback)          # callback(Event), topics starting with "dhcp."
    bus.publish("dhcp.lease", "192.168.1.20", {...}, retain=True)
    async for event in bus.stream("pbx.", maxsize=1000): ...   # bounded; overflow drops, counted

Callbacks run synchronously on the publisher's thread; they must be quick and must not raise (an
exception is logged and ignored). Streams are asyncio queues on the subscriber's loop, fed thread-safely.

Across processes: `BusHub(bus).serve(path)` listens on a Unix socket (0600); a child process uses
`RemoteBus(path)`, which has the same publish/subscribe/retained, and gets the retained state of the
topics it subscribes to first. The wire is one JSON object per line, at most MAX_LINE bytes. A service's
process gets a connection that `BusHub.attach` stamped with the service's name: under ORIGIN_PREFIXES
("config.request.") it may publish only its own topic (config.request.<its name>), so the root can trust
who asks; a process breaking that rule is disconnected.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("officebox.bus")
MAX_LINE = 64 * 1024
MAX_CLIENTS = 64
CLIENT_QUEUE = 10_000
MAX_ROUTES = 1024  # topics whose subscriber lists are kept (topics are few; a flood of new ones is not cached)
ORIGIN_PREFIXES = ("config.request.", "pbx.command.")  # <prefix><origin>: published only by the process of that origin
_hubs: dict[str, BusHub] = {}


@dataclass(frozen=True)
class Event:
    topic: str
    key: str
    data: dict | None  # None: the key is gone

    def to_wire(self) -> dict:
        return {"topic": self.topic, "key": self.key, "data": self.data}

    @classmethod
    def from_wire(cls, obj: dict) -> Event:
        topic, key, data = obj.get("topic"), obj.get("key"), obj.get("data")
        if not isinstance(topic, str) or not isinstance(key, str) or not (data is None or isinstance(data, dict)):
            raise ValueError("not an event")
        return cls(topic, key, data)


Callback = Callable[[Event], None]


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[tuple[str, Callback]] = []
        self._routes: dict[str, list[Callback]] = {}  # topic -> its subscribers' callbacks, until one (un)subscribes
        self._retained: dict[str, dict[str, dict]] = {}
        self.dropped = 0  # events a full stream could not take

    def subscribe(self, prefix: str, callback: Callback) -> Callable[[], None]:
        entry = (prefix, callback)
        with self._lock:
            self._subscribers.append(entry)
            self._routes = {}

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)
                    self._routes = {}
        return unsubscribe

    def retained(self, topic: str) -> dict[str, dict]:
        with self._lock:
            return dict(self._retained.get(topic, {}))

    def is_retained(self, topic: str) -> bool:
        with self._lock:
            return topic in self._retained

    def retained_topics(self, prefix: str) -> list[str]:
        with self._lock:
            return [t for t in self._retained if t.startswith(prefix)]

    def publish(self, topic: str, key: str, data: dict | None, retain: bool = False) -> None:
        self.deliver(Event(topic, key, data), retain)

    def deliver(self, event: Event, retain: bool = False) -> None:
        with self._lock:
            if retain or event.topic in self._retained:
                held = self._retained.setdefault(event.topic, {})
                if event.data is None:
                    held.pop(event.key, None)
                else:
                    held[event.key] = event.data
            targets = self._routes.get(event.topic)
            if targets is None:
                targets = [cb for prefix, cb in self._subscribers if event.topic.startswith(prefix)]
                if len(self._routes) < MAX_ROUTES:
                    self._routes[event.topic] = targets
        for callback in targets:
            try:
                callback(event)
            except Exception:
                log.exception("bus subscriber %r failed on %s", callback, event.topic)

    async def stream(self, prefix: str, maxsize: int = 1000) -> AsyncIterator[Event]:
        """The events of `prefix` from now on, on the caller's loop; a full queue drops (counted)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)

        def put(event: Event) -> None:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

        def callback(event: Event) -> None:
            try:
                if asyncio.get_running_loop() is loop:
                    put(event)
                    return
            except RuntimeError:
                pass
            loop.call_soon_threadsafe(put, event)
        off = self.subscribe(prefix, callback)
        try:
            while True:
                yield await queue.get()
        finally:
            off()


_buses: dict[Path, Bus] = {}


def appliance_bus(ctx) -> Bus:
    """The bus of the appliance whose data directory is ctx.data_dir."""
    return _buses.setdefault(Path(ctx.data_dir), Bus())


def use_bus(ctx, bus: Bus) -> None:
    """In a service's own process: appliance_bus(ctx) is this one (a RemoteBus joined to the hub)."""
    _buses[Path(ctx.data_dir)] = bus


class BusHub:
    """Serves a Bus to other processes over a Unix socket. Requests, one JSON object per line:
    {"sub": prefix} (answered by the retained events of matching topics, then live ones),
    {"pub": event, "retain": bool}."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task] = set()

    async def serve(self, path: Path) -> None:
        path = Path(path)
        _hubs[str(path)] = self
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._client, str(path), limit=MAX_LINE)
        finally:
            os.umask(old)

    async def attach(self, sock, origin: str) -> None:
        """Serve one end of a socket pair whose other end goes to the process of service `origin`."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
        asyncio.ensure_future(self._client(reader, writer, origin))

    async def close(self) -> None:
        for key in [k for k, hub in _hubs.items() if hub is self]:
            del _hubs[key]
        if self.server is not None:
            self.server.close()
            self.server = None
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      origin: str | None = None) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            writer.close()
            return
        task = asyncio.current_task()
        self._clients.add(task)
        outbox: asyncio.Queue[dict] = asyncio.Queue(CLIENT_QUEUE)
        prefixes: set[str] = set()  # one subscription per client, so overlapping prefixes send once
        loop = asyncio.get_running_loop()

        def forward(event: Event) -> None:
            wire = {**event.to_wire(), "retain": self.bus.is_retained(event.topic)}

            def put() -> None:
                try:
                    outbox.put_nowait(wire)
                except asyncio.QueueFull:
                    self.bus.dropped += 1
            loop.call_soon_threadsafe(put)

        async def pump() -> None:
            while True:
                writer.write(json.dumps(await outbox.get()).encode() + b"\n")
                await writer.drain()
        def matching(event: Event) -> None:
            if any(event.topic.startswith(p) for p in prefixes):
                forward(event)
        pumping = asyncio.ensure_future(pump())
        unsubscribe = self.bus.subscribe("", matching)
        try:
            while line := await reader.readline():
                request = json.loads(line)
                if "sub" in request and isinstance(request["sub"], str):
                    prefix = request["sub"]
                    if any(prefix.startswith(p) for p in prefixes):
                        continue  # already covered
                    prefixes.add(prefix)
                    for topic in self.bus.retained_topics(prefix):
                        for key, data in self.bus.retained(topic).items():
                            forward(Event(topic, key, data))
                elif "pub" in request:
                    event = Event.from_wire(request["pub"])
                    if origin is not None and _foreign(event.topic, origin):
                        raise ValueError(f"{origin} may not publish on {event.topic}")
                    self.bus.deliver(event, bool(request.get("retain")))
                else:
                    raise ValueError("unknown request")
        except (ValueError, asyncio.LimitOverrunError, ConnectionError) as exc:
            log.warning("bus client dropped: %s", exc)
        finally:
            unsubscribe()
            pumping.cancel()
            writer.close()
            self._clients.discard(task)


def _foreign(topic: str, origin: str) -> bool:
    return any(topic.startswith(prefix) and topic != prefix + origin for prefix in ORIGIN_PREFIXES)


def hub_at(path: Path) -> BusHub | None:
    """The hub this process serves at `path`, if any."""
    return _hubs.get(str(Path(path)))


class RemoteBus(Bus):
    """A Bus in another process, joined to the appliance's through its BusHub. Local subscribers see
    the hub's events of the topics subscribed to; publish() goes to the hub (and back to them)."""

    def __init__(self) -> None:
        super().__init__()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def connect(self, path: Path | None = None, sock=None) -> None:
        """Join the hub at `path`, or over `sock`, a connection to it opened for this process."""
        target = {"sock": sock} if sock is not None else {"path": str(path)}
        reader, self._writer = await asyncio.open_unix_connection(**target, limit=MAX_LINE)
        self._reader_task = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                try:
                    obj = json.loads(line)
                    event = Event.from_wire(obj)
                except (ValueError, AttributeError):
                    continue
                super().deliver(event, retain=bool(obj.get("retain")))

    def subscribe(self, prefix: str, callback: Callback) -> Callable[[], None]:
        self._send({"sub": prefix})
        return super().subscribe(prefix, callback)

    def deliver(self, event: Event, retain: bool = False) -> None:
        self._send({"pub": event.to_wire(), "retain": retain})

    def _send(self, request: dict) -> None:
        if self._writer is None:
            raise ConnectionError("the bus is not connected")
        self._writer.write(json.dumps(request).encode() + b"\n")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
