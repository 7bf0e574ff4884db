"""Where an object of the configuration is used: the "used by" list a delete confirmation shows.

Works on the document (a dict as the engine stores it) by the known reference fields of the schema, not
by searching strings: each kind of object (an extension, a ring group, a trunk, a call queue, an auto
attendant, a conference room, a time profile, a music on hold class, an attendant's menu) lists the fields
that may name it. An entry says the
section, the referencing object, the field and the web admin page (endpoint and arguments) that edits
it; `blocking` marks references the configuration refuses to leave dangling (PbxConfig._coherent,
attendant_problems, PbxService.validate): deleting the object first needs that reference removed.

A user (by login, besides their extension) is named by the phones provisioned for them, the mail aliases
delivering to them and the proxy's access groups; the services refuse those dangling (their validate).

A menu is keyed "<attendant>/<menu>": other menus of that attendant lead to it (option "menu") and the
attendant's entry per state names it. A music on hold class is named by an extension's or a queue's
moh_class; those references do not block (an unknown class plays the default one).

An entry's `title` is the referencing object's own name where it has one (a ring group's name, a queue's or
a room's title, the full name of an extension's user), for a label like "Ring group Sales (600)".

Destinations (services/pbx/config.py TARGET) name an object by its number (an extension, a group, a
queue's or a room's number) or as an application (voicemail:201, assistant:201, queue:sales,
attendant:main, conference:board).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

KINDS = ("extension", "group", "trunk", "queue", "attendant", "conference", "time_profile", "moh_class", "menu",
         "user")


@dataclass(frozen=True)
class UsedBy:
    section: str                 # "pbx.groups", "pbx.dids"...
    name: str                    # the referencing object, as the admin knows it
    field: str                   # the field holding the reference
    endpoint: str                # the web admin page that edits it (empty: no page, `config set`)
    args: dict = field(default_factory=dict, compare=False, hash=False)
    blocking: bool = False       # the schema refuses the delete while this reference stays
    title: str = field(default="", compare=False)  # the referencing object's own name, when it has one


def _names(doc: dict, kind: str, key: str) -> set[str]:
    """The values a destination field holds when it points at the object."""
    pbx = doc.get("pbx", {})
    if kind == "extension":
        return {key, f"voicemail:{key}", f"assistant:{key}"}
    if kind == "group":
        return {key}
    if kind == "queue":
        numbers = {q.get("number") for q in pbx.get("queues", []) if q.get("name") == key}
        return {f"queue:{key}", *(n for n in numbers if n)}
    if kind == "conference":
        numbers = {r.get("number") for r in pbx.get("conference_rooms", []) if r.get("name") == key}
        return {f"conference:{key}", *(n for n in numbers if n)}
    if kind == "attendant":
        return {f"attendant:{key}"}
    return set()


def _destinations(doc: dict) -> Iterator[tuple[str, str, str, str, dict, str | None]]:
    """Every destination field of the document: (section, name, field, endpoint, args, value)."""
    pbx = doc.get("pbx", {})
    for g in pbx.get("groups", []):
        yield "pbx.groups", g.get("number", ""), "overflow", "pbx.item_edit", \
            {"section": "groups", "key": g.get("number", "")}, g.get("overflow")
    for d in pbx.get("dids", []):
        yield "pbx.dids", d.get("number", ""), "destination", "pbx.item_edit", \
            {"section": "dids", "key": d.get("number", "")}, d.get("destination")
    for q in pbx.get("queues", []):
        yield "pbx.queues", q.get("name", ""), "overflow", "callcentre.queue_form", {"name": q.get("name", "")}, \
            q.get("overflow")
    for ext, settings in pbx.get("extensions", {}).items():
        for name in ("forward_always", "forward_busy", "forward_no_answer"):
            yield "pbx.extensions", ext, name, "pbx.extension_edit", {"ext": ext}, settings.get(name)
    for a in pbx.get("attendants", []):
        yield "pbx.attendants", a.get("name", ""), "fallback", "attendant.edit", {"name": a.get("name", "")}, \
            a.get("fallback")
    for number, dest in pbx.get("application_numbers", {}).items():
        yield "pbx.application_numbers", number, "destination", "", {}, dest
    yield "pbx.park", "park", "fallback", "features.index", {}, pbx.get("park", {}).get("fallback")


def used_by(doc: dict, kind: str, key: str) -> list[UsedBy]:
    """What in `doc` refers to the `kind` object identified by `key` (its number or name)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    pbx = doc.get("pbx", {})
    found: list[UsedBy] = []
    add = found.append
    targets = _names(doc, kind, key)
    for section, name, fld, endpoint, args, value in _destinations(doc):
        if value and value in targets and not (kind == "extension" and section == "pbx.extensions" and name == key):
            # a DID to a plain number must reach an extension or a group (PbxService.validate)
            add(UsedBy(section, name, fld, endpoint, args, blocking=section == "pbx.dids" and value == key))
    for a in pbx.get("attendants", []):
        att = a.get("name", "")
        for menu in a.get("menus", []):
            for option in menu.get("options", []):
                action, target = option.get("action"), option.get("target")
                hit = (kind == "extension" and action in ("extension", "voicemail") and target == key) \
                    or (kind == "group" and action == "group" and target == key) \
                    or (kind == "attendant" and action == "attendant" and target == key and att != key)
                if hit:
                    add(UsedBy("pbx.attendants", f"{att}/{menu.get('name', '')}",
                               f"options.{option.get('key', '')}", "attendant.menu",
                               {"name": att, "menu": menu.get("name", "")}, blocking=True))
        if kind == "time_profile" and a.get("profile") == key:
            add(UsedBy("pbx.attendants", att, "profile", "attendant.edit", {"name": att}, blocking=True))
        if kind == "extension" and a.get("operator") == key:
            add(UsedBy("pbx.attendants", att, "operator", "attendant.edit", {"name": att}, blocking=True))
    if kind == "extension":
        found += _extension_uses(pbx, key)
    if kind == "group":
        if key in pbx.get("recording", {}).get("groups", []):
            add(UsedBy("pbx.recording", "recording", "groups", "recording.index", {}, blocking=True))
    if kind == "moh_class":
        for ext, settings in pbx.get("extensions", {}).items():
            if settings.get("moh_class") == key:
                add(UsedBy("pbx.extensions", ext, "moh_class", "pbx.extension_edit", {"ext": ext}))
        for q in pbx.get("queues", []):
            if q.get("moh_class", "default") == key:
                add(UsedBy("pbx.queues", q.get("name", ""), "moh_class", "callcentre.queue_form",
                           {"name": q.get("name", "")}))
    if kind == "menu":
        found += _menu_uses(pbx, key)
    if kind == "user":
        found += _login_uses(doc, key)
    if kind == "trunk":
        for r in pbx.get("routes", []):
            if key in r.get("trunks", []):
                add(UsedBy("pbx.routes", r.get("name", ""), "trunks", "pbx.item_edit",
                           {"section": "routes", "key": r.get("name", "")}, blocking=True))
        if key in pbx.get("recording", {}).get("trunks", []):
            add(UsedBy("pbx.recording", "recording", "trunks", "recording.index", {}, blocking=True))
        for t in pbx.get("accounting", {}).get("tariffs", []):
            if t.get("trunk") == key:
                add(UsedBy("pbx.accounting", t.get("name") or t.get("prefix") or "*", "trunk", "accounting.tariffs"))
    return [replace(u, title=_title(doc, u.section, u.name)) for u in found]


