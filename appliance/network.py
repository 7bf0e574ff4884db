"""The box's own networking, brought to the state in `config.network` with pyroute2.

    report = apply_network(config, netns=None, ctx=runtime.ctx)   # after every applied network change
    status = network_status(netns=None, ctx=runtime.ctx)          # interfaces, routes, DHCP lease
    stop_network(netns=None)                                      # at shutdown: stop DHCP clients

- LAN: the interface is brought up with exactly the configured IPv4 address.
- Voice VLAN: `<lan>.<vlan_id>` (a VLAN on the LAN port) is created, addressed and brought up; removed
  when switched off.
- WAN static: address + default route; dhcp: a busybox udhcpc child (our own hook script applies the
  lease and records it as JSON, never touching /etc/resolv.conf); none: no default route.
- WAN pppoe: the port is brought up without an address; pppd (rp-pppoe plugin) runs on it as the
  supervisor's child (it must be root: see pppoe_files), its link is PPP_IFNAME, its own hook records
  the link (address, peer, the peer's resolvers) as JSON the network service publishes like a lease.
- Static routes carry protocol number 188 so routes we no longer want are found and removed.
- IPv4 forwarding is switched on (the box routes LAN <-> WAN; the firewall decides what passes).

`netns` names a network namespace (tests); without it the calling process's namespace is used.
With a lab-mode ctx and no netns nothing is touched (the host's networking is never changed).
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from appliance.serviceusers import ROOT_ONLY as PPPOE_ROOT_ONLY  # kept root's 0600/0700 when shared

ROUTE_PROTO = 188  # marks the static routes this module manages
PPP_IFNAME = "wanppp"  # the PPPoE link (pppd's ifname): never ppp*, the PPTP clients' (vpn zone) names
PPPD = "/usr/sbin/pppd"
PPPOE_PLUGIN = "rp-pppoe.so"  # Debian's ppp package, /usr/lib/pppd/<version>/
DHCP_SCRIPT = """#!/bin/sh
# udhcpc hook written by OfficeBox: apply the lease to $interface and record it; no resolv.conf
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    rm -f "$OB_LEASE_FILE"
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    gw=""
    for r in $router; do gw="$r"; break; done
    if [ -n "$gw" ]; then ip route replace default via "$gw" dev "$interface"; fi
    fmt='{"event":"%s","interface":"%s","address":"%s/%s","gateway":"%s",'
    fmt="$fmt"'"dns":"%s","lease":"%s","server":"%s","time":%s}\\n'
    printf "$fmt" \\
        "$1" "$interface" "$ip" "$mask" "$gw" "$dns" "$lease" "$serverid" "$(date +%s)" > "$OB_LEASE_FILE.tmp"
    mv "$OB_LEASE_FILE.tmp" "$OB_LEASE_FILE"
    ;;
esac
exit 0
"""

_dhcp_clients: dict[tuple[str | None, str], subprocess.Popen] = {}
_spawner = ThreadPoolExecutor(1, thread_name_prefix="udhcpc-spawner")  # its one thread stays until exit
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the forked DHCP client (before its exec): SIGTERM when the process that started it dies (kill -9,
    a crash), so no udhcpc outlives the network process and keeps the WAN lease or renews it from root's
    view; exits at once when that process is already gone."""
    parent = os.getppid()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0 or os.getppid() != parent:
        os._exit(1)


class NetworkError(Exception):
    """The network configuration cannot be applied (message for the admin)."""


def voice_interface(network) -> str:
    name = f"{network.lan.interface}.{network.voice.vlan_id}"
    if len(name) > 15:  # kernel limit
        name = f"vlan{network.voice.vlan_id}"
    return name


def _state_dir(ctx) -> Path:
    path = ctx.state_dir("network") if ctx is not None else Path("/run/officebox/network")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ipr(netns: str | None):
    from pyroute2 import IPRoute

    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


