"""The call model CTI reads: devices (extensions), calls and their connections with CSTA connection
states, kept from the PBX's bus events (pbx.call, pbx.device; services/pbx/events.py), and the CSTA
events each change means (ECMA-269 clause 17), told to the listener with the devices concerned.

Connection states: null, initiated, alerting, connected, hold, queued, fail (ECMA-323 spelling)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import csta
from .xmlsafe import element, text_element


@dataclass
class CallState:
    id: str
    caller: str = ""
    dialled: str = ""
    connections: dict[str, str] = field(default_factory=dict)  # device -> connection state
    holders: set[str] = field(default_factory=set)
    diverted: bool = False
    left: list[str] = field(default_factory=list)  # devices that left the call while it went on (transfers)


@dataclass
class CstaEvent:
    name: str  # DeliveredEvent, ...
    call: str
    devices: frozenset[str]  # whose monitors get it
    content: tuple[str, ...]  # the XML after monitorCrossRefID
    time: float = 0.0  # the PBX's time of the change (latency figures)
    subject: str = ""  # the device whose connection changed
    calling: str = ""
    called: str = ""
    connections: tuple[tuple[str, str], ...] = ()  # (device, connection state) after the change

    def as_json(self) -> dict:
        """The JSON API's form of the event (services/cti/openapi.json CallEvent)."""
        return {"type": "call", "event": JSON_NAMES.get(self.name, self.name), "call": self.call,
                "device": self.subject, "calling": self.calling, "called": self.called,
                "connections": dict(self.connections), "time": self.time}


JSON_NAMES = {"ServiceInitiatedEvent": "initiated", "OriginatedEvent": "originated", "DeliveredEvent": "delivered",
              "EstablishedEvent": "established", "HeldEvent": "held", "RetrievedEvent": "retrieved",
              "ConnectionClearedEvent": "cleared", "TransferedEvent": "transferred", "DivertedEvent": "diverted",
              "FailedEvent": "failed", "ConferencedEvent": "conferenced"}
Listener = Callable[[CstaEvent], None]


