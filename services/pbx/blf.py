"""The `dialog` event package (RFC 4235) for extensions: busy lamp fields. Fed from the call events
(events.py, topic pbx.device): each NOTIFY carries the full list of the extension's dialogs with
their state (trying, early, confirmed, terminated); a terminated dialog is reported once, then dropped."""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from appliance.bus import Event

from .events import DEVICE_TOPIC
from .sip.subscribe import register_package

NS = "urn:ietf:params:xml:ns:dialog-info"


def may_watch(cfg, subscriber: str, resource: str) -> bool:
    settings = cfg.extensions.get(resource)
    policy = settings.blf_watchers if settings else "everyone"
    if policy == "same_groups":
        return any(subscriber in g.members and resource in g.members for g in cfg.groups)
    return policy == "everyone"


class DialogPackage:
    name = "dialog"
    content_type = "application/dialog-info+xml"

    def __init__(self, core) -> None:
        self.core = core
        self.dialogs: dict[str, dict[str, dict]] = {}  # extension -> call id -> last device event
        self._off = core.events.bus.subscribe(DEVICE_TOPIC, self._device_event)

    def authorize(self, subscriber: str, resource: str) -> int:
        """404 for an unknown extension; 403 where its `blf_watchers` policy leaves `subscriber` out.
        Park slots (features/park.py) are watched by everyone."""
        if resource not in self.core.users:
            return 200 if resource in self.core.cfg.park.numbers() else 404
        return 200 if subscriber == resource or may_watch(self.core.cfg, subscriber, resource) else 403

    def _device_event(self, event: Event) -> None:
        if event.topic != DEVICE_TOPIC or event.data is None:
            return
        data = event.data
        mine = self.dialogs.setdefault(event.key, {})
        mine[data["call"]] = data
        subs = getattr(self.core, "subscriptions", None)
        if subs is not None:
            subs.changed(self.name, event.key)
        if data["dialog"] == "terminated":
            mine.pop(data["call"], None)
            if not mine:
                self.dialogs.pop(event.key, None)

    def body(self, resource: str, version: int, entity: str) -> bytes:
        """Each dialog with the SIP ids of the watched phone's leg (call-id, local-tag: the phone's,
        remote-tag: ours), so a BLF key can pick a ringing call up with INVITE/Replaces; `local` names the
        phone and, while it rings, its target is the directed pickup code + the extension (the key
        dials it); `remote` is the other party."""
        host = entity.partition("@")[2]
        legs = self._legs(resource) if self.dialogs.get(resource) else {}
        pickup = self.core.cfg.feature_codes.directed_pickup + resource
        parts = [f'<?xml version="1.0"?>\n<dialog-info xmlns="{NS}" version="{version}" state="full" '
                 f'entity={quoteattr(entity)}>']
        for call_id, d in sorted(self.dialogs.get(resource, {}).items()):
            leg = legs.get(call_id)
            phone_tag = (leg.remote.tag or getattr(leg, "early_tag", "")) if leg is not None else ""
            ids = (f" call-id={quoteattr(leg.call_id)} local-tag={quoteattr(phone_tag)} "
                   f"remote-tag={quoteattr(leg.local_tag)}") if leg is not None else ""
            parts.append(f'<dialog id={quoteattr(call_id)}{ids} direction="{d["direction"]}">'
                         f'<state>{d["dialog"]}</state>')
            if d["dialog"] != "terminated":
                target = pickup if d["dialog"] == "early" and d["direction"] == "recipient" else resource
                parts.append(f"<local><identity>sip:{escape(resource)}@{escape(host)}</identity>"
                             f"<target uri={quoteattr(f'sip:{target}@{host}')}/></local>")
            if d.get("peer"):
                peer = escape(d["peer"])
                parts.append(f"<remote><identity>sip:{peer}@{escape(host)}</identity>"
                             f"<target uri={quoteattr('sip:' + d['peer'] + '@' + host)}/></remote>")
            parts.append("</dialog>")
        parts.append("</dialog-info>\n")
        return "".join(parts).encode()

    def _legs(self, resource: str) -> dict:
        """call id -> the SIP leg of `resource`'s phone in that call (the ringing or connected one)."""
        found = {}
        for leg in list(self.core.dialogs.values()):
            if leg.extension == resource and not leg.ended and not leg.abandoned:
                found.setdefault(leg.call.id, leg)
        return found

    def close(self) -> None:
        self._off()


register_package("dialog", DialogPackage)