def _index(ipr, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise NetworkError(f"there is no network interface named {name}")
    return found[0]


def _ipv4_addrs(ipr, index: int) -> set[tuple[str, int]]:
    return {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}


def _set_address(ipr, index: int, address) -> bool:
    """Make `address` (IPv4Interface) the only IPv4 address of the interface; True if changed."""
    want = (str(address.ip), address.network.prefixlen)
    have = _ipv4_addrs(ipr, index)
    changed = False
    for addr, plen in have - {want}:
        ipr.addr("del", index=index, address=addr, prefixlen=plen)
        changed = True
    if want not in have:
        ipr.addr("add", index=index, address=want[0], prefixlen=want[1])
        changed = True
    return changed


def _add_vlan(ipr, name: str, parent: int, vlan_id: int) -> None:
    from pyroute2 import NetlinkError

    try:
        ipr.link("add", ifname=name, kind="vlan", link=parent, vlan_id=vlan_id)
    except NetlinkError as exc:
        if exc.code == 95:
            raise NetworkError("this kernel has no 802.1Q VLAN support: the voice VLAN cannot be created") from exc
        raise


def _up(ipr, index: int) -> None:
    ipr.link("set", index=index, state="up")


def _sysctl_forwarding(netns: str | None) -> None:
    if netns:
        subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                       check=True, capture_output=True, timeout=10)
    else:
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def _default_routes(ipr) -> list:
    return [r for r in ipr.get_routes(family=2, table=254) if r["dst_len"] == 0]


def _replace_default(ipr, gateway: str, index: int) -> None:
    ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)


def _remove_default(ipr, index: int) -> None:
    for route in _default_routes(ipr):
        if route.get_attr("RTA_OIF") == index:
            ipr.route("del", dst="0.0.0.0/0", gateway=route.get_attr("RTA_GATEWAY"), oif=index)


def _apply_routes(ipr, routes) -> list[str]:
    wanted = {(str(r.destination), str(r.gateway)) for r in routes}
    for dst, gw in sorted(wanted):
        ipr.route("replace", dst=dst, gateway=gw, proto=ROUTE_PROTO)
    for route in ipr.get_routes(family=2, table=254):
        if route["proto"] != ROUTE_PROTO:
            continue
        dst = f"{route.get_attr('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"
        gw = route.get_attr("RTA_GATEWAY")
        if (dst, gw) not in wanted:
            ipr.route("del", dst=dst, gateway=gw, proto=ROUTE_PROTO)
    return [f"{d} via {g}" for d, g in sorted(wanted)]


def _lease_file(ctx, netns: str | None, ifname: str) -> Path:
    return _state_dir(ctx) / f"lease-{netns or 'host'}-{ifname}.json"


def _start_dhcp(ctx, netns: str | None, ifname: str) -> subprocess.Popen:
    key = (netns, ifname)
    proc = _dhcp_clients.get(key)
    if proc is not None and proc.poll() is None:
        return proc
    script = _state_dir(ctx) / "udhcpc-hook.sh"
    script.write_text(DHCP_SCRIPT)
    script.chmod(0o700)
    _end_orphan(ctx, netns, ifname)
    argv = ["busybox", "udhcpc", "-f", "-i", ifname, "-s", str(script), "-t", "5", "-T", "2", "-A", "5"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    log = open(_state_dir(ctx) / f"udhcpc-{netns or 'host'}-{ifname}.log", "ab")
    try:
        # forked by the spawner thread, which lives as long as this process: PR_SET_PDEATHSIG follows the
        # thread that forked, so the client gets its SIGTERM when the process dies, not when a worker does
        proc = _spawner.submit(subprocess.Popen, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               env={**os.environ, "OB_LEASE_FILE": str(_lease_file(ctx, netns, ifname))},
                               start_new_session=True, preexec_fn=_die_with_parent).result(30)
    finally:
        log.close()
    _dhcp_clients[key] = proc
    _pid_file(ctx, netns, ifname).write_text(f"{proc.pid}\n")
    return proc


def _pid_file(ctx, netns: str | None, ifname: str) -> Path:
    return _state_dir(ctx) / f"udhcpc-{netns or 'host'}-{ifname}.pid"


def _end_orphan(ctx, netns: str | None, ifname: str) -> None:
    """The client a network process killed (kill -9, a crash) left running on `ifname`: ended before its
    restarted process starts one, so one client holds the WAN lease."""
    path = _pid_file(ctx, netns, ifname)
    try:
        pid = int(path.read_text())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if b"udhcpc" in argv and ifname.encode() in argv:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return
        for _ in range(50):  # bounded: 5 s
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.1)
    path.unlink(missing_ok=True)


def _stop_dhcp(netns: str | None, ifname: str | None = None) -> None:
    for key in [k for k in _dhcp_clients if k[0] == netns and (ifname is None or k[1] == ifname)]:
        proc = _dhcp_clients.pop(key)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # udhcpc releases nothing by default: the lease stays valid
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wan_ip_interface(network) -> str:
    """The interface the WAN's IP traffic goes through: the PPPoE link in pppoe mode, else the WAN port."""
    return PPP_IFNAME if network.wan.mode == "pppoe" else network.wan.interface


