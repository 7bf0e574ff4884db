"""Render squid.conf, the hosts file and the block pages from the configuration.

Access order: Squid's safety rules; with sign-in, clients outside the allowed networks are refused
and the explicit port asks for an OfficeBox login (checked by the appliance through AUTH_HELPER; the
intercept port cannot ask); blocks for everyone, then per group (first group whose sources or signed-in
logins match): blocked sites, blocked URL patterns, allowed hours, web access at all; then everyone
else on the allowed networks with the global allowed hours; anything else is denied. Each deny carries
its own block page (deny_info) naming the site and the reason.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from services.proxy.config import DAYS, AccessGroup, ProxyConfig, TimeWindow

AUTH_HELPER = "ob-basic-auth.py"  # copied into Squid's pages folder: Squid runs it as the proxy user
HELPER_PYTHON = "/usr/bin/python3"  # the system's: the appliance's own may live where that user cannot go
SQUID_DAYS = dict(zip(DAYS, "MTWHFAS", strict=True))
DAY_NAMES = dict(zip(DAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))


@dataclass(frozen=True)
class Paths:
    etc: Path        # rendered files (the applied generation: etc/current/proxy)
    work: Path       # squid's own tree, owned by the proxy user: cache/ and logs/
    run: Path        # pid file

    @property
    def cache(self) -> Path:
        return self.work / "cache"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def pages(self) -> Path:
        """Squid's error_directory (its stock pages and our block pages) and the hosts file, readable by
        the proxy user."""
        return self.work / "pages"

    @property
    def auth_socket(self) -> Path:
        """Where the appliance answers the sign-in helper (owned by the proxy user)."""
        return self.work / "auth.sock"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def pid(self) -> Path:
        return self.run / "squid.pid"


def hours_text(windows: list[TimeWindow]) -> str:
    return "; ".join(f"{', '.join(DAY_NAMES[d] for d in w.days)} {w.start}-{w.end}" for w in windows)


def squid_domains(domains: list[str]) -> list[str]:
    """'.example.com' matches the domain and its subdomains; Squid refuses redundant entries."""
    keep = [d for d in domains if not any(d != o and d.endswith("." + o) for o in domains)]
    return [f".{d}" for d in sorted(set(keep))]


BLOCK_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Blocked: %H</title>
<style>body{{font-family:sans-serif;background:#f4f5f7;color:#222}}
main{{max-width:40em;margin:4em auto;background:#fff;padding:2em;border-top:6px solid #c0392b}}
h1{{font-size:1.4em}} code{{word-break:break-all}}</style></head>
<body><main>
<h1>Blocked by your company's Internet policy</h1>
<p><strong>Site:</strong> <code>%H</code></p>
<p><strong>Address:</strong> <code>%U</code></p>
<p><strong>Reason:</strong> {reason}</p>
<p>If you need this site for your work, ask your administrator.</p>
<p><small>{company} &middot; %T</small></p>
</main></body></html>
"""


