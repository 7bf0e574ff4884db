"""Delete confirmations that say where the object is used (appliance.references) before the admin confirms.

A GET, or a POST without the confirm field, shows the confirmation page; only a POST with confirm=1 goes on
to delete. The page checks the document without the object as the engine would: when the configuration
would refuse the delete (a reference left dangling), it says why and offers no delete button.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

from flask import render_template, request

from appliance.apply import ConfigError
from appliance.references import used_by
from webadmin import core


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
        return [f"{path}: {message}" if path else message for path, message in err.problems]
    return []


def confirmed() -> bool:
    return request.method == "POST" and request.form.get("confirm") == "1"


def confirm_page(kind: str | None, key: str, what: str, back: str, mutate: Callable[[dict], None],
                 template: str = "references/confirm_delete.html", **context):
    """`kind` None: an object nothing refers to (the page only asks)."""
    used = references(kind, key) if kind else []
    refused = refusal(mutate)
    return render_template(template, kind=kind, key=key, what=what, back=back, used=used,
                           blocked=bool(refused), refused=refused, **context)