# -- PPPoE: pppd with the rp-pppoe plugin ------------------------------------------------------------
# pppd refuses to run unless root, and the network service's process is not (officebox-network, no new
# privileges): pppd is a daemon the supervisor keeps for it (NetworkService.processes), stopped when the
# WAN is no longer PPPoE or the service stops. Its options (with the password) and hook scripts are
# rendered files of the network service kept root's own (0600, 0700); what pppd writes (its log, the
# link's record) goes to pppoe_dir, root's and readable, never writable, by the network's user.

def pppoe_dir(ctx) -> Path:
    """Root's folder (0755) for pppd's log and the link record; created by the appliance (root)."""
    base = ctx.data_dir if ctx is not None else Path("/run/officebox")
    return base / "run" / "network-pppoe"


def pppoe_record_file(ctx, netns: str | None) -> Path:
    return pppoe_dir(ctx) / f"link-{netns or 'host'}.json"


def pppoe_log_file(ctx, netns: str | None) -> Path:
    return pppoe_dir(ctx) / f"pppd-{netns or 'host'}.log"


def _pppd_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pppoe_options(config, etc: Path, record: Path, logfile: Path) -> str:
    """pppd's options for the WAN over PPPoE (a file pppd reads: the password is never on a command line;
    pppd hides it from its log, hide-password being its default and set here)."""
    wan = config.network.wan
    scripts = etc / PPPOE_ROOT_ONLY
    lines = [
        "# rendered by OfficeBox: the WAN over PPPoE (pppd, rp-pppoe plugin); 0600, root's",
        f"plugin {PPPOE_PLUGIN}",
        f"nic-{wan.interface}",
    ]
    if wan.pppoe_service:
        lines.append(f"rp_pppoe_service {_pppd_quoted(wan.pppoe_service)}")
    if wan.pppoe_ac_name:
        lines.append(f"rp_pppoe_ac {_pppd_quoted(wan.pppoe_ac_name)}")
    lines += [
        f"user {_pppd_quoted(wan.pppoe_user)}",
        f"password {_pppd_quoted(wan.pppoe_password)}",
        "hide-password",
        "noauth",  # the provider does not authenticate to us
        f"ifname {PPP_IFNAME}",
        f"ipparam {record}",
        "nodetach",
        "persist",
        "maxfail 0",  # try again for ever (after holdoff), a wrong password included: the status says why
        "holdoff 5",
        "defaultroute",
        "replacedefaultroute",
        "usepeerdns",  # asked for; the hook records them: /etc/ppp/resolv.conf is never used
        "noipdefault",
        f"mtu {wan.mtu}",
        f"mru {wan.mtu}",
        "lcp-echo-interval 20",
        "lcp-echo-failure 3",
        "noaccomp",
        "default-asyncmap",
        "nopcomp",
        "novj",
        "nobsdcomp",
        "nodeflate",
        "noproxyarp",  # no tty options (lock, crtscts, modem...): with the plugin pppd refuses them
        f"ip-up-script {scripts / 'pppoe-ip-up'}",
        f"ip-down-script {scripts / 'pppoe-ip-down'}",
        f"logfile {logfile}",
    ]
    return "\n".join(lines) + "\n"


PPPOE_IP_UP = """#!/bin/sh
# rendered by OfficeBox: pppd runs it when the PPPoE link is up: ip-up interface tty speed local remote ipparam
# (the record's path); DNS1/DNS2 are the resolvers the provider offered. Recorded as the udhcpc hook does.
umask 022
f="$6"
case "$f" in */network-pppoe/link-*.json) ;; *) exit 0 ;; esac
t="$f.tmp"
printf '{"event":"up","interface":"%s","address":"%s/32","gateway":"%s","dns":"%s","server":"pppoe",\
"pid":%s,"time":%s}\\n' "$1" "$4" "$5" "$(echo $DNS1 $DNS2)" "$PPID" "$(date +%s)" > "$t" && mv -f "$t" "$f"
exit 0
"""

PPPOE_IP_DOWN = """#!/bin/sh
# rendered by OfficeBox: pppd runs it when the PPPoE link goes down
case "$6" in */network-pppoe/link-*.json) rm -f "$6" ;; esac
exit 0
"""


