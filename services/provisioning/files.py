"""Which file a phone gets: the common file, its own file (with its credentials), or nothing."""
from __future__ import annotations

import ipaddress
import logging
import time

from appliance.contributions import Endpoint, collect
from services.provisioning import phonebook
from services.provisioning import templates as T
from services.provisioning.blfkeys import colleagues, pickup_codes
from services.provisioning.config import DECT_MODELS

log = logging.getLogger("officebox.provisioning")


def ntp_host(config, box: str) -> str:
    """The phones' time server: the box when a service serves time there (the NTP service's "ntp"
    endpoint), else "" and the phone keeps its own default."""
    return box if any(e.name == "ntp" for e in collect(config, Endpoint)) else ""


class Provisioner:
    def __init__(self, config, sip_host: str, sip_port: int, leases=None, data_dir=None) -> None:
        section = config.provisioning
        self.phones = {p.digits: p for p in section.phones}
        self.users = {u.login: u for u in config.users}
        self.config = config
        self.site = T.Site(sip_host, sip_port, config.system.timezone, ntp_host(config, sip_host))
        self.require_lease = section.require_dhcp_lease
        self.auth = section.auth_kind
        self.leases = leases  # callable -> {mac: ip} of current DHCP leases, or None
        self.fetched: dict[str, dict] = {}
        self.data_dir = data_dir  # the box's contacts, for the phone books (None: no phone book)
        self.base_urls: dict[str, str] = {}  # transport (http, https) -> where phones reach it (set once it listens)
        self.section = section

    def accounts(self, phone) -> dict[int, T.Account]:
        pairs = [(h.number, h.user) for h in phone.handsets] if phone.model in DECT_MODELS else [(1, phone.user)]
        found = {}
        for slot, login in pairs:
            user = self.users.get(login) if login else None
            if user is not None and user.enabled and user.extension:
                found[slot] = T.Account(user.extension, user.full_name, user.sip_secret)
        return found

    def mac_of(self, filename: str) -> str | None:
        digits, _ = T.match(filename.rsplit("/", 1)[-1])
        phone = self.phones.get(digits) if digits else None
        return phone.mac if phone else None

    def fetch(self, filename: str, client: str, identity: str | None = None,
              transport: str = "http") -> tuple[int, str, bytes]:
        """(HTTP-like status, content type, body) for `filename` asked by `client` (an IP address) over
        `transport`, signed in as `identity` ("" without authentication, None over TFTP)."""
        name = filename.rsplit("/", 1)[-1]
        if T.YEALINK_COMMON.match(name.lower()):
            return 200, "text/plain", T.yealink_common(self.site).encode()
        book = phonebook.NAME.match(name.lower())
        digits, models = (book.group(1), set(T.RENDERERS)) if book and self.data_dir else T.match(name)
        phone = self.phones.get(digits) if digits else None
        if phone is None or phone.model not in models:
            log.info("provisioning: %s asked for %r: unknown phone", client, name)
            return 404, "text/plain", b"not found\n"
        refused = self._refused(phone, client, identity, transport)
        if refused:
            return refused
        if book and transport == "tftp":
            return 404, "text/plain", b"phone books are served over HTTP\n"
        if book:
            login = phone.user if phone.model not in DECT_MODELS else None
            return 200, "application/xml", phonebook.render(phone.model, self.data_dir, login).encode()
        accounts = self.accounts(phone)
        if not accounts:
            return 404, "text/plain", b"no account is assigned to this phone\n"
        own = accounts.get(1)
        keys = colleagues(self.config, own.extension) if own and phone.model not in DECT_MODELS else []
        render, book = T.renderer(phone.model, name), self.book_link(phone, transport)
        if phone.model == "snom":
            body = render(phone, accounts, self.site, keys, pickup_codes(self.config), book=book)
        else:
            body = render(phone, accounts, self.site, keys, pickup_codes(self.config))
        if book and phone.model in ("yealink", "yealink-w70b"):
            body += phonebook.yealink_lines(book)
        self.fetched[phone.mac] = {"time": time.time(), "client": client, "file": name}
        log.info("provisioning: %s (%s) fetched %s", phone.mac, client, name)
        return 200, T.CONTENT_TYPES[phone.model], body.encode()

    def book_link(self, phone, transport: str) -> phonebook.BookLink | None:
        """Where `phone` finds its phone book: over the transport it fetched its file by (HTTP after TFTP),
        with the account its file needs (the shared one, or its own)."""
        base = self.base_urls.get(transport) or self.base_urls.get("http")
        if not base or not self.data_dir:
            return None
        if self.auth == "per-phone":
            return phonebook.link(base, phone.digits, phone.digits, phone.auth_secret)
        if self.auth in ("basic", "digest"):
            return phonebook.link(base, phone.digits, self.section.auth_user, self.section.auth_password)
        return phonebook.link(base, phone.digits)

    def _refused(self, phone, client: str, identity: str | None, transport: str) -> tuple[int, str, bytes] | None:
        """The answer refusing `client` this phone's files, or None when it may have them."""
        if self.auth != "none" and transport == "tftp":
            log.warning("provisioning: %s asked for %s's file over TFTP, which cannot authenticate", client,
                        phone.mac)
            return 403, "text/plain", b"forbidden\n"
        if self.auth == "per-phone" and identity != phone.digits:
            log.warning("provisioning: %s signed in as %r asked for %s's file", client, identity, phone.mac)
            return 403, "text/plain", b"forbidden\n"
        if self.require_lease and not self._leased_to(phone.mac, client):
            log.warning("provisioning: %s asked for %s's file but DHCP did not lease it that address", client,
                        phone.mac)
            return 403, "text/plain", b"forbidden\n"
        return None

    def _leased_to(self, mac: str, client: str) -> bool:
        if self.leases is None:
            return False
        try:
            return self.leases().get(mac) == ipaddress.IPv4Address(client)
        except ValueError:
            return False
