"""Feature codes for staff and admins (pbx.feature_codes), each behind the caller's voicemail PIN:

  app:attendant-admin  (*35, admins) greeting number (with *1-*4: that state's greeting, STATE_KEYS), #,
                       then the greeting recorded after the beep
  app:night-service    (*36, admins) night service on or off for every time profile
  app:assistant-menu   (*37) 1: the caller's personal assistant on or off, 2: record its greeting

Settings go through the configuration change path (services/pbx/changes.py): the kinds below run in
the root process, check who asks and what, and change the document; recordings are files of the PBX.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import secrets

from .. import apps, changes
from ..voicemail import for_core, say
from ..voicemail.menu import _login as login  # the voicemail PIN, its attempts and the abuse guard
from ..voicemail.store import MIN_SECONDS
from .handover import greetings

log = logging.getLogger("officebox.pbx.attendant")
RECORD_SECONDS = 120.0
STATE_KEYS = {"1": "open", "2": "closed", "3": "holiday", "4": "break"}  # number*key: one state's greeting


async def _caller(channel, admin: bool):
    """(extension, language) of the caller once its PIN is right; None (the call ended) if not."""
    vm = for_core(channel.call.core)
    ext = channel.caller.extension if channel.caller is not None else None
    if not await channel.answer():
        return None
    lang = vm.language(ext)
    user = vm.user(ext) if ext else None
    if user is None or (admin and user.role != "admin"):
        await say(channel, await vm.paths(lang, "not-allowed", "goodbye"), False)
        channel.hangup()
        return None
    if await login(channel, vm, ext, lang) is None:
        return None
    return ext, lang


def behind_pin(admin: bool):
    """The application body(channel, extension, language, voicemail) runs once the caller's voicemail
    PIN is right (an admin's only, with `admin`)."""
    def wrap(body):
        @functools.wraps(body)
        async def app(channel: apps.Channel) -> None:
            who = await _caller(channel, admin)
            if who is not None:
                await body(channel, *who, for_core(channel.call.core))
        return app
    return wrap


async def _record(channel, stem, lang: str) -> None:
    vm = for_core(channel.call.core)
    stem.parent.mkdir(parents=True, exist_ok=True)
    temp = stem.parent / f".rec-{secrets.token_hex(4)}.wav"
    try:
        await say(channel, await vm.paths(lang, "vm-record-greeting"), False)
        rec = await channel.record(temp, max_seconds=RECORD_SECONDS, silence_stop=3.0, beep=True)
        if rec.seconds < MIN_SECONDS:
            await say(channel, await vm.paths(lang, "vm-too-short"), False)
            return
        await asyncio.to_thread(greetings(channel.call.core).store_recording, stem, temp)
        await say(channel, await vm.paths(lang, "vm-greeting-saved"), False)
    except (apps.MediaError, ValueError) as err:
        log.warning("greeting %s not stored: %s", stem.name, err)
        await say(channel, await vm.paths(lang, "vm-not-stored"), False)
    finally:
        temp.unlink(missing_ok=True)


@behind_pin(admin=True)
async def attendant_admin(channel: apps.Channel, ext: str, lang: str, vm) -> None:
    core = channel.call.core
    for _ in range(5):
        key = await say(channel, await vm.paths(lang, "att-enter-greeting"))
        typed = ((key or "") + await channel.collect(8, timeout=6.0, terminator="#")).strip("#")
        if not typed:
            break
        number, star, state_key = typed.partition("*")
        state = STATE_KEYS.get(state_key, "?") if star else ""
        found = next(((a, m) for a in core.cfg.attendants for m in a.menus if m.number and m.number == number), None)
        if found is None or state == "?":
            await say(channel, await vm.paths(lang, "invalid-option"), False)
            continue
        att, menu = found
        log.info("greeting of %s/%s%s recorded by %s", att.name, menu.name, f" ({state})" if state else "", ext)
        await _record(channel, greetings(core).menu_stem(att.name, menu.name, state), lang)
    await say(channel, await vm.paths(lang, "goodbye"), False)
    channel.hangup()


async def _changed(channel, lang: str, kind: str, data: dict, by: str, done_prompt: str) -> None:
    vm = for_core(channel.call.core)
    error = await channel.call.core.change_config(kind, data, by=by)
    if error:
        log.info("%s by %s refused: %s", kind, by, error)
    await say(channel, await vm.paths(lang, "change-failed" if error else done_prompt, "goodbye"), False)


@behind_pin(admin=True)
async def night_service(channel: apps.Channel, ext: str, lang: str, vm) -> None:
    profiles = channel.call.core.cfg.time_profiles
    on = not (profiles and all(p.night_service for p in profiles))
    data = {"extension": ext, "on": on}
    await _changed(channel, lang, "night_service", data, ext, "night-on" if on else "night-off")
    channel.hangup()


@behind_pin(admin=False)
async def assistant_menu(channel: apps.Channel, ext: str, lang: str, vm) -> None:
    core = channel.call.core
    from .assistant import settings
    for _ in range(5):
        key = await say(channel, await vm.paths(lang, "pa-menu")) or await channel.next_key(6.0)
        if key == "1":
            on = not settings(core, ext).enabled
            data = {"extension": ext, "enabled": on}
            await _changed(channel, lang, "assistant", data, ext, "pa-on" if on else "pa-off")
            break
        if key == "2":
            await _record(channel, greetings(core).assistant_stem(ext), lang)
            continue
        break
    channel.hangup()


# -- run in the root process (appliance/changerequests.py) -------------------------------------------
def _user(doc: dict, ext: str) -> dict:
    user = next((u for u in doc.get("users", []) if u.get("extension") == ext and u.get("enabled", True)), None)
    if user is None:
        raise ValueError(f"no enabled user has extension {ext}")
    return user


@changes.kind("night_service")
def _night_service(doc: dict, data: dict) -> str:
    """{"extension": the admin who dialled, "on": bool}: every time profile's night service."""
    on, ext = data.get("on"), data.get("extension")
    if not isinstance(on, bool) or not isinstance(ext, str):
        raise ValueError("night service needs the extension and on: true or false")
    if _user(doc, ext).get("role") != "admin":
        raise ValueError(f"extension {ext} is not an admin's")
    profiles = doc.setdefault("pbx", {}).get("time_profiles") or []
    if not profiles:
        raise ValueError("there is no time profile")
    for profile in profiles:
        profile["night_service"] = on
    return f"night service {'on' if on else 'off'} by phone ({ext})"


@changes.kind("assistant")
def _assistant(doc: dict, data: dict) -> str:
    """{"extension", "enabled": bool}: the user's own personal assistant."""
    on, ext = data.get("enabled"), data.get("extension")
    if not isinstance(on, bool) or not isinstance(ext, str):
        raise ValueError("the assistant needs the extension and enabled: true or false")
    _user(doc, ext)
    settings = doc.setdefault("pbx", {}).setdefault("extensions", {}).setdefault(ext, {})
    settings.setdefault("assistant", {})["enabled"] = on
    return f"personal assistant of {ext} {'on' if on else 'off'} by phone"
