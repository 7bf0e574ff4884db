"""Phone configuration files, rendered from the directory. Only the file of a known MAC carries
credentials; the common files carry none."""
from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from services.provisioning.blfkeys import BlfKey, Pickup
from services.provisioning.config import Phone
from services.provisioning.phonebook import BookLink

YEALINK_COMMON = re.compile(r"^y0000000000[0-9a-f]{2}\.cfg$")
POLYCOM_SETTINGS = re.compile(r"^[0-9a-f]{12}-officebox\.cfg$")  # what a Polycom's master file names
PATTERNS = [  # file name -> (family, MAC group)
    (re.compile(r"^([0-9a-f]{12})\.cfg$"), {"yealink", "yealink-w70b", "polycom"}),
    (re.compile(r"^([0-9a-f]{12})-officebox\.cfg$"), {"polycom"}),
    (re.compile(r"^cfg([0-9a-f]{12})(\.xml)?$"), {"grandstream"}),
    (re.compile(r"^([0-9a-f]{12})\.xml$"), {"snom"}),
    (re.compile(r"^snom[a-z0-9]*-([0-9a-f]{12})\.htm$"), {"snom"}),
]


@dataclass
class Account:
    extension: str
    full_name: str
    secret: str


@dataclass
class Site:
    sip_host: str
    sip_port: int
    timezone: str
    ntp: str


def match(filename: str) -> tuple[str | None, set[str]]:
    """(MAC digits, models that may fetch this name); (None, set()) for a name we do not serve."""
    name = filename.lower()
    for pattern, models in PATTERNS:
        found = pattern.match(name)
        if found:
            return found.group(1), models
    return None, set()


def yealink_common(site: Site) -> str:
    return "\n".join([
        "#!version:1.0.0.1",
        "## OfficeBox common settings (no credentials here)",
        *([f"local_time.ntp_server1 = {site.ntp}"] if site.ntp else []),  # else the phone's own default
        f"local_time.time_zone_name = {site.timezone}",
        "auto_provision.repeat.enable = 1",
        "auto_provision.repeat.minutes = 1440", "",
    ])


def _yealink_account(n: int, acc: Account, site: Site) -> list[str]:
    return [
        f"account.{n}.enable = 1",
        f"account.{n}.label = {acc.extension}",
        f"account.{n}.display_name = {acc.full_name}",
        f"account.{n}.auth_name = {acc.extension}",
        f"account.{n}.user_name = {acc.extension}",
        f"account.{n}.password = {acc.secret}",
        f"account.{n}.sip_server.1.address = {site.sip_host}",
        f"account.{n}.sip_server.1.port = {site.sip_port}",
    ]


def _yealink_blf(keys: list[BlfKey], pickup: Pickup | None) -> list[str]:
    """Line keys 1.. as BLF (type 16) on account 1; a ringing colleague's key picks up with the directed code."""
    lines = []
    for n, key in enumerate(keys, start=1):
        lines += [f"linekey.{n}.type = 16", f"linekey.{n}.line = 1", f"linekey.{n}.value = {key.extension}",
                  f"linekey.{n}.label = {key.label}",
                  f"linekey.{n}.extension = {pickup.directed if pickup else ''}"]
    if pickup:
        lines += ["features.pickup.direct_pickup_enable = 1", f"features.pickup.direct_pickup_code = {pickup.directed}",
                  "features.pickup.group_pickup_enable = 1", f"features.pickup.group_pickup_code = {pickup.group}",
                  "features.pickup.blf_visual_enable = 1"]
    return lines


def yealink(phone: Phone, accounts: dict[int, Account], site: Site, keys: list[BlfKey] = (),
            pickup: Pickup | None = None) -> str:
    lines = ["#!version:1.0.0.1", f"## OfficeBox: phone {phone.mac} {phone.label}".rstrip()]
    for n, acc in sorted(accounts.items()):
        lines += _yealink_account(n, acc, site)
        if phone.model == "yealink-w70b":  # handset n rings for and dials out on account n
            lines += [f"handset.{n}.name = {acc.full_name}", f"handset.{n}.incoming_lines = {n}",
                      f"handset.{n}.dial_out_default_line = {n}", f"handset.{n}.dial_out_lines = {n}"]
    if phone.model == "yealink":
        lines += _yealink_blf(list(keys), pickup)
    return "\n".join(lines + [""])


