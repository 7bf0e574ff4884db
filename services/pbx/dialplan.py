"""Dial plan: classify dialled numbers, check permission classes, pick outbound routes, normalise numbers."""
from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from .config import APPLICATION, PERMISSION_ORDER, OutboundRoute, PbxConfig, Trunk

DIALLABLE = re.compile(r"^\+?[0-9*#]{1,32}$")


@dataclass(frozen=True)
class Destination:
    kind: str  # extension, group, application (number: apps.py destination), external, emergency, invalid
    number: str
    category: str = "internal"  # internal, local, national, international, emergency


_NOISE = re.compile(r"[\s().-]")


def clean(number: str) -> str:
    return _NOISE.sub("", number or "")


def classify(number: str, cfg: PbxConfig, extensions: Collection[str]) -> Destination:
    if re.fullmatch(APPLICATION, number or ""):
        return Destination("application", number)
    number = clean(number)
    app = cfg.application_for(number, extensions)
    if app:
        return Destination("application", app)
    if not DIALLABLE.match(number):
        return Destination("invalid", number, "invalid")
    if number in extensions:
        return Destination("extension", number)
    if any(g.number == number for g in cfg.groups):
        return Destination("group", number)
    if number in cfg.emergency_numbers:
        return Destination("emergency", number, "emergency")
    national = to_national(number, cfg)
    if national is None:
        return Destination("external", number, "international")
    if any(national.startswith(p) for p in cfg.local_prefixes):
        return Destination("external", number, "local")
    return Destination("external", number, "national")


def to_national(number: str, cfg: PbxConfig) -> str | None:
    """National form of a number in our country, or None for a foreign number."""
    intl = "+" if number.startswith("+") else cfg.international_prefix if number.startswith(
        cfg.international_prefix) else None
    if intl is None:
        return number
    rest = number[len(intl):]
    if rest.startswith(cfg.country_code):
        return cfg.national_prefix + rest[len(cfg.country_code):]
    return None


def to_e164(number: str, cfg: PbxConfig) -> str:
    number = clean(number)
    if number.startswith("+"):
        return number
    if number.startswith(cfg.international_prefix):
        return "+" + number[len(cfg.international_prefix):]
    if cfg.national_prefix and number.startswith(cfg.national_prefix):
        return f"+{cfg.country_code}{number[len(cfg.national_prefix):]}"
    return number  # short/service numbers stay as dialled


def display_number(number: str, cfg: PbxConfig) -> str:
    """How an incoming caller's number is shown: national form when ours, else with the exit prefix."""
    number = clean(number)
    if number.startswith("+"):
        national = to_national(number, cfg)
        return national if national is not None else cfg.international_prefix + number[1:]
    return number


def permitted(user_class: str, dest: Destination) -> bool:
    if dest.kind in ("extension", "group", "application", "emergency"):
        return True
    if dest.kind != "external":
        return False
    return PERMISSION_ORDER.index(user_class) >= PERMISSION_ORDER.index(dest.category)


def select_route(number: str, cfg: PbxConfig) -> OutboundRoute | None:
    """The route with the longest matching prefix."""
    best = None
    for route in cfg.routes:
        if number.startswith(route.prefix) and (best is None or len(route.prefix) > len(best.prefix)):
            best = route
    return best


def number_for_trunk(number: str, route: OutboundRoute, trunk: Trunk, cfg: PbxConfig, emergency: bool) -> str:
    out = route.prepend + clean(number)[route.strip:]
    if trunk.number_format == "e164" and not emergency:
        out = to_e164(out, cfg)
    return out


def match_did(called: str, cfg: PbxConfig) -> str | None:
    """The extension/group a number received from a carrier goes to."""
    called = clean(called)
    forms = {called, to_e164(called, cfg)}
    national = to_national(called, cfg)
    if national:
        forms.add(national)
    for did in cfg.dids:
        did_forms = {did.number, to_e164(did.number, cfg)}
        if forms & did_forms:
            return did.destination
    return None
