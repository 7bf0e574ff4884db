"""Delete confirmations that say where the object is used (appliance.references) before the admin confirms.

A GET, or a POST without the confirm field, shows the confirmation page; only a POST with confirm=1 goes on
to delete. The page checks the document without the object as the engine would: when the configuration
would refuse the delete (a reference left dangling), it says why and offers no delete button.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

from flask import render_template, request
from flask_babel import gettext as _

from appliance.apply import ConfigError
from appliance.references import UsedBy, used_by
from webadmin import core
from webadmin.core import N_

# the words of a reference's section and field (appliance.references), for labels like "Ring group Sales (600)"
SECTIONS = {"pbx.groups": N_("Ring group"), "pbx.paging_groups": N_("Paging group"),
            "pbx.dids": N_("Incoming number"), "pbx.queues": N_("Call queue"), "pbx.extensions": N_("Extension"),
            "pbx.attendants": N_("Auto attendant"), "pbx.application_numbers": N_("Application number"),
            "pbx.routes": N_("Outbound route"), "pbx.conference_rooms": N_("Conference room"),
            "pbx.secretaries": N_("Manager and secretary"), "pbx.accounting": N_("Call tariff"),
            "provisioning.phones": N_("Phone"), "mail.aliases": N_("Mail alias"), "proxy.groups": N_("Proxy group")}
SINGLE = {"pbx.park": N_("Call park"), "pbx.recording": N_("Call recording"), "pbx": N_("Phone system"),
          "pbx.voicemail": N_("Voicemail")}  # one of a kind: the word alone
FIELDS = {"overflow": N_("overflow"), "destination": N_("destination"), "members": N_("members"),
          "fallback": N_("fallback"), "forward_always": N_("forward always"), "forward_busy": N_("forward when busy"),
          "forward_no_answer": N_("forward when not answered"), "operator": N_("operator"),
          "profile": N_("time profile"), "trunks": N_("trunks"), "trunk": N_("trunk"), "groups": N_("groups"),
          "extensions": N_("extensions"), "supervisors": N_("supervisors"), "leaders": N_("leaders"),
          "moh_class": N_("music on hold class"), "assistant.choices": N_("personal assistant"),
          "manager": N_("manager"), "secretary": N_("secretary"), "user": N_("user"), "handsets": N_("handsets"),
          "targets": N_("targets"), "users": N_("users")}


def label(entry: UsedBy) -> str:
    """The referencing object as the admin knows it: "Ring group Sales (600)", "Call queue sales"."""
    if entry.section in SINGLE:
        return _(SINGLE[entry.section])
    word = _(SECTIONS[entry.section]) if entry.section in SECTIONS else entry.section
    return f"{word} {entry.title} ({entry.name})" if entry.title else f"{word} {entry.name}"


def field_label(entry: UsedBy) -> str:
    head, _dot, rest = entry.field.partition(".")
    if head == "options" and rest:
        return _("key %(key)s", key=rest)
    if head == "entry" and rest:
        return _("entry menu (%(state)s)", state=rest)
    return _(FIELDS[entry.field]) if entry.field in FIELDS else entry.field


def references(kind: str, key: str) -> list:
    return used_by(core.current_config().model_dump(mode="json"), kind, key)


def refusal(mutate: Callable[[dict], None]) -> list[str]:
    """Why the engine would refuse the change `mutate` makes to the current document (empty: it would not)."""
    current = core.runtime().store.current()
    document = copy.deepcopy(current.document if current else {})
    try:
        mutate(document)
        core.runtime().engine.validate(document)
    except ConfigError as err:
        return [message for _path, message in err.problems]  # the messages name the object already
    return []


def confirmed() -> bool:
    return request.method == "POST" and request.form.get("confirm") == "1"


def confirm_page(kind: str | None, key: str, what: str, back: str, mutate: Callable[[dict], None],
                 template: str = "references/confirm_delete.html", also: tuple[tuple[str, str], ...] = (),
                 **context):
    """`kind` None: an object nothing refers to (the page only asks). `also`: more (kind, key) the object
    is known by (a user: their extension and their login)."""
    used = references(kind, key) if kind else []
    for more_kind, more_key in also:
        used += references(more_kind, more_key)
    refused = refusal(mutate)
    return render_template(template, kind=kind, key=key, what=what, back=back, used=used,
                           blocked=bool(refused), refused=refused, label=label, field_label=field_label, **context)