def snom(phone: Phone, accounts: dict[int, Account], site: Site, keys: list[BlfKey] = (),
         pickup: Pickup | None = None, book: BookLink | None = None) -> str:
    """`book`: the directory key opens the phone book there (the phone's HTTP client signs in with the
    provisioning account, if any)."""
    items = []
    for n, acc in sorted(accounts.items()):
        for tag, value in (("user_active", "on"), ("user_realname", acc.full_name), ("user_name", acc.extension),
                           ("user_pname", acc.extension), ("user_pass", acc.secret),
                           ("user_host", f"{site.sip_host}:{site.sip_port}")):
            items.append(f'    <{tag} idx="{n}" perm="R">{escape(value)}</{tag}>')
    if site.ntp:
        items.append(f'    <ntp_server perm="R">{escape(site.ntp)}</ntp_server>')
    if book is not None:
        items.append(f'    <dkey_directory perm="R">url {escape(book.url)}</dkey_directory>')
        if book.user:
            items += [f'    <http_client_user perm="R">{escape(book.user)}</http_client_user>',
                      f'    <http_client_pass perm="R">{escape(book.password)}</http_client_pass>']
    fkeys = []
    for n, key in enumerate(keys):  # "blf <uri>|<prefix>": a ringing colleague's key dials prefix + extension
        value = f"blf sip:{key.extension}@{site.sip_host}|{pickup.directed if pickup else ''}"
        fkeys.append(f'    <fkey idx="{n}" context="1" label="{escape(key.label)}" perm="R">{escape(value)}</fkey>')
    body = ["  <phone-settings>", *items, "  </phone-settings>"]
    if fkeys:
        body += ["  <functionKeys>", *fkeys, "  </functionKeys>"]
    return "\n".join(['<?xml version="1.0" encoding="utf-8"?>', "<settings>", *body, "</settings>", ""])


def grandstream(phone: Phone, accounts: dict[int, Account], site: Site, keys: list[BlfKey] = (),
                pickup: Pickup | None = None) -> str:
    acc = accounts.get(1)
    values = {"P271": "1", "P270": acc.extension, "P47": f"{site.sip_host}:{site.sip_port}", "P35": acc.extension,
              "P36": acc.extension, "P34": acc.secret, "P3": acc.full_name} if acc else {}
    if acc and site.ntp:
        values["P30"] = site.ntp
    for i, key in enumerate(list(keys)[:8] if acc else []):  # multi-purpose keys 1-8 in BLF mode (1), account 1 (0)
        values |= {f"P{323 + i}": "1", f"P{301 + 3 * i}": "0", f"P{302 + 3 * i}": key.label,
                   f"P{303 + 3 * i}": key.extension}
    if acc and keys and pickup:
        values["P1347"] = pickup.directed  # the BLF call-pickup prefix
    items = [f"    <{k}>{escape(v)}</{k}>" for k, v in values.items()]
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', '<gs_provision version="1">',
                      f"  <mac>{phone.digits}</mac>", '  <config version="1">', *items, "  </config>",
                      "</gs_provision>", ""])


def polycom_master(phone: Phone, accounts: dict[int, Account], site: Site, keys: list[BlfKey] = (),
                   pickup: Pickup | None = None) -> str:
    """<mac>.cfg of a Polycom (UC Software): the master file, naming the phone's settings file."""
    return "\n".join(['<?xml version="1.0" standalone="yes"?>',
                      f'<APPLICATION APP_FILE_PATH="sip.ld" CONFIG_FILES="{phone.digits}-officebox.cfg" '
                      'MISC_FILES="" LOG_FILE_DIRECTORY="" OVERRIDES_DIRECTORY="" CONTACTS_DIRECTORY=""/>', ""])


def polycom(phone: Phone, accounts: dict[int, Account], site: Site, keys: list[BlfKey] = (),
            pickup: Pickup | None = None) -> str:
    """<mac>-officebox.cfg: the lines (reg.N) and the busy lamp field (attendant.resourceList.N, the
    phone's BLF list; a ringing colleague's key picks up by the directed code + extension)."""
    values: dict[str, str] = {}
    for n, acc in sorted(accounts.items()):
        values |= {f"reg.{n}.address": acc.extension, f"reg.{n}.label": acc.extension,
                   f"reg.{n}.displayName": acc.full_name, f"reg.{n}.auth.userId": acc.extension,
                   f"reg.{n}.auth.password": acc.secret, f"reg.{n}.server.1.address": site.sip_host,
                   f"reg.{n}.server.1.port": str(site.sip_port), f"reg.{n}.server.1.transport": "UDPOnly"}
    if site.ntp:
        values["tcpIpApp.sntp.address"] = site.ntp
    if keys:
        values["attendant.reg"] = "1"
    for n, key in enumerate(keys, start=1):
        values |= {f"attendant.resourceList.{n}.address": f"{key.extension}@{site.sip_host}",
                   f"attendant.resourceList.{n}.label": key.label, f"attendant.resourceList.{n}.type": "normal"}
    if keys and pickup:
        values |= {"feature.directedCallPickup.enabled": "1", "call.directedCallPickupMethod": "legacy",
                   "call.directedCallPickupString": pickup.directed}
    attrs = "".join(f'\n    {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in values.items())
    return "\n".join(['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
                      f"<!-- OfficeBox: phone {phone.mac} -->", "<polycomConfig>", f"  <officebox{attrs}/>",
                      "</polycomConfig>", ""])


def renderer(model: str, filename: str):
    """The template of `model`'s file `filename` (a Polycom fetches two: the master file, then its settings)."""
    if model == "polycom" and not POLYCOM_SETTINGS.match(filename.lower()):
        return polycom_master
    return RENDERERS[model]


RENDERERS = {"yealink": yealink, "yealink-w70b": yealink, "snom": snom, "grandstream": grandstream,
             "polycom": polycom}
CONTENT_TYPES = {"yealink": "text/plain", "yealink-w70b": "text/plain", "snom": "application/xml",
                 "grandstream": "application/xml", "polycom": "application/xml"}
