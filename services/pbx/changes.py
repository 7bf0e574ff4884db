"""The configuration changes the PBX's process may ask for (appliance/changerequests.py): a phone's
feature code, a PIN set by phone. Each kind is a handler run in the appliance's root process on a copy of
the configuration document:

    from services.pbx import changes

    @changes.kind("forwarding")
    def _forwarding(doc: dict, data: dict) -> str:
        ...check data (ValueError("reason") if bad), change doc...
        return "forwarding of 201 set by phone"      # the revision's summary

and in the PBX process: `error = await core.change_config("forwarding", {...}, by="201")` (None: applied;
the PBX then gets its usual reload). A handler trusts `by` (the PBX authenticated the phone) but checks
everything in `data`: the PBX process is not trusted with any other part of the configuration.
"""
from __future__ import annotations

from collections.abc import Callable

from appliance.changerequests import Handler

KINDS: dict[str, Handler] = {}


def kind(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in KINDS and KINDS[name] is not handler:
            raise ValueError(f"configuration change kind {name!r} is registered twice")
        KINDS[name] = handler
        return handler
    return register
