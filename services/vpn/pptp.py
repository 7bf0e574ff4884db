"""Legacy PPTP for staff devices that have nothing better: pptpd (a supervised child) hands each client's
control connection (TCP 1723) to a pppd, which authenticates it by MS-CHAPv2 against chap-secrets and
encrypts with MPPE-128 (RC4) over GRE. INSECURE: MS-CHAPv2 handshakes can be cracked offline and MPPE is
RC4; off by default, the web admin says so.

Files (rendered next to swanctl.conf, all 0600): pptpd.conf, pptp-options (pppd's), chap-secrets (pppd
reads /etc/ppp/chap-secrets: the OS image links it to this one), pptp-ip-up and pptp-ip-down (made
executable when staged): pppd runs them when a client's link comes up and goes down; they record the
session (who, pppd's pid, interface, addresses) as run/vpn/pptp/<interface>.json, which the page's table
and `drop` read. A user disabled or with VPN off is dropped at once: `drop` ends that user's pppd.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from pathlib import Path

PPTPD = "/usr/sbin/pptpd"
SERVER_NAME = "pptpd"  # pppd's `name`, the server column of chap-secrets
IDLE = 1800  # seconds without traffic before pppd hangs up
LCP_ECHO_INTERVAL, LCP_ECHO_FAILURE = 30, 4


def addresses(pool: ipaddress.IPv4Network) -> tuple[ipaddress.IPv4Address, list[ipaddress.IPv4Address]]:
    """(the box's end of every link, the clients' addresses) of the pool."""
    hosts = list(pool.hosts())
    return hosts[0], hosts[1:]


def remote_range(pool: ipaddress.IPv4Network) -> str:
    """pptpd's remoteip: a.b.c.first-last (the pool is one /24 at most)."""
    _, clients = addresses(pool)
    first, last = clients[0], clients[-1]
    return f"{first}-{str(last).rsplit('.', 1)[1]}" if first != last else str(first)


def pptpd_conf(config, etc: Path) -> str:
    pptp = config.vpn.pptp
    local, clients = addresses(pptp.pool)
    return ("# rendered by OfficeBox: legacy PPTP (insecure: MS-CHAPv2 is crackable offline, MPPE is RC4)\n"
            f"option {etc / 'pptp-options'}\n"
            f"connections {len(clients)}\n"
            f"localip {local}\n"
            f"remoteip {remote_range(pptp.pool)}\n")


def options(config, etc: Path, log: Path) -> str:
    """pppd's options for PPTP clients: MS-CHAPv2 only, MPPE-128 required, the box as DNS server."""
    return f"""# rendered by OfficeBox: pppd for PPTP clients (MS-CHAPv2 only, MPPE-128 required)
name {SERVER_NAME}
auth
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
ms-dns {config.network.lan.address.ip}
noproxyarp
nodefaultroute
nobsdcomp
nodeflate
novj
idle {IDLE}
lcp-echo-interval {LCP_ECHO_INTERVAL}
lcp-echo-failure {LCP_ECHO_FAILURE}
ip-up-script {etc / 'pptp-ip-up'}
ip-down-script {etc / 'pptp-ip-down'}
logfile {log}
"""


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def chap_secrets(accounts: list) -> str:
    """pppd's secrets: each allowed user's VPN password (the IKEv2 account's secret), any address."""
    lines = "".join(f"{quoted(a.user)} {SERVER_NAME} {quoted(a.password_secret)} *\n" for a in accounts)
    return "# rendered by OfficeBox: PPTP logins (MS-CHAPv2 needs the passwords in clear: 0600)\n" + lines


def ip_up(run: Path) -> str:
    """pppd runs it as: ip-up interface tty speed local-address remote-address ipparam (the client's
    outside address, from pptpd), with PEERNAME in the environment; its parent is that pppd."""
    folder = run / "pptp"
    return f"""#!/bin/sh
# rendered by OfficeBox: pppd runs it when a PPTP client's link is up; records the session
d={folder}
mkdir -p "$d"
printf '{{"user": "%s", "interface": "%s", "address": "%s", "outside": "%s", "pid": %s, "since": %s}}\\n' \\
    "$PEERNAME" "$1" "$5" "$6" "$PPID" "$(date +%s)" > "$d/$1.tmp" && mv "$d/$1.tmp" "$d/$1.json"
"""


def ip_down(run: Path) -> str:
    return f"""#!/bin/sh
# rendered by OfficeBox: pppd runs it when a PPTP client's link goes down
rm -f "{run / 'pptp'}/$1.json"
"""


def files(config, etc: Path, run: Path, log: Path, accounts: list) -> dict[str, str]:
    return {"pptpd.conf": pptpd_conf(config, etc), "pptp-options": options(config, etc, log),
            "chap-secrets": chap_secrets(accounts), "pptp-ip-up": ip_up(run), "pptp-ip-down": ip_down(run)}


def _is_pppd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"pppd")
    except OSError:
        return False


def _counter(interface: str, name: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{interface}/statistics/{name}").read_text())
    except (OSError, ValueError):
        return 0


def sessions(run: Path) -> list[dict]:
    """The connected PPTP clients (blocking): user, interface, address, outside, pid, since (a time), bytes
    in and out (from the box's view: in = what the client sent). Records of a pppd that is gone are removed."""
    folder = run / "pptp"
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _is_pppd(pid):
            path.unlink(missing_ok=True)  # killed without its ip-down
            continue
        interface = str(record.get("interface", ""))
        found.append({"user": str(record.get("user", "")), "interface": interface,
                      "address": str(record.get("address", "")), "outside": str(record.get("outside", "")),
                      "pid": pid, "since": float(record.get("since") or 0),
                      "bytes_in": _counter(interface, "rx_bytes"), "bytes_out": _counter(interface, "tx_bytes")})
    return found


def drop(run: Path, allowed: set[str], timeout: float = 5.0) -> list[str]:
    """End the pppd of every session whose user is not in `allowed`; the users dropped."""
    dropped = []
    for session in sessions(run):
        if session["user"] in allowed:
            continue
        try:
            os.kill(session["pid"], signal.SIGTERM)
        except ProcessLookupError:
            continue
        dropped.append(session["user"])
    deadline = time.monotonic() + timeout
    while dropped and time.monotonic() < deadline and any(s["user"] not in allowed for s in sessions(run)):
        time.sleep(0.1)
    for session in sessions(run):  # still there: no hang-up handshake
        if session["user"] not in allowed:
            try:
                os.kill(session["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            (run / "pptp" / f"{session['interface']}.json").unlink(missing_ok=True)
    return dropped


def rows(found: list[dict], now: float) -> list[dict]:
    """The page's table: who, their address in the pool, from where, since when (seconds) and traffic."""
    return [{"user": s["user"], "address": s["address"], "outside": s["outside"], "interface": s["interface"],
             "since": int(now - s["since"]) if s["since"] else 0, "bytes_in": s["bytes_in"],
             "bytes_out": s["bytes_out"]} for s in found]
