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
        """404 for an unknown extension; 403 where its `blf_watchers` policy leaves `subscriber` out."""
        if resource not in self.core.users:
            return 404
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
        host = entity.partition("@")[2]
        parts = [f'<?xml version="1.0"?>\n<dialog-info xmlns="{NS}" version="{version}" state="full" '
                 f'entity={quoteattr(entity)}>']
        for call_id, d in sorted(self.dialogs.get(resource, {}).items()):
            parts.append(f'<dialog id={quoteattr(call_id)} direction="{d["direction"]}">'
                         f'<state>{d["dialog"]}</state>')
            if d.get("peer"):
                parts.append(f"<remote><identity>sip:{escape(d['peer'])}@{escape(host)}</identity></remote>")
            parts.append("</dialog>")
        parts.append("</dialog-info>\n")
        return "".join(parts).encode()

    def close(self) -> None:
        self._off()


register_package("dialog", DialogPackage)