class CallModel:
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.calls: dict[str, CallState] = {}
        self.made: dict[str, str] = {}  # call id -> the device a MakeCall rang first (3PCC)
        self.merged: dict[str, tuple[str, set[str]]] = {}  # a conferenced held call -> (the conference, its devices)
        self.extensions: set[str] = set()
        self.events = 0

    # -- queries ------------------------------------------------------------------------------------
    def device_calls(self, device: str) -> list[tuple[str, str]]:
        return [(c.id, c.connections[device]) for c in self.calls.values() if device in c.connections]

    def call(self, call_id: str) -> CallState | None:
        return self.calls.get(call_id)

    # -- input ----------------------------------------------------------------------------------------
    def seed(self, retained_calls: dict[str, dict]) -> None:
        for call_id, data in retained_calls.items():
            state = "connected" if data.get("state") == "connected" else "alerting"
            c = self.calls.setdefault(call_id, CallState(call_id, data.get("caller", ""), data.get("dialled", "")))
            for device in data.get("devices") or []:
                c.connections[device] = "hold" if device in (data.get("holders") or []) else state

    def on_call(self, data: dict) -> None:
        merged = self.merged.get(data["call"])
        if merged is not None:  # the PBX's call of a party that joined a conference: its end is that party's
            if data["event"] == "cleared":
                self.merged.pop(data["call"], None)
                conf = self.calls.get(merged[0])
                for device in sorted(merged[1]):
                    if conf is not None:
                        self._cleared(conf, device, data.get("time", 0.0))
            return
        c = self.calls.get(data["call"])
        if c is None:
            if data["event"] == "cleared":
                return
            c = self.calls[data["call"]] = CallState(data["call"])
        c.caller, c.dialled = data.get("caller", c.caller), data.get("dialled", c.dialled)
        event, when = data["event"], data.get("time", 0.0)
        holders = set(data.get("holders") or ())
        if event in ("held", "retrieved"):
            self._hold_change(c, holders, when)
        elif event == "transferred":
            transferring = c.left[-1] if c.left else ""
            self._emit(c, "TransferedEvent", transferring or c.caller, set(c.connections) | set(c.left), when,
                       csta.connection("primaryOldCall", c.id, transferring or c.caller),
                       element("transferringDevice", csta.device_id(transferring)),
                       element("transferredToDevice", csta.device_id(c.dialled)),
                       element("transferredConnections", *(element("connectionListItem", csta.connection(
                           "newConnection", c.id, d)) for d in sorted(c.connections))),
                       text_element("localConnectionInfo", "connected"), text_element("cause", "transfer"))
            c.left = []
        elif event == "cleared":
            failing = data.get("disposition") in csta.CAUSES and c.caller in c.connections
            if failing:
                self._emit(c, "FailedEvent", c.caller, set(c.connections), when,
                           csta.connection("failedConnection", c.id, c.caller),
                           element("failingDevice", csta.device_id(c.dialled)),
                           element("callingDevice", csta.device_id(c.caller)),
                           element("calledDevice", csta.device_id(c.dialled)),
                           element("lastRedirectionDevice", element("notKnown")),
                           text_element("localConnectionInfo", "fail"),
                           text_element("cause", csta.CAUSES[data["disposition"]]))
            self.calls.pop(c.id, None)
            for device in list(c.connections):
                self._cleared(c, device, when)
            self.made.pop(c.id, None)
        c.holders = holders

    def on_device(self, data: dict) -> None:
        device, event, when = data["device"], data["event"], data.get("time", 0.0)
        merged = self.merged.get(data["call"])
        if merged is not None:
            if device not in merged[1]:
                return
            data = {**data, "call": merged[0]}
        c = self.calls.get(data["call"])
        if c is None:
            if event == "cleared":
                return
            c = self.calls[data["call"]] = CallState(data["call"])
        old = c.connections.get(device, "null")
        if event == "cleared":
            self._cleared(c, device, when)
        elif event == "initiated" and old == "null":
            self._initiated(c, device, "newCall", when)
            self._originated(c, device, data.get("peer") or c.dialled, when)
        elif event == "alerting" and old == "null":
            if self.made.get(c.id) == device:  # MakeCall: the user's own phone rings first
                self._initiated(c, device, "makeCall", when)
                return
            c.connections[device] = "alerting"
            self._diverted(c, device, when)
            self._emit(c, "DeliveredEvent", device, set(c.connections), when,
                       csta.connection("connection", c.id, device),
                       element("alertingDevice", csta.device_id(device)),
                       element("callingDevice", csta.device_id(c.caller)),
                       element("calledDevice", csta.device_id(c.dialled or device)),
                       element("lastRedirectionDevice", element("notKnown")),
                       text_element("localConnectionInfo", "alerting"), text_element("cause", "newCall"))
        elif event == "connected" and old in ("null", "initiated", "alerting"):
            if self.made.get(c.id) == device:
                c.connections[device] = "connected"
                self._originated(c, device, c.caller, when)
                return
            c.connections[device] = "connected"
            if old == "initiated" and device == c.caller:
                return  # the caller's side of a call it placed: the callee's Established says it
            self._emit(c, "EstablishedEvent", device, set(c.connections), when,
                       csta.connection("establishedConnection", c.id, device),
                       element("answeringDevice", csta.device_id(device)),
                       element("callingDevice", csta.device_id(c.caller)),
                       element("calledDevice", csta.device_id(c.dialled or device)),
                       element("lastRedirectionDevice", element("notKnown")),
                       text_element("localConnectionInfo", "connected"), text_element("cause", "newCall"))

    def conferenced(self, held: str, call: str, device: str, added: str, parts: list[tuple[str, str]]) -> None:
        """`device` joined its held call `held` into `call` (ConferenceCall): every party is in `call` now."""
        c = self.calls.get(call)
        if c is None:
            return
        old = self.calls.pop(held, None)
        joined = {d for d, was in parts if was != call}
        self.merged[held] = (call, joined)
        for d in joined:
            if old is not None:
                old.connections.pop(d, None)
            c.connections[d] = "connected"
        self._emit(c, "ConferencedEvent", device, set(c.connections) | {device}, time.time(),
                   csta.connection("primaryOldCall", held, device), csta.connection("secondaryOldCall", call, device),
                   element("conferencingDevice", csta.device_id(device)), element("addedParty", csta.device_id(added)),
                   element("conferenceConnections", *(element("connectionListItem", csta.connection(
                       "newConnection", call, d), csta.connection("oldConnection", was, d)) for d, was in parts)),
                   text_element("localConnectionInfo", "connected"), text_element("cause", "conference"))

    # -- helpers --------------------------------------------------------------------------------------
    def _initiated(self, c: CallState, device: str, cause: str, when: float) -> None:
        c.connections[device] = "initiated"
        self._emit(c, "ServiceInitiatedEvent", device, {device}, when,
                   csta.connection("initiatedConnection", c.id, device),
                   element("initiatingDevice", csta.device_id(device)),
                   text_element("localConnectionInfo", "initiated"), text_element("cause", cause))

    def _originated(self, c: CallState, device: str, called: str, when: float) -> None:
        self._emit(c, "OriginatedEvent", device, {device}, when, csta.connection("originatedConnection", c.id, device),
                   element("callingDevice", csta.device_id(device)), element("calledDevice", csta.device_id(called)),
                   text_element("localConnectionInfo", "connected"), text_element("cause", "newCall"))

    def _diverted(self, c: CallState, device: str, when: float) -> None:
        """A call dialled to one extension rings another (forwarding, a group): Diverted for the first."""
        if c.diverted or not c.dialled or c.dialled == device or c.dialled not in self.extensions:
            return
        c.diverted = True
        self._emit(c, "DivertedEvent", c.dialled, {c.dialled, device}, when,
                   csta.connection("connection", c.id, c.dialled),
                   element("divertingDevice", csta.device_id(c.dialled)),
                   element("newDestination", csta.device_id(device)),
                   element("callingDevice", csta.device_id(c.caller)),
                   element("calledDevice", csta.device_id(c.dialled)),
                   element("lastRedirectionDevice", csta.device_id(c.dialled)),
                   text_element("localConnectionInfo", "null"), text_element("cause", "redirected"))

    def _hold_change(self, c: CallState, holders: set[str], when: float) -> None:
        for device in sorted(holders - c.holders):
            if device in c.connections:
                c.connections[device] = "hold"
                self._emit(c, "HeldEvent", device, set(c.connections), when,
                           csta.connection("heldConnection", c.id, device),
                           element("holdingDevice", csta.device_id(device)),
                           text_element("localConnectionInfo", "hold"), text_element("cause", "normal"))
        for device in sorted(c.holders - holders):
            if device in c.connections:
                c.connections[device] = "connected"
                self._emit(c, "RetrievedEvent", device, set(c.connections), when,
                           csta.connection("retrievedConnection", c.id, device),
                           element("retrievingDevice", csta.device_id(device)),
                           text_element("localConnectionInfo", "connected"), text_element("cause", "normal"))

    def _cleared(self, c: CallState, device: str, when: float) -> None:
        if c.connections.pop(device, None) is None:
            return
        if c.id in self.calls:
            c.left = [*c.left[-3:], device]
        self._emit(c, "ConnectionClearedEvent", device, set(c.connections) | {device}, when,
                   csta.connection("droppedConnection", c.id, device),
                   element("releasingDevice", csta.device_id(device)),
                   text_element("localConnectionInfo", "null"), text_element("cause", "normalClearing"))

    def _emit(self, c: CallState, name: str, subject: str, devices: set[str], when: float, *content: str) -> None:
        self.events += 1
        if c.caller in self.extensions and c.id not in self.made:
            devices = devices | {c.caller}  # the calling device is involved in a call placed for it
        self.listener(CstaEvent(name, c.id, frozenset(devices), content, when, subject, c.caller, c.dialled,
                                tuple(sorted(c.connections.items()))))
