"""The CSTA XML server: TCP and TLS listeners, the sessions, the call model fed from the PBX's events and
the monitors each event goes to."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl

from appliance.bus import Event

from . import csta
from .agents import AGENT_TOPIC, QUEUED_TOPIC, AcdView
from .config import CtiConfig
from .jsonapi import JsonApi
from .model import CallModel, CstaEvent
from .pbxlink import PbxLink
from .services import FORWARDING
from .session import Session, check_login

log = logging.getLogger("officebox.cti")
CALL_TOPIC, DEVICE_TOPIC = "pbx.call", "pbx.device"
FORWARD_FIELDS = {"forwardImmediate": "forward_always", "forwardBusy": "forward_busy",
                  "forwardNoAns": "forward_no_answer"}


class CtiServer:
    def __init__(self, cfg: CtiConfig, users: list, lines: list, bus) -> None:
        self.cfg, self.users, self.bus = cfg, users, bus
        self.features = _features(lines)
        self.lines = {line.extension: line for line in lines}
        self.loop = asyncio.get_running_loop()
        self.model = CallModel(self._deliver)
        self.model.extensions = {u.extension for u in users if u.enabled and u.extension}
        self.acd = AcdView(self._agent_event)
        self.pbx = PbxLink(bus)
        self.sessions: set[Session] = set()
        self.watchers: dict[str, dict[tuple[int, str], Session]] = {}  # device -> {(session, ref): session}
        self.servers: list[asyncio.base_events.Server] = []
        self.ports: dict[str, int] = {}
        self.requests = self.malformed = self.login_failures = self.dropped = self.refused = 0
        self.events_sent = 0
        self._offs = []
        self.api = JsonApi(self)

    async def start(self, host: str, tcp_port: int, tls_port: int, tls: ssl.SSLContext | None,
                    api_port: int | None = None, api_tls: ssl.SSLContext | None = None) -> None:
        self.model.seed(self.bus.retained(CALL_TOPIC))
        self.acd.seed(self.bus.retained(AGENT_TOPIC))
        self._offs = [self.bus.subscribe(topic, self._bus_event)
                      for topic in (CALL_TOPIC, DEVICE_TOPIC, AGENT_TOPIC, QUEUED_TOPIC)]
        for kind, port, context in (("tcp", tcp_port, None), ("tls", tls_port, tls)):
            if port is None or (kind == "tls" and context is None):
                continue
            server = await asyncio.start_server(self._connected, host, port, ssl=context, limit=csta.MAX_MESSAGE,
                                                ssl_handshake_timeout=10.0 if context else None)
            self.servers.append(server)
            self.ports[kind] = server.sockets[0].getsockname()[1]
        if api_port is not None:
            await self.api.start(host, api_port, api_tls)
            self.ports["api"] = self.api.port

    async def stop(self) -> None:
        for off in self._offs:
            off()
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.writer.close()
        for server in self.servers:
            await server.wait_closed()
        await self.api.stop()
        self.pbx.close()

    def reconfigure(self, cfg: CtiConfig, users: list, lines: list) -> None:
        self.cfg, self.users = cfg, users
        self.model.extensions = {u.extension for u in users if u.enabled and u.extension}
        self.lines = {line.extension: line for line in lines}
        self.acd.queues, self.acd.supervisors = {}, {}  # asked of the PBX again: its queues may have changed
        self.api.configure()
        new = _features(lines)
        for device in sorted(set(new) | set(self.features)):
            old_f, new_f = self.features.get(device, {}), new.get(device, {})
            for name in FORWARD_FIELDS:
                if old_f.get(name) != new_f.get(name):
                    to = new_f.get(name) or ""
                    self.api.device_event(device, "forwarding", {"kind": FORWARDING[name], "to": to})
                    self._device_event(device, "ForwardingEvent", csta.element("device", csta.device_id(device)),
                                       csta.text_element("forwardingType", name),
                                       csta.text_element("forwardStatus", "true" if to else "false"),
                                       *((csta.text_element("forwardTo", to),) if to else ()))
            if old_f.get("dnd", False) != new_f.get("dnd", False):
                self.api.device_event(device, "dnd", {"on": bool(new_f.get("dnd"))})
                self._device_event(device, "DoNotDisturbEvent", csta.element("device", csta.device_id(device)),
                                   csta.text_element("doNotDisturbOn", str(new_f.get("dnd", False)).lower()))
        self.features = new
        self.api.presence_changed(self.model.extensions)

    # -- sessions -------------------------------------------------------------------------------------
    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.cfg.max_sessions:
            self.refused += 1
            writer.close()
            return
        session = Session(self, reader, writer)
        self.sessions.add(session)
        await session.run()

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        for ref in list(session.monitors):
            self.unmonitor(session, ref)

    async def authenticate(self, name: str, password: str) -> tuple[set[str], str] | None:
        if not name or not password or len(password) > 256:
            return None
        return await asyncio.to_thread(check_login, list(self.users), list(self.cfg.accounts), name, password)

    def new_session_id(self) -> str:
        return os.urandom(12).hex()

    def monitor(self, session: Session, device: str) -> str:
        ref = session.next_ref()
        session.monitors[ref] = device
        self.watchers.setdefault(device, {})[(id(session), ref)] = session
        return ref

    def unmonitor(self, session: Session, ref: str) -> None:
        device = session.monitors.pop(ref, None)
        watching = self.watchers.get(device, {})
        watching.pop((id(session), ref), None)
        if not watching:
            self.watchers.pop(device, None)

    # -- events ---------------------------------------------------------------------------------------
    def _bus_event(self, event: Event) -> None:
        if event.data is not None and event.topic in (CALL_TOPIC, DEVICE_TOPIC, AGENT_TOPIC, QUEUED_TOPIC):
            self.loop.call_soon_threadsafe(self._apply, event.topic, event.key, event.data)

    def _apply(self, topic: str, key: str, data: dict) -> None:
        try:
            if topic == AGENT_TOPIC:
                self.acd.on_agent(key, data)
            elif topic == QUEUED_TOPIC:
                self.acd.on_turn(data)
            else:
                (self.model.on_call if topic == CALL_TOPIC else self.model.on_device)(data)
        except (KeyError, TypeError, ValueError):
            log.exception("a PBX event the call model could not read: %r", data)

    async def is_queue(self, device: str) -> bool:
        """`device` is the number of an ACD queue (asks the PBX for the queues it does not know yet)."""
        if device not in self.acd.supervisors:
            found = [q for q in (await self.pbx.request("queues")).get("queues", []) if q.get("number")]
            self.acd.queues = {q["number"]: q["name"] for q in found}
            self.acd.supervisors = {q["number"]: frozenset(q.get("supervisors") or ()) for q in found}
        return device in self.acd.supervisors

    def may_monitor_queue(self, session: Session, queue: str) -> bool:
        """A session whose scope is * or names the queue's number, or a staff login supervising that queue."""
        return session.allowed(queue) or (bool(session.extension)
                                          and session.extension in self.acd.supervisors.get(queue, ()))

    def _agent_event(self, device: str, name: str, content: tuple[str, ...], kind: str, data: dict) -> None:
        self._device_event(device, name, *content)
        self.api.device_event(device, kind, data)

    def _deliver(self, ev: CstaEvent) -> None:
        for device in ev.devices:
            for (_, ref), session in list(self.watchers.get(device, {}).items()):
                session.send_event(csta.event(ev.name, ref, *ev.content))
                self.events_sent += 1
        self.api.deliver(ev)

    def _device_event(self, device: str, name: str, *content: str) -> None:
        for (_, ref), session in list(self.watchers.get(device, {}).items()):
            session.send_event(csta.event(name, ref, *content))
            self.events_sent += 1

    def figures(self) -> dict:
        return {"sessions": len(self.sessions), "signed_in": sum(1 for s in self.sessions if s.scope is not None),
                "monitors": sum(len(s.monitors) for s in self.sessions), "calls": len(self.model.calls),
                "requests": self.requests, "events_sent": self.events_sent, "malformed": self.malformed,
                "login_failures": self.login_failures, "dropped_events": self.dropped,
                "refused_connections": self.refused, **self.api.status(),
                **{f"{k}_port": v for k, v in self.ports.items()}}


def _features(lines: list) -> dict[str, dict]:
    """Forwarding and DND of each line (contributions.Line); no forwarding is None."""
    return {line.extension: {"forwardImmediate": line.forward_always or None, "forwardBusy": line.forward_busy or None,
                             "forwardNoAns": line.forward_no_answer or None, "dnd": line.dnd} for line in lines}
