"""Provider templates for the first-boot setup's trunk step: only presets of a pbx.trunks item
(services/pbx/config.py Trunk); the admin sees every value and may change it before anything is written.

`registration`: the trunk registers with the carrier, so it needs the user name and password the carrier
gave; without it the carrier recognises the box by its public address (IP authentication) and no
credentials are asked. Host, port and transport are the providers' published defaults for their SIP
service; an empty host means the provider gives each customer their own (the admin types it)."""
from __future__ import annotations

from dataclasses import dataclass

from webadmin.core import N_


@dataclass(frozen=True)
class TrunkTemplate:
    key: str
    label: str                  # marked for translation (a provider's own name stays as it is)
    name: str                   # the trunk's default name (pbx.trunks.*.name)
    host: str = ""
    port: int = 5060
    transport: str = "udp"      # udp | tcp (the Trunk model's choices)
    registration: bool = True
    number_format: str = "national"  # national | e164
    note: str = ""              # a hint shown with the template (marked for translation)


TEMPLATES: tuple[TrunkTemplate, ...] = (
    TrunkTemplate("generic", N_("Generic SIP provider (registration)"), "provider",
                  note=N_("type the SIP server, user name and password your provider gave you")),
    TrunkTemplate("ip_auth", N_("IP-authenticated trunk (no registration)"), "carrier", registration=False,
                  note=N_("the carrier accepts calls from the box's public address: give it that address; "
                          "no user name or password")),
    TrunkTemplate("sipgate", "sipgate", "sipgate", host="sipgate.de",
                  note=N_("the SIP-ID and SIP password of your sipgate account")),
    TrunkTemplate("telnyx", "Telnyx", "telnyx", host="sip.telnyx.com", number_format="e164",
                  note=N_("a credentials connection: its user name and password")),
    TrunkTemplate("twilio", "Twilio Elastic SIP Trunking", "twilio", registration=False, number_format="e164",
                  note=N_("your trunk's termination URI (like example.pstn.twilio.com); allow the box's public "
                          "address in its IP access list")),
)
BY_KEY = {t.key: t for t in TEMPLATES}


def template(key: str) -> TrunkTemplate | None:
    return BY_KEY.get(key)