def pppoe_files(config, etc: Path, ctx, netns: str | None) -> dict[str, str]:
    """The network service's rendered files for a PPPoE WAN, under PPPOE_ROOT_ONLY (root's only)."""
    if config.network.wan.mode != "pppoe":
        return {}
    options = pppoe_options(config, etc, pppoe_record_file(ctx, netns), pppoe_log_file(ctx, netns))
    return {f"{PPPOE_ROOT_ONLY}/pppoe-options": options, f"{PPPOE_ROOT_ONLY}/pppoe-ip-up": PPPOE_IP_UP,
            f"{PPPOE_ROOT_ONLY}/pppoe-ip-down": PPPOE_IP_DOWN}


def pppd_argv(etc: Path, netns: str | None) -> tuple[str, ...]:
    """pppd's command line: only the options file's path (no user name, no password)."""
    argv = (PPPD, "file", str(etc / PPPOE_ROOT_ONLY / "pppoe-options"))
    return ("ip", "netns", "exec", netns, *argv) if netns else argv


def prepare_pppoe_dir(ctx, netns: str | None) -> None:
    """Root's 0755 folder and pppd's log (0644, cut when it grew past 1 MB): the network's user reads them."""
    folder = pppoe_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    logfile = pppoe_log_file(ctx, netns)
    try:
        if logfile.stat().st_size > 1 << 20:
            logfile.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    os.fchmod(fd, 0o644)
    os.close(fd)


PPPOE_PROBLEMS = (  # (what pppd logs, what the admin reads), the last one logged counts
    ("authentication failed", "the provider refused the PPPoE user name or password"),
    ("Timeout waiting for PADO", "no PPPoE server answered on the WAN port (is the modem in bridge mode?)"),
    ("Timeout waiting for PADS", "the PPPoE server did not confirm the session"),
    ("Unable to complete PPPoE Discovery", "no PPPoE server answered on the WAN port (is the modem in bridge mode?)"),
    ("Connection terminated", "the PPPoE link went down"),
    ("LCP: timeout sending Config-Requests", "the PPPoE server does not answer"),
)


