"""The box's own networking, brought to the state in `config.network` with pyroute2.

    report = apply_network(config, netns=None, ctx=runtime.ctx)   # after every applied network change
    status = network_status(netns=None, ctx=runtime.ctx)          # interfaces, routes, DHCP lease
    stop_network(netns=None)                                      # at shutdown: stop DHCP clients

- LAN: the interface is brought up with exactly the configured IPv4 address.
- Voice VLAN: `<lan>.<vlan_id>` (a VLAN on the LAN port) is created, addressed and brought up; removed
  when switched off.
- WAN static: address + default route; dhcp: a busybox udhcpc child (our own hook script applies the
  lease and records it as JSON, never touching /etc/resolv.conf); none: no default route.
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

ROUTE_PROTO = 188  # marks the static routes this module manages
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
        return {"lab": True, "interfaces": [], "routes": [], "lease": None}
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
    wan_if = config.network.wan.interface if config is not None else "wan0"
    client = None  # the WAN DHCP client: True running, False stopped, None not used
    if config is not None and config.network.wan.mode == "dhcp":
        client = dhcp_client_running(netns, wan_if)
    return {"lab": False, "interfaces": interfaces, "routes": routes, "lease": dhcp_lease(ctx, netns, wan_if),
            "dhcp_client": client}


def dhcp_client_running(netns: str | None, ifname: str) -> bool:
    proc = _dhcp_clients.get((netns, ifname))
    return proc is not None and proc.poll() is None


def stop_network(netns: str | None = None) -> None:
    """Stop the DHCP clients started for `netns` (the host when None)."""
    _stop_dhcp(netns)
