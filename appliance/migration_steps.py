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


# the feature codes this firmware brings (appliance/migration_steps.py cannot import the PBX's schema: a
# step stays as it was written) and those of them that are prefixes (followed by a number when dialled)
_NEW_FEATURE_CODES = {
    "record_call": "*1", "conference": "*3", "dial_by_name": "*34", "attendant_admin": "*35",
    "night_service": "*36", "assistant": "*37", "screening": "*48", "secretary_intercom": "*49",
    "agent_login": "*51", "agent_logout": "*52", "agent_pause": "*53", "agent_resume": "*54",
    "park": "*70", "forward_on": "*72", "forward_off": "*73", "dnd_on": "*78", "dnd_off": "*79",
    "pickup": "*8", "intercom": "*80", "directed_pickup": "**",
}
_PREFIX_CODES = ("directed_pickup", "intercom", "forward_on")


@step(4)
def _new_feature_codes_yield_to_the_boxs_own_numbers(doc: dict) -> None:
    """Version 4 -> 5: the new feature codes (call centre, conference, attendant, pickup, park, forwarding,
    recording...) must not take a number the admin already gave an application (application_numbers) or a
    code: such a code moves to a free *6NN number instead, so the box's dial plan keeps working and the
    document stays valid; the feature codes page and the phone guide show the number it got."""
    _move_clashing_codes(doc, _NEW_FEATURE_CODES, _PREFIX_CODES)


# the codes of the next firmware: recording a prompt by phone, the supervisors' monitor, whisper and barge-in
_NEW_FEATURE_CODES_6 = {"prompt_record": "*39", "supervisor_monitor": "*55", "supervisor_whisper": "*56",
                        "supervisor_barge": "*57"}


@step(5)
def _prompt_and_supervisor_codes_yield_to_the_boxs_own_numbers(doc: dict) -> None:
    """Version 5 -> 6: as step 4, for the codes this firmware brings (*39, *55, *56, *57)."""
    _move_clashing_codes(doc, _NEW_FEATURE_CODES_6, ())


def _move_clashing_codes(doc: dict, new: dict[str, str], prefixes: tuple[str, ...]) -> None:
    """Each code of `new` (name: default) the document does not set, whose default is a number of the box's
    (an application number or another code; for a prefix code, the start of one), moves to a free *6NN."""
    pbx = _section(doc, "pbx")
    if pbx is None:
        return
    apps = pbx.get("application_numbers")
    taken = {n for n in apps if isinstance(n, str)} if isinstance(apps, dict) else set()
    codes = pbx.get("feature_codes") if isinstance(pbx.get("feature_codes"), dict) else {}
    taken |= {v for k, v in codes.items() if isinstance(v, str) and k not in new}
    if not taken:
        return

    def clashes(name: str, number: str) -> bool:
        if number in taken:
            return True
        return name in prefixes and any(n.startswith(number) for n in taken)

    spare = (f"*6{n:02d}" for n in range(100) if not any(t.startswith(f"*6{n:02d}") for t in taken))
    moved = {}
    for name, default in new.items():
        if name not in codes and clashes(name, default):
            moved[name] = next(spare)
    if moved:
        pbx["feature_codes"] = {**codes, **moved}


@step(6)
def _backups_to_an_smb_share(doc: dict) -> None:
    """Version 6 -> 7: `backups.destination.kind` may be "smb" (with share, domain, password_secret).
    A version-6 document is valid as it is; the new version marks documents (and backups) a version-6
    firmware cannot read, since it refuses "smb" as a kind."""


@step(7)
def _wan_over_pppoe(doc: dict) -> None:
    """Version 7 -> 8: `network.wan.mode` may be "pppoe" (with pppoe_user, pppoe_password, pppoe_service,
    pppoe_ac_name, mtu). A version-7 document is valid as it is; the new version marks documents (and
    backups) a version-7 firmware cannot read, since it refuses "pppoe" as a mode."""
