"""SUBSCRIBE/NOTIFY (RFC 6665) as a notifier, with event packages as plug-ins.

A package is registered by name (the Event header's value) with a factory called once per PBX:

    register_package("dialog", lambda core: DialogPackage(core))

and implements the EventPackage protocol below: whether a subscriber may watch a resource, the
state document of a resource, and a way to tell the framework that a resource changed
(`Subscriptions.changed(package, resource)`, which sends a NOTIFY to each of its subscriptions).

The framework keeps the subscription dialogs: the initial SUBSCRIBE creates one (200, then a NOTIFY
with the full state at once), a SUBSCRIBE in it refreshes it (new expiry, a NOTIFY), Expires: 0 ends
it (a last NOTIFY "terminated"), so does its expiry ("terminated;reason=timeout") or a NOTIFY
answered 481/408. An unknown package gets 489, a SUBSCRIBE or NOTIFY in no subscription of ours 481,
too short an Expires 423 with Min-Expires. Limits: MAX_TOTAL subscriptions, MAX_PER_SUBSCRIBER each.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .dialog import Dialog
from .message import Request, Response, response_to

if TYPE_CHECKING:
    from .stack import ServerTx

log = logging.getLogger("officebox.pbx.subscribe")
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 600
MAX_TOTAL = 2000
MAX_PER_SUBSCRIBER = 100


class EventPackage(Protocol):
    name: str
    content_type: str

    def authorize(self, subscriber: str, resource: str) -> int:
        """200 if `subscriber` (an authenticated extension) may watch `resource`, else 403 or 404."""

    def body(self, resource: str, version: int, entity: str) -> bytes:
        """The full state document of `resource` (`version` grows by one per NOTIFY of a subscription)."""


_packages: dict[str, Callable[[object], EventPackage]] = {}


BUILT_IN = ("..blf", "..mwi")  # the box's own packages: dialog (busy lamps), message-summary (MWI)


def register_package(name: str, factory: Callable[[object], EventPackage]) -> None:
    _packages[name.lower()] = factory


def _load_built_in() -> None:
    for module in BUILT_IN:
        importlib.import_module(module, __package__)  # each registers itself on import


def package_names() -> list[str]:
    return sorted(_packages)


class Subscription(Dialog):
    def __init__(self, stack, req: Request, package: EventPackage, subscriber: str, resource: str) -> None:
        contacts = req.contacts()
        super().__init__(stack, call_id=req.call_id, local=req.to, remote=req.from_,
                         target=contacts[0].uri if contacts else req.from_.uri, flow=req.source)
        self.route_set = req.get_all("Record-Route")
        self.remote_cseq = req.cseq[0]
        self.package, self.subscriber, self.resource = package, subscriber, resource
        self.event_id = _event_id(req.get("Event") or "")
        self.version = 0
        self.expires_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.ended = False


def _event_id(value: str) -> str:
    return next((p.strip()[3:] for p in value.split(";")[1:] if p.strip().lower().startswith("id=")), "")


def _package_of(req: Request) -> str:
    return (req.get("Event") or req.get("o") or "").split(";")[0].strip().lower()


class Subscriptions:
    def __init__(self, core) -> None:
        self.core = core
        _load_built_in()
        self.packages: dict[str, EventPackage] = {name: factory(core) for name, factory in _packages.items()}
        self.dialogs: dict[tuple[str, str], Subscription] = {}

    @property
    def stack(self):
        return self.core.stack

    def known(self, req: Request) -> bool:
        return _package_of(req) in self.packages

    def find(self, req: Request) -> Subscription | None:
        return self.dialogs.get((req.call_id, req.to_tag or ""))

    # -- SUBSCRIBE ---------------------------------------------------------------------------------
    def subscribe(self, tx: "ServerTx", req: Request, subscriber: str) -> None:
        """A SUBSCRIBE outside any dialog, from an authenticated `subscriber`, for a known package."""
        package = self.packages[_package_of(req)]
        resource = req.uri.user or ""
        status = package.authorize(subscriber, resource)
        if status != 200:
            tx.reply(status, to_tag=Dialog.fresh_tag())
            return
        expires = self._expires(tx, req)
        if expires is None:
            return
        mine = sum(1 for s in self.dialogs.values() if s.subscriber == subscriber)
        if len(self.dialogs) >= MAX_TOTAL or mine >= MAX_PER_SUBSCRIBER:
            tx.reply(503, to_tag=Dialog.fresh_tag(), Retry_After="60")
            return
        sub = Subscription(self.stack, req, package, subscriber, resource)
        if expires:
            self.dialogs[sub.key] = sub
        self._accept(tx, sub, expires)

    def in_dialog(self, tx: "ServerTx", req: Request, sub: Subscription) -> None:
        """A request in a subscription dialog: a refresh or an unsubscribe (SUBSCRIBE), else 405/481."""
        if req.method != "SUBSCRIBE" or _package_of(req) != sub.package.name:
            tx.reply(481 if req.method in ("SUBSCRIBE", "NOTIFY") else 405)
            return
        if req.cseq[0] <= sub.remote_cseq:
            tx.reply(500, Retry_After="1")
            return
        sub.remote_cseq = req.cseq[0]
        expires = self._expires(tx, req)
        if expires is None:
            return
        self._accept(tx, sub, expires)

    def _expires(self, tx: "ServerTx", req: Request) -> int | None:
        raw = (req.get("Expires") or str(DEFAULT_EXPIRES)).strip()
        if not raw.isdigit() or len(raw) > 9:
            tx.reply(400, "Bad Expires", to_tag=req.to_tag or Dialog.fresh_tag())
            return None
        expires = int(raw)
        if 0 < expires < MIN_EXPIRES:
            resp = response_to(req, 423, to_tag=req.to_tag or Dialog.fresh_tag())
            resp.add("Min-Expires", str(MIN_EXPIRES))
            tx.respond(resp)
            return None
        return min(expires, MAX_EXPIRES)

    def _accept(self, tx: "ServerTx", sub: Subscription, expires: int) -> None:
        resp = response_to(tx.request, 200, to_tag=sub.local_tag)
        resp.add("Expires", str(expires))
        resp.add("Contact", sub.contact())
        tx.respond(resp)
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        if expires == 0:
            self._end(sub, "terminated;reason=timeout")  # unsubscribed: the last state, then no more
            return
        sub.expires_at = time.monotonic() + expires
        sub.timer = asyncio.get_running_loop().call_later(expires, self._end, sub, "terminated;reason=timeout")
        self._notify(sub)

    # -- NOTIFY ------------------------------------------------------------------------------------
    def changed(self, package: str, resource: str) -> None:
        """The state of `resource` in `package` changed: NOTIFY its subscribers."""
        for sub in list(self.dialogs.values()):
            if sub.package.name == package and sub.resource == resource:
                self._notify(sub)

    def _notify(self, sub: Subscription, state: str | None = None) -> None:
        if state is None:
            left = max(0, int(sub.expires_at - time.monotonic()))
            state = f"active;expires={left}"
        sub.version += 1
        entity = f"sip:{sub.resource}@{sub.local.uri.host}"
        req = sub.new_request("NOTIFY", sub.package.body(sub.resource, sub.version - 1, entity),
                              sub.package.content_type)
        req.add("Event", sub.package.name + (f";id={sub.event_id}" if sub.event_id else ""))
        req.add("Subscription-State", state)

        def answered(resp: Response) -> None:
            if resp.status in (408, 481) or (resp.status >= 300 and resp.status not in (401, 407, 491, 503)):
                self._drop(sub)  # the subscriber is gone or refuses: no more NOTIFYs
        sub.send(req, answered)

    def _end(self, sub: Subscription, state: str) -> None:
        if sub.ended:
            return
        self._notify(sub, state)
        self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.ended = True
        if sub.timer is not None:
            sub.timer.cancel()
            sub.timer = None
        self.dialogs.pop(sub.key, None)

    def close(self) -> None:
        for sub in list(self.dialogs.values()):
            self._end(sub, "terminated;reason=noresource")

    def snapshot(self) -> list[dict]:
        now = time.monotonic()
        return [{"package": s.package.name, "subscriber": s.subscriber, "resource": s.resource,
                 "expires_in": max(0, int(s.expires_at - now))} for s in list(self.dialogs.values())]