def _title(doc: dict, section: str, name: str) -> str:
    """The own name of the object `name` of `section`, when it has one ("" otherwise)."""
    pbx = doc.get("pbx", {})
    if section == "pbx.extensions":
        return next((u.get("full_name", "") for u in doc.get("users", []) if u.get("extension") == name), "")
    lists = {"pbx.groups": ("groups", "number", "name"), "pbx.paging_groups": ("paging_groups", "number", "name"),
             "pbx.queues": ("queues", "name", "title"), "pbx.conference_rooms": ("conference_rooms", "name", "title")}
    if section == "provisioning.phones":
        return next((p.get("label") or "" for p in doc.get("provisioning", {}).get("phones", [])
                     if p.get("mac") == name), "")
    if section in lists:
        items, key, own = lists[section]
        return next((i.get(own) or "" for i in pbx.get(items, []) if i.get(key) == name), "")
    return ""


def _login_uses(doc: dict, login: str) -> Iterator[UsedBy]:
    for phone in doc.get("provisioning", {}).get("phones", []):
        mac = phone.get("mac", "")
        if phone.get("user") == login:
            yield UsedBy("provisioning.phones", mac, "user", "lan.phones", {}, blocking=True)
        if any(h.get("user") == login for h in phone.get("handsets", [])):
            yield UsedBy("provisioning.phones", mac, "handsets", "lan.phones", {}, blocking=True)
    for alias in doc.get("mail", {}).get("aliases", []):
        if login in alias.get("targets", []):
            yield UsedBy("mail.aliases", alias.get("name", ""), "targets", "mail.aliases", {}, blocking=True)
    for group in doc.get("proxy", {}).get("groups", []):
        if login in group.get("users", []):
            yield UsedBy("proxy.groups", group.get("name", ""), "users", "proxy.index", {}, blocking=True)