def pppoe_state(ctx, netns: str | None, ipr=None) -> dict:
    """The PPPoE link as the hook recorded it and the kernel shows it: connected, address, peer, dns,
    problem (the last failure pppd logged, when not connected)."""
    record = None
    try:
        record = json.loads(pppoe_record_file(ctx, netns).read_text())
    except (OSError, ValueError):
        pass
    present = None
    if ipr is not None:
        present = bool(ipr.link_lookup(ifname=PPP_IFNAME))
    connected = isinstance(record, dict) and present is not False
    state = {"connected": connected, "interface": PPP_IFNAME, "address": "", "peer": "", "dns": [], "problem": ""}
    if connected:
        state.update(address=str(record.get("address", "")), peer=str(record.get("gateway", "")),
                     dns=str(record.get("dns", "")).split())
        return state
    try:
        with open(pppoe_log_file(ctx, netns), "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            tail = log.read().decode(errors="replace")
    except OSError:
        tail = ""
    best, where = "", -1
    for needle, message in PPPOE_PROBLEMS:
        at = tail.rfind(needle)
        if at > where:
            best, where = message, at
    state["problem"] = best or "connecting"
    return state


def pppoe_lease(ctx=None, netns: str | None = None) -> dict | None:
    """The link's record in the udhcpc lease's shape (for the bus), or None when not connected."""
    try:
        record = json.loads(pppoe_record_file(ctx, netns).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def apply_network(config, netns: str | None = None, ctx=None) -> dict:
    """Bring interfaces, addresses and routes to `config.network`; returns what was done."""
    if ctx is not None and getattr(ctx, "lab", False) and netns is None:
        return {"applied": False, "reason": "lab mode: the host's networking is left alone"}
    net = config.network
    report: dict = {"applied": True, "netns": netns}
    with _ipr(netns) as ipr:
        lan = _index(ipr, net.lan.interface)
        _up(ipr, lan)
        _set_address(ipr, lan, net.lan.address)
        report["lan"] = f"{net.lan.interface} {net.lan.address}"

        vname = voice_interface(net)
        existing = ipr.link_lookup(ifname=vname)
        if net.voice.enabled:
            if not existing:
                _add_vlan(ipr, vname, lan, net.voice.vlan_id)
                existing = ipr.link_lookup(ifname=vname)
            _up(ipr, existing[0])
            _set_address(ipr, existing[0], net.voice.address)
            report["voice"] = f"{vname} {net.voice.address}"
        elif existing:
            ipr.link("del", index=existing[0])

        wan = net.wan
        if wan.mode == "none":
            _stop_dhcp(netns)
            found = ipr.link_lookup(ifname=wan.interface)
            if found:
                _remove_default(ipr, found[0])
            report["wan"] = "none"
        else:
            windex = _index(ipr, wan.interface)
            _up(ipr, windex)
            if wan.mode == "static":
                _stop_dhcp(netns)
                _set_address(ipr, windex, wan.address)
                _replace_default(ipr, str(wan.gateway), windex)
                report["wan"] = f"{wan.interface} {wan.address} via {wan.gateway}"
            elif wan.mode == "pppoe":  # pppd (the supervisor's) brings PPP_IFNAME and its default route
                _stop_dhcp(netns)
                _remove_default(ipr, windex)
                for addr, plen in _ipv4_addrs(ipr, windex):
                    ipr.addr("del", index=windex, address=addr, prefixlen=plen)
                report["wan"] = f"{wan.interface} pppoe ({PPP_IFNAME})"
            else:
                for other in [k[1] for k in _dhcp_clients if k[0] == netns and k[1] != wan.interface]:
                    _stop_dhcp(netns, other)
                proc = _start_dhcp(ctx, netns, wan.interface)
                report["wan"] = f"{wan.interface} dhcp (client pid {proc.pid})"
        report["routes"] = _apply_routes(ipr, net.routes)
    _sysctl_forwarding(netns)
    return report


def dhcp_lease(ctx=None, netns: str | None = None, ifname: str = "wan0") -> dict | None:
    try:
        return json.loads(_lease_file(ctx, netns, ifname).read_text())
    except (OSError, ValueError):
        return None


def wait_for_lease(ctx, netns: str | None, ifname: str, timeout: float = 20.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = dhcp_lease(ctx, netns, ifname)
        if lease:
            return lease
        time.sleep(0.2)
    return None


def network_status(netns: str | None = None, ctx=None, config=None) -> dict:
    """Interfaces (state, MAC, IPv4 addresses, counters), IPv4 routes and the WAN DHCP lease."""
    if ctx is not None and getattr(ctx, "lab", False) and netns is None:
        return {"lab": True, "interfaces": [], "routes": [], "lease": None, "pppoe": None}
    interfaces, routes = [], []
    with _ipr(netns) as ipr:
        names = {}
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            names[link["index"]] = name
            stats = link.get_attr("IFLA_STATS64")
            interfaces.append({
                "name": name,
                "state": link.get_attr("IFLA_OPERSTATE"),
                "mac": link.get_attr("IFLA_ADDRESS"),
                "addresses": sorted(f"{a}/{p}" for a, p in _ipv4_addrs(ipr, link["index"])),
                "rx_bytes": stats["rx_bytes"] if stats else 0,
                "tx_bytes": stats["tx_bytes"] if stats else 0,
            })
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get_attr("RTA_DST")
            routes.append({
                "destination": f"{dst}/{route['dst_len']}" if dst else "default",
                "gateway": route.get_attr("RTA_GATEWAY") or "",
                "interface": names.get(route.get_attr("RTA_OIF"), ""),
            })
        pppoe = None  # the PPPoE link (pppoe_state) in pppoe mode
        if config is not None and config.network.wan.mode == "pppoe":
            pppoe = pppoe_state(ctx, netns, ipr)
    wan_if = config.network.wan.interface if config is not None else "wan0"
    client = None  # the WAN DHCP client: True running, False stopped, None not used
    if config is not None and config.network.wan.mode == "dhcp":
        client = dhcp_client_running(netns, wan_if)
    lease = dhcp_lease(ctx, netns, wan_if) if pppoe is None else None
    return {"lab": False, "interfaces": interfaces, "routes": routes, "lease": lease, "dhcp_client": client,
            "pppoe": pppoe}


def dhcp_client_running(netns: str | None, ifname: str) -> bool:
    proc = _dhcp_clients.get((netns, ifname))
    return proc is not None and proc.poll() is None


def stop_network(netns: str | None = None) -> None:
    """Stop the DHCP clients started for `netns` (the host when None)."""
    _stop_dhcp(netns)
