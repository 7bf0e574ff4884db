"""The migration steps of this firmware (registered with appliance.migrations.step; see its docstring)."""
from __future__ import annotations

from appliance.migrations import step


def _section(doc: dict, name: str) -> dict | None:
    section = doc.get(name)
    return section if isinstance(section, dict) else None


@step(1)
def _safer_defaults_keep_working_boxes_working(doc: dict) -> None:
    """Version 1 -> 2: settings whose defaults became safer, brought over so a box in service behaves
    as an admin would expect, and settings the services now contribute to each other instead."""
    proxy = _section(doc, "proxy")
    if proxy is not None and proxy.get("sign_in") and "sign_in_password" not in proxy:
        proxy["sign_in_password"] = "login"  # staff sign in with their main password, as before
    firewall = _section(doc, "firewall")
    if firewall is not None:
        for key in ("sip_port", "rtp_port_min", "rtp_port_max"):  # the PBX contributes its ports now
            firewall.pop(key, None)
    pbx = _section(doc, "pbx")
    if pbx is not None and pbx.get("user_agent") == "OfficeBox PBX":
        pbx["user_agent"] = ""  # the old default named the product to every scanner
    provisioning, dhcp = _section(doc, "provisioning"), _section(doc, "dhcp")
    if provisioning is not None and dhcp is not None and dhcp.get("enabled", True):
        provisioning["require_dhcp_lease"] = True  # phones lease from this box: bind their files to it


@step(2)
def _languages_the_web_admin_speaks(doc: dict) -> None:
    """Version 2 -> 3: the language fields name the web admin's catalogues (en, fr, zh_TW); a language
    it never had (de, es, it, nl: offered but never shown) becomes English, what those users saw."""
    supported = ("en", "fr", "zh_TW")
    system = _section(doc, "system")
    if system is not None and system.get("language", "en") not in supported:
        system["language"] = "en"
    users = doc.get("users")
    for user in users if isinstance(users, list) else []:
        if isinstance(user, dict) and user.get("language", "en") not in supported:
            user["language"] = "en"


@step(3)
def _voicemail_on_by_default(doc: dict) -> None:
    """Version 3 -> 4: voicemail is on for every extension unless turned off; it used to come only with a
    voicemail PIN. An extension whose user has no PIN and whose setting was left empty keeps no voicemail,
    so a box in service goes on treating its calls as before (the admin turns it on per extension)."""
    users = doc.get("users")
    pbx = _section(doc, "pbx")
    extensions = pbx.get("extensions") if pbx is not None else None
    for user in users if isinstance(users, list) else []:
        if not isinstance(user, dict) or not user.get("extension") or user.get("voicemail_pin_hash"):
            continue
        if pbx is None:
            pbx = doc["pbx"] = {}
        if not isinstance(extensions, dict):
            extensions = pbx["extensions"] = {}
        settings = extensions.setdefault(user["extension"], {})
        if isinstance(settings, dict) and settings.get("voicemail") is None:
            settings["voicemail"] = False
