"""Choices for fields that name something of the configuration (an extension, a ring group, a queue, a
trunk): shown as a <datalist> so the admin picks a name instead of typing an identifier."""
from __future__ import annotations

from flask_babel import gettext as _

from webadmin import core


def extensions() -> list[tuple[str, str]]:
    """(extension number, whose) of every user with an extension."""
    return sorted((u.extension, u.full_name or u.login) for u in core.current_config().users if u.extension)


def destinations() -> list[tuple[str, str]]:
    """Every internal number a call can be sent to: extensions, ring groups, paging groups and queues."""
    pbx = core.current_config().pbx
    out = extensions()
    out += [(g.number, _("ring group %(name)s", name=g.name or g.number)) for g in pbx.groups]
    out += [(g.number, _("paging group %(name)s", name=g.name or g.number)) for g in pbx.paging_groups]
    out += [(q.number, _("queue %(name)s", name=q.name)) for q in pbx.queues]
    return out


def trunks() -> list[tuple[str, str]]:
    return [(t.name, t.host) for t in core.current_config().pbx.trunks]


def users() -> list[tuple[str, str]]:
    return [(u.login, u.full_name) for u in core.current_config().users]


KINDS = {"extensions": extensions, "destinations": destinations, "trunks": trunks, "users": users}


def choices(*kinds: str) -> dict[str, list[tuple[str, str]]]:
    """{kind: [(value, label)]} for the templates' m.datalist(kind, ...)."""
    return {kind: KINDS[kind]() for kind in kinds}
