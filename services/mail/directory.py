"""Who lives here: local domains, mailboxes (one per enabled user), aliases and lists, relay rights."""
from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from appliance.schema import CoreConfig
from appliance.users import User, hash_password, verify_password

MAX_ALIAS_DEPTH = 8
_dummy_hash: list[str] = []


def dummy_hash() -> str:
    """An argon2 hash of a random password, made like the users' ones: an unknown login costs the same check."""
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_urlsafe(24)))
    return _dummy_hash[0]


@dataclass
class Resolution:
    """Where one envelope recipient goes: local mailboxes (logins) and outside addresses."""

    logins: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower()


class Directory:
    def __init__(self, config: CoreConfig) -> None:
        section = config.mail
        self.mail_domain = config.system.mail_domain
        self.domains = [self.mail_domain] + [d for d in section.extra_domains if d != self.mail_domain]
        self.users = {u.login: u for u in config.users if u.enabled}
        self.by_address: dict[str, str] = {}
        for user in self.users.values():
            self.by_address[user.mail_address(self.mail_domain).lower()] = user.login
        self.aliases = {a.name: a.targets for a in section.aliases}
        if "postmaster" not in self.aliases and "postmaster" not in self.users:
            admins = [u.login for u in self.users.values() if u.role == "admin"]
            if admins:
                self.aliases["postmaster"] = admins
        nets = list(section.relay_networks)
        if section.relay_from_lan:
            nets += config.network.lan_networks()
        self.relay_networks = nets
        self.relay_devices = set(section.relay_devices)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains

    def address_of(self, login: str) -> str:
        return self.users[login].mail_address(self.mail_domain)

    def login_for(self, address: str) -> str | None:
        """The mailbox an address names directly (user e-mail or login@local domain)."""
        address = address.strip().strip("<>")
        if address.lower() in self.by_address:
            return self.by_address[address.lower()]
        local, domain = split_address(address)
        if self.is_local_domain(domain) and local.lower() in self.users:
            return local.lower()
        return None

    def resolve(self, address: str, _depth: int = 0) -> Resolution | None:
        """Expand one recipient; None if it is a local domain address nobody owns."""
        address = address.strip().strip("<>")
        result = Resolution()
        login = self.login_for(address)
        local, domain = split_address(address)
        if login is not None:
            result.logins.append(login)
            return result
        if not self.is_local_domain(domain):
            if "@" not in address:
                return None
            result.remote.append(address)
            return result
        targets = self.aliases.get(local.lower())
        if targets is None or _depth >= MAX_ALIAS_DEPTH:
            return None
        for target in targets:
            if "@" not in target:
                target = f"{target}@{self.mail_domain}"
            sub = self.resolve(target, _depth + 1)
            if sub is None:
                continue  # a list member that left: skip it, keep the list working
            result.logins += [x for x in sub.logins if x not in result.logins]
            result.remote += [x for x in sub.remote if x not in result.remote]
        return result if (result.logins or result.remote) else None

    def may_send_as(self, login: str, address: str) -> bool:
        """A signed-in user may send as their own address, login@ any local domain, or an alias or list
        they receive (e.g. info@); the null sender is allowed too."""
        if not address:
            return True
        if self.login_for(address) == login:
            return True
        local, domain = split_address(address)
        if not self.is_local_domain(domain):
            return False
        found = self.resolve(address) if local.lower() in self.aliases else None
        return found is not None and login in found.logins

    def may_relay(self, peer_ip: str | None) -> bool:
        if not peer_ip:
            return False
        try:
            ip = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        return ip in self.relay_devices or any(ip in net for net in self.relay_networks)

    def login_of(self, username: str) -> str:
        """The login a sign-in name (login or e-mail address) stands for; the name itself if unknown."""
        name = username.strip().lower()
        return (self.login_for(name) or name) if "@" in name else name

    def authenticate(self, username: str, password: str) -> User | None:
        """Login or e-mail address plus password; None if unknown, disabled or wrong. An unknown login or
        one without a password is checked against a dummy hash: the answer takes as long (no timing oracle)."""
        user = self.users.get(self.login_of(username))
        if user is None or not user.password_hash:
            verify_password(dummy_hash(), password)
            return None
        return user if user.check_password(password) else None
