"""Manager / secretary (pbx.secretaries): calls to a manager ring the secretary first (screening),
except from the bypass list (caller numbers, colleagues' extensions), from the secretary (who puts
callers through by transfer) and from the manager's own phones; the manager switches screening with the
screening feature code (app:screening, through the configuration: changes.py kind "screening"); the
secretary_intercom feature code calls the other one of the pair with the auto-answer headers of
features/paging.py (the general intercom code followed by an extension works between them too).
"""
from __future__ import annotations

import asyncio
import logging

from . import apps, changes
from .config import SecretaryPair
from .features.paging import auto_answer_headers

log = logging.getLogger("officebox.pbx.secretary")


def pair_of_manager(cfg, ext: str) -> SecretaryPair | None:
    return next((p for p in cfg.secretaries if p.manager == ext), None)


def screened(call, ext: str) -> str:
    """Whom a call to extension `ext` rings: the secretary when `ext` is a screened manager and the
    caller may not bypass, else `ext`."""
    pair = pair_of_manager(call.core.cfg, ext)
    if pair is None or not pair.screening or pair.secretary not in call.core.users:
        return ext
    transferor = call.transferor.extension if call.transferor is not None else None
    if call.caller in (pair.secretary, pair.manager) or call.caller in pair.bypass or \
            transferor == pair.secretary or call.auto_answer:
        return ext
    log.info("call %s: %s screened by %s", call.id, ext, pair.secretary)
    return pair.secretary


def intercom(call, number: str) -> str | None:
    """The secretary_intercom feature code dialled by a manager or a secretary: the other one's
    extension, the call then asking that phone to answer by itself (features/paging.py's headers)."""
    if number != call.core.cfg.feature_codes.secretary_intercom or call.a is None:
        return None
    ext = call.a.extension
    for pair in call.core.cfg.secretaries:
        if ext in (pair.manager, pair.secretary):
            call.auto_answer = True
            call.invite_headers.update(auto_answer_headers(call.core.stack.local_ip(call.a.flow[1])))
            return pair.secretary if ext == pair.manager else pair.manager
    return None


async def toggle_screening(channel) -> None:
    """app:screening: the manager's own phone switches screening on or off, then hears the new state."""
    call = channel.call
    ext = channel.caller.extension if channel.caller is not None else None
    pair = pair_of_manager(call.core.cfg, ext) if ext else None
    if not await channel.answer():
        return
    if pair is None:
        await _say(channel, "scr-not-manager")
        return
    on = not pair.screening
    error = await call.core.change_config("screening", {"manager": ext, "on": on}, by=ext)
    if error:
        log.warning("screening of %s not changed: %s", ext, error)
        await _say(channel, "scr-failed")
        return
    await _say(channel, "scr-on" if on else "scr-off")


async def _say(channel, key: str) -> None:
    path = await asyncio.to_thread(channel.prompts().prompt_path, key, channel.language())
    await channel.play(path, interruptible=False)


def _apply(doc: dict, data: dict) -> str:
    """changes.py kind "screening": in the appliance's process, on a copy of the document."""
    manager, on = data.get("manager"), data.get("on")
    if not isinstance(on, bool):
        raise ValueError("screening is on or off")
    for pair in doc.get("pbx", {}).get("secretaries", []):
        if pair.get("manager") == manager:
            pair["screening"] = on
            return f"call screening of {manager} {'on' if on else 'off'} (by phone)"
    raise ValueError(f"{manager} is no manager with a secretary")


changes.kind("screening")(_apply)
apps.register("app:screening", toggle_screening)