class Builder:
    def __init__(self, config, paths: Paths, lab_ports: bool) -> None:
        self.config = config
        self.px: ProxyConfig = config.proxy
        self.paths = paths
        self.lab_ports = lab_ports
        self.lines: list[str] = []
        self.pages: dict[str, str] = {}

    def page(self, acl: str, reason: str) -> None:
        company = html.escape(self.config.system.company_name)
        name = f"ERR_OB_{acl.upper()}"
        self.pages[f"errors/{name}"] = BLOCK_PAGE.format(reason=html.escape(reason), company=company)
        self.lines.append(f"deny_info {name} {acl}")

    def acl(self, name: str, kind: str, values: list[str]) -> None:
        for i in range(0, len(values), 20):  # keep lines short
            self.lines.append(f"acl {name} {kind} {' '.join(values[i:i + 20])}")

    def time_acl(self, name: str, windows: list[TimeWindow]) -> None:
        for w in windows:
            days = "".join(SQUID_DAYS[d] for d in DAYS if d in w.days)
            self.lines.append(f"acl {name} time {days} {w.start}-{w.end}")

    def rules(self, prefix: str, who: str | None, domains: list[str], patterns: list[str],
              hours: list[TimeWindow], whose: str) -> None:
        src = f" {who}" if who else ""
        if domains:
            self.acl(f"{prefix}_sites", "dstdomain", squid_domains(domains))
            self.page(f"{prefix}_sites", f"this site is on the list of blocked sites{whose}.")
            self.lines.append(f"http_access deny{src} {prefix}_sites")
        if patterns:
            self.acl(f"{prefix}_urls", "url_regex -i", patterns)
            self.page(f"{prefix}_urls", f"this address matches a blocked pattern{whose}.")
            self.lines.append(f"http_access deny{src} {prefix}_urls")
        if hours:
            self.time_acl(f"{prefix}_hours", hours)
            self.page(f"{prefix}_hours", f"web access is only allowed {hours_text(hours)}{whose}.")
            self.lines.append(f"http_access deny{src} !{prefix}_hours")

    def group(self, index: int, group: AccessGroup) -> None:
        name = f"ob_g{index}"
        self.lines.append(f"# group {group.name}")
        if not group.users:
            self.acl(name, "src", [str(n) for n in group.sources])
        else:  # by address or by login; a login only counts on the explicit port, where it was asked
            members = [f"{name}_user"]
            self.acl(f"{name}_login", "proxy_auth", group.users)
            self.lines.append(f"acl {name}_user all-of ob_explicit {name}_login")
            if group.sources:
                self.acl(f"{name}_src", "src", [str(n) for n in group.sources])
                members.insert(0, f"{name}_src")
            self.lines.append(f"acl {name} any-of {' '.join(members)}")
        whose = f" (group {group.name})"
        if not group.web_access:
            self.acl(f"{name}_all", "src", ["all"])
            self.page(f"{name}_all", f"web access is switched off{whose}.")
            self.lines.append(f"http_access deny {name} {name}_all")
            return
        self.rules(name, name, group.blocked_domains, group.blocked_patterns, group.allowed_hours, whose)
        self.lines.append(f"http_access allow {name}")

    def build(self) -> dict[str, str]:
        px, cfg, p = self.px, self.config, self.paths
        bind = "127.0.0.1:" if self.lab_ports else ""
        port, intercept = (px.lab_port, px.lab_intercept_port) if self.lab_ports else (px.port, px.intercept_port)
        networks = [str(n) for n in [*cfg.network.lan_networks(), *px.extra_networks]]
        if self.lab_ports:
            networks.append("127.0.0.0/8")  # lab mode: the browser is on this machine
        dns = px.dns_servers or cfg.network.wan.dns
        L = self.lines
        L += [
            "# OfficeBox web proxy: generated, do not edit",
            f"http_port {bind}{port} name=ob_explicit",
            *([f"http_port {bind}{intercept} intercept name=ob_intercept"] if px.transparent else []),
            f"visible_hostname {cfg.system.hostname}.{cfg.system.domain}",
            "cache_effective_user proxy",
            f"pid_filename {p.pid}",
            f"coredump_dir {p.work}",
            f"access_log stdio:{p.access_log} squid",
            f"cache_log {p.logs / 'cache.log'}",
            "cache_store_log none",
            "logfile_rotate 0",
            "pinger_enable off",
            "shutdown_lifetime 2 seconds",
            f"hosts_file {p.pages / 'hosts'}",
            f"error_directory {p.pages}",
            *([f"dns_nameservers {' '.join(str(d) for d in dns)}"] if dns else []),
            f"cache_mem {px.memory_cache_mb} MB",
            f"maximum_object_size {px.max_object_mb} MB",
            f"maximum_object_size_in_memory {min(px.max_object_mb * 1024, 4096)} KB",
            *([f"cache_dir ufs {p.cache} {px.cache_mb} 16 256"] if px.cache_mb else []),
            "refresh_pattern ^ftp: 1440 20% 10080",
            "refresh_pattern -i (/cgi-bin/|\\?) 0 0% 0",
            "refresh_pattern . 0 20% 4320",
            "acl SSL_ports port 443",
            "acl Safe_ports port 80 21 443 70 210 280 488 591 777 1025-65535",
            "acl CONNECT method CONNECT",
            "http_access deny !Safe_ports",
            "http_access deny CONNECT !SSL_ports",
            "http_access allow localhost manager",
            "http_access deny manager",
        ]
        if not px.ftp:
            L += ["acl ob_ftp proto FTP", "http_access deny ob_ftp"]
        self.acl("ob_clients", "src", networks)
        L.append("acl ob_explicit myportname ob_explicit")
        if px.sign_in:
            realm = "".join(c for c in cfg.system.company_name if c.isalnum() or c in " .-&")[:40].strip()
            L += [
                f"auth_param basic program {HELPER_PYTHON} {p.pages / AUTH_HELPER} {p.auth_socket}",
                "auth_param basic children 5 startup=1 idle=1",
                f"auth_param basic realm {realm or 'OfficeBox'} Internet access",
                "auth_param basic credentialsttl 1 hour",
                "auth_param basic casesensitive off",
                "acl ob_signed_in proxy_auth REQUIRED",
                "http_access deny !ob_clients",
                "http_access deny ob_explicit !ob_signed_in",
            ]
        self.rules("ob_all", None, px.blocked_domains, px.blocked_patterns, [], "")
        for index, group in enumerate(px.groups, 1):
            self.group(index, group)
        L.append("# everyone else on the allowed networks")
        self.rules("ob_default", "ob_clients", [], [], px.allowed_hours, "")
        L += ["http_access allow ob_clients", "http_access deny all"]
        hosts = "".join(f"{h.address} {h.name}\n" for h in px.hosts)
        return {"squid.conf": "\n".join(L) + "\n", "hosts": hosts, **self.pages}


def render(config, paths: Paths, lab_ports: bool) -> dict[str, str]:
    return Builder(config, paths, lab_ports).build()
