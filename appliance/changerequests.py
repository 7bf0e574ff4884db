"""Configuration changes a service's process asks for: a phone dialling *72, a PIN changed by phone.

A service process runs unprivileged and never writes the configuration. It publishes a request on the
bus; the appliance's root process applies it as one revision through the apply engine (the service then
gets its usual reload) and answers with the outcome:

    topic config.request.<service>, key <request id>: {"kind": "forwarding", "by": "201", "data": {...}}
    topic config.result.<service>,  key <request id>: {"error": None | "reason", "revision": id | None}

What a request may change is only what the service declares: `Service.change_requests`, a dict of kind
-> handler(document, data) -> revision summary, run in the root process on a copy of the document; a
handler raises ValueError with a reason for bad data. The bus hub stamps each service process's connection
with its name, so a process can ask only for its own service's kinds (appliance/bus.py, BusHub.attach).
Requests are applied one at a time on a worker thread, never on the event loop; at most MAX_PENDING wait.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from appliance.bus import Bus, Event

log = logging.getLogger("officebox.changerequests")
REQUEST_TOPIC = "config.request."
RESULT_TOPIC = "config.result."
MAX_PENDING = 16
REQUEST_TIMEOUT = 30.0
Handler = Callable[[dict, dict], str]


class ChangeRequests:
    """Root side: applies the requests of every service through `engine` (appliance.apply.ApplyEngine)."""

    def __init__(self, engine, services: dict, bus: Bus) -> None:
        self.engine = engine
        self.services = services
        self.bus = bus
        self.pending = 0
        self.applied = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="change-requests")
        self._off = bus.subscribe(REQUEST_TOPIC, self._event)

    def close(self) -> None:
        self._off()
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _event(self, event: Event) -> None:
        service = event.topic[len(REQUEST_TOPIC):]
        if event.data is None or not service:
            return
        with self._lock:
            if self.pending >= MAX_PENDING:
                self.refused += 1
                busy = True
            else:
                self.pending += 1
                busy = False
        if busy:
            self._answer(service, event.key, "too many configuration changes are waiting; try again", None)
            return
        self._worker.submit(self._run, service, event.key, dict(event.data))

    def _run(self, service: str, key: str, request: dict) -> None:
        try:
            error, revision = self._apply(service, request)
        finally:
            with self._lock:
                self.pending -= 1
        self._answer(service, key, error, revision)

    def _apply(self, service: str, request: dict) -> tuple[str | None, int | None]:
        from appliance.apply import ConfigError
        from appliance.service import ApplyError

        kind, by, data = request.get("kind"), request.get("by"), request.get("data")
        target = self.services.get(service)
        handler = (getattr(target, "change_requests", None) or {}).get(kind) if target is not None else None
        if handler is None:
            self.refused += 1
            return f"{service} may not change {kind!r}", None
        if not isinstance(data, dict) or not isinstance(by, str) or not by or len(by) > 64:
            self.refused += 1
            return "a malformed request", None
        try:
            rev = self.engine.update(f"{service}:{by}", None, lambda doc: handler(doc, data))
        except ValueError as exc:  # the handler's reason (ConfigError is an ApplyError, not a ValueError)
            self.refused += 1
            return str(exc) or "refused", None
        except ConfigError as exc:
            self.refused += 1
            return "; ".join(f"{e.field}: {e.message}" for e in exc.errors) or str(exc), None
        except ApplyError as exc:
            self.refused += 1
            return str(exc), None
        except Exception as exc:  # never lose the worker: the request fails, the service hears why
            log.exception("configuration change %r from %s failed", kind, service)
            self.refused += 1
            return f"the change failed: {exc.__class__.__name__}", None
        self.applied += 1
        log.info("configuration revision %s: %s asked by %s:%s", rev.id, kind, service, by)
        return None, rev.id

    def _answer(self, service: str, key: str, error: str | None, revision: int | None) -> None:
        self.bus.publish(RESULT_TOPIC + service, key, {"error": error, "revision": revision})


class ChangeRequester:
    """Service side: `await requester.request("forwarding", {...}, by="201")` -> None (applied) or the
    reason it was not. Call it from the service's event loop."""

    def __init__(self, bus: Bus, service: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.bus = bus
        self.service = service
        self.timeout = timeout
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._off = bus.subscribe(RESULT_TOPIC + service, self._result)

    def close(self) -> None:
        self._off()
        for loop, future in self._waiting.values():
            loop.call_soon_threadsafe(_settle, future, "the service is stopping")
        self._waiting.clear()

    async def request(self, kind: str, data: dict, by: str) -> str | None:
        if len(self._waiting) >= MAX_PENDING:
            return "too many configuration changes are waiting; try again"
        key = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._waiting[key] = (loop, future)
        try:
            self.bus.publish(REQUEST_TOPIC + self.service, key, {"kind": kind, "by": by, "data": data})
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            return "the configuration did not answer in time"
        except ConnectionError:
            return "the configuration is not reachable"
        finally:
            self._waiting.pop(key, None)

    def _result(self, event: Event) -> None:
        waiting = self._waiting.get(event.key)
        if waiting is None or event.data is None:
            return
        loop, future = waiting
        error = event.data.get("error")
        loop.call_soon_threadsafe(_settle, future, error if isinstance(error, str) or error is None else "refused")


def _settle(future: asyncio.Future, value: str | None) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.set_result(value)
