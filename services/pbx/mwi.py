"""Message waiting (RFC 3842): the `message-summary` event package, and unsolicited NOTIFYs for phones
that do not subscribe (ExtensionSettings.mwi_unsolicited).

Per registered device: every subscription (each phone's own dialog) is NOTIFYed; with mwi_unsolicited,
each registered contact of the extension WITHOUT a live message-summary subscription of its own (same
flow or same Contact) gets out-of-dialog NOTIFYs, so a desk phone that subscribes is never told twice
and a phone that does not beside it is still told. The PBX decides this per contact from what the phone
does, rather than from a per-phone list: contacts change at every registration, softphones are in no
provisioning list, and the PBX may not read the provisioning section; the per-extension switch stays as
the admin's consent (some phones answer unsolicited NOTIFYs with errors).

The source of truth is the retained bus topic `pbx.mailbox` (key = extension, data {"extension", "new",
"old"}), published by the voicemail store whenever a box changes. A device may watch only its own
extension's box. Every change NOTIFYs the box's subscriptions at once and, for an extension set so, sends
an out-of-dialog NOTIFY to each of its registered contacts; a contact that registers later gets the
current state within SWEEP_SECONDS."""
from __future__ import annotations

import asyncio
import logging
import threading

from appliance.bus import Event

from .sip.dialog import Dialog
from .sip.message import NameAddr, Uri, new_call_id
from .sip.subscribe import register_package

log = logging.getLogger("officebox.pbx.mwi")
MAILBOX_TOPIC = "pbx.mailbox"
CONTENT_TYPE = "application/simple-message-summary"
SWEEP_SECONDS = 2.0
NOTIFY_TIMEOUT = 8.0


def summary(account: str, new: int, old: int) -> bytes:
    waiting = "yes" if new > 0 else "no"
    return (f"Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\n"
            f"Voice-Message: {new}/{old} (0/0)\r\n").encode()


def _count(value) -> int:
    return value if isinstance(value, int) and 0 <= value < 1_000_000 else 0


class MessageSummaryPackage:
    name = "message-summary"
    content_type = CONTENT_TYPE

    def __init__(self, core) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.counts: dict[str, tuple[int, int]] = {}
        self.sent: dict[tuple[str, str], tuple[int, int]] = {}  # (extension, contact) -> counts it was told
        bus = core.events.bus
        for key, data in bus.retained(MAILBOX_TOPIC).items():
            self._store(key, data)
        self._off = bus.subscribe(MAILBOX_TOPIC, self._event)
        self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    # -- the event package -------------------------------------------------------------------------
    def authorize(self, subscriber: str, resource: str) -> int:
        """404 for an unknown extension; 403 for anyone's box but the subscriber's own."""
        if resource not in self.core.users:
            return 404
        return 200 if subscriber == resource else 403

    def body(self, resource: str, version: int, entity: str) -> bytes:
        return summary(entity, *self.counts.get(resource, (0, 0)))

    # -- the mailbox counts ------------------------------------------------------------------------
    def _store(self, key: str, data: dict | None) -> bool:
        counts = (0, 0) if data is None else (_count(data.get("new")), _count(data.get("old")))
        if self.counts.get(key, (0, 0)) == counts:
            return False
        if counts == (0, 0):
            self.counts.pop(key, None)
        else:
            self.counts[key] = counts
        return True

    def _event(self, event: Event) -> None:
        """A bus callback: may come from another thread (a store writing in a worker)."""
        if event.topic != MAILBOX_TOPIC or not isinstance(event.key, str):
            return
        if threading.get_ident() == self._thread:
            self._changed(event)
        else:
            self.loop.call_soon_threadsafe(self._changed, event)

    def _changed(self, event: Event) -> None:
        if not self._store(event.key, event.data if isinstance(event.data, dict) else None):
            return
        subs = getattr(self.core, "subscriptions", None)
        if subs is not None:
            subs.changed(self.name, event.key)
        self._unsolicited(event.key)

    # -- unsolicited NOTIFY ------------------------------------------------------------------------
    def wants_unsolicited(self, extension: str) -> bool:
        settings = self.core.cfg.extensions.get(extension)
        return bool(settings and settings.mwi_unsolicited) and extension in self.core.users

    def _unsolicited(self, extension: str, only_new: bool = False) -> None:
        if not self.wants_unsolicited(extension):
            return
        counts = self.counts.get(extension, (0, 0))
        subscribed = self._subscribed(extension)
        for binding in self.core.location.lookup(extension):
            key = (extension, binding.contact)
            if binding.flow in subscribed or binding.contact in subscribed:
                self.sent.pop(key, None)  # told in its dialog; told again unsolicited if it stops subscribing
                continue
            if only_new and self.sent.get(key) == counts:
                continue
            self.sent[key] = counts
            self._send(extension, binding, counts)

    def _subscribed(self, extension: str) -> set:
        """The flows and Contact URIs of the extension's live message-summary subscriptions."""
        subs = getattr(self.core, "subscriptions", None)
        found: set = set()
        for sub in (subs.dialogs.values() if subs is not None else ()):
            if sub.package.name == self.name and sub.resource == extension and not sub.ended:
                found.update((sub.flow, str(sub.target)))
        return found

    def _send(self, extension: str, binding, counts: tuple[int, int]) -> None:
        stack = self.core.stack
        host = stack.local_ip(binding.flow[1])
        try:
            target = Uri.parse(binding.contact)
        except ValueError:
            return
        account = Uri.parse(f"sip:{extension}@{host}")
        dialog = Dialog(stack, call_id=new_call_id(), local=NameAddr(account), remote=NameAddr(account),
                        target=target, flow=binding.flow)  # a one-request dialog, kept nowhere
        req = dialog.new_request("NOTIFY", summary(str(account), *counts), CONTENT_TYPE)
        req.add("Event", self.name)
        req.add("Subscription-State", "active")

        def answered(resp) -> None:
            if resp.status >= 300:
                log.info("unsolicited message-summary NOTIFY to %s answered %s", binding.contact, resp.status)
        dialog.send(req, answered, NOTIFY_TIMEOUT)

    def _sweep(self) -> None:
        """Contacts registered since the last change get the current state; forgotten contacts are dropped."""
        try:
            live = set()
            for extension in list(self.core.location.bindings):
                if self.wants_unsolicited(extension):
                    self._unsolicited(extension, only_new=True)
                    live.update((extension, b.contact) for b in self.core.location.lookup(extension))
            for key in [k for k in self.sent if k not in live]:
                del self.sent[key]
        finally:
            self._sweeper = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def close(self) -> None:
        self._off()
        self._sweeper.cancel()


register_package("message-summary", MessageSummaryPackage)