def _menu_uses(pbx: dict, key: str) -> Iterator[UsedBy]:
    """What leads to the menu `key` ("<attendant>/<menu>") within its attendant."""
    att_name, _, menu = key.partition("/")
    for a in pbx.get("attendants", []):
        if a.get("name") != att_name:
            continue
        for other in a.get("menus", []):
            if other.get("name") == menu:
                continue
            for option in other.get("options", []):
                if option.get("action") == "menu" and option.get("target") == menu:
                    yield UsedBy("pbx.attendants", f"{att_name}/{other.get('name', '')}",
                                 f"options.{option.get('key', '')}", "attendant.menu",
                                 {"name": att_name, "menu": other.get("name", "")}, blocking=True)
        for state, entry in a.get("entry", {}).items():
            if entry == menu:
                yield UsedBy("pbx.attendants", att_name, f"entry.{state}", "attendant.edit", {"name": att_name},
                             blocking=True)


def _extension_uses(pbx: dict, ext: str) -> Iterator[UsedBy]:
    for g in pbx.get("groups", []):
        if ext in g.get("members", []):
            yield UsedBy("pbx.groups", g.get("number", ""), "members", "pbx.item_edit",
                         {"section": "groups", "key": g.get("number", "")}, blocking=True)
    for p in pbx.get("paging_groups", []):
        if ext in p.get("members", []):
            yield UsedBy("pbx.paging_groups", p.get("number", ""), "members", "pbx.item_edit",
                         {"section": "paging_groups", "key": p.get("number", "")}, blocking=True)
    for q in pbx.get("queues", []):
        args = {"name": q.get("name", "")}
        if any(m.get("agent") == ext for m in q.get("members", [])):
            yield UsedBy("pbx.queues", q.get("name", ""), "members", "callcentre.queue_form", args, blocking=True)
        if ext in q.get("supervisors", []):
            yield UsedBy("pbx.queues", q.get("name", ""), "supervisors", "callcentre.queue_form", args)
    for other, settings in pbx.get("extensions", {}).items():
        if other != ext and any(c.get("kind") == "colleague" and c.get("number") == ext
                                for c in settings.get("assistant", {}).get("choices", [])):
            yield UsedBy("pbx.extensions", other, "assistant.choices", "assistant.extension", {"ext": other})
    for r in pbx.get("conference_rooms", []):
        if ext in r.get("leaders", []):
            yield UsedBy("pbx.conference_rooms", r.get("name", ""), "leaders", "conference.edit",
                         {"name": r.get("name", "")})
    for s in pbx.get("secretaries", []):
        for role in ("manager", "secretary"):
            if s.get(role) == ext:
                yield UsedBy("pbx.secretaries", f"{s.get('manager')}/{s.get('secretary')}", role,
                             "recording.index", {}, blocking=True)
    if ext in pbx.get("recording", {}).get("extensions", []):
        yield UsedBy("pbx.recording", "recording", "extensions", "recording.index", {}, blocking=True)
    if pbx.get("operator") == ext:
        yield UsedBy("pbx", "pbx", "operator", "", {})
    if pbx.get("voicemail", {}).get("operator") == ext:
        yield UsedBy("pbx.voicemail", "voicemail", "operator", "", {})


def blocking(entries: list[UsedBy]) -> list[UsedBy]:
    return [e for e in entries if e.blocking]
