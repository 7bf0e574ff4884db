"""The VPN service: strongSwan's charon as a supervised child, driven by rendered swanctl.conf.

render -> check() loads the staged files into a throwaway charon (the daemon's own parser and
algorithm tables) -> charon runs under the supervisor with its own strongswan.conf (STRONGSWAN_CONF)
and vici socket in run/vpn, and loads swanctl.conf at start -> reload() loads it again and ends the
SAs of tunnels that were removed. Tunnels come back by themselves: start_action/close_action start,
dpd_action restart, keyingtries 0 (for ever).

`netns` (tests): charon runs in that network namespace. In lab mode without it no daemon runs: a
VPN needs the box's own WAN and routing, which lab mode never touches.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging

from appliance.aio import cancel_and_wait
from appliance.service import ApplyError, ChildSpec, Service, Status
from services.vpn import swanctl
from services.vpn.config import VpnConfig
from services.vpn.strongswan import CHARON, Paths, strongswan_conf, swanctl_conf

log = logging.getLogger("officebox.vpn")
POLL_EVERY = 5.0


class VpnService(Service):
    name = "vpn"
    title = "VPN (IPsec between offices)"
    Config = VpnConfig
    depends_on = ("system", "network")
    lab_enabled = False

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self._config = None
        self._sas: list[dict] = []
        self._task: asyncio.Task | None = None
        self.error = ""

    @property
    def paths(self) -> Paths:
        return Paths(etc=self.ctx.etc_dir(self.name), run=self.ctx.run_dir(self.name))

    @property
    def can_run(self) -> bool:
        return not self.ctx.lab or self.netns is not None

    def wanted(self, config) -> bool:
        return self.can_run and any(t.enabled for t in config.vpn.tunnels)

    # -- Service interface ------------------------------------------------------------------------
    def validate(self, config) -> list[str]:
        vpn: VpnConfig = config.vpn
        errors = []
        lan = config.network.lan_networks()
        for tunnel in vpn.tunnels:
            for net in tunnel.remote_subnets:
                clash = [str(n) for n in lan if n.overlaps(net)]
                if clash:
                    errors.append(f"tunnel {tunnel.name}: the remote subnet {net} overlaps this box's LAN "
                                  f"{', '.join(clash)}; the two offices need different LAN subnets")
            if not any(n.overlaps(net) for n in lan for net in tunnel.local_subnets):
                errors.append(f"tunnel {tunnel.name}: none of the local subnets is one of this box's LANs "
                              f"({', '.join(map(str, lan))})")
            if tunnel.peer in {str(n.network_address) for n in lan} or _inside(tunnel.peer, lan):
                errors.append(f"tunnel {tunnel.name}: the peer {tunnel.peer} is on this box's LAN")
        if len(str(self.paths.uri)) > 100:
            errors.append("the VPN control socket path is too long for a Unix socket: use a shorter data directory")
        return errors

    def render(self, config) -> dict[str, str]:
        return {"strongswan.conf": strongswan_conf(self.paths), "swanctl.conf": swanctl_conf(config.vpn)}

    async def check(self, config, staged) -> None:
        try:
            await asyncio.to_thread(swanctl.check, staged)
        except (OSError, swanctl.SwanctlError) as exc:
            raise ApplyError(f"strongSwan refused the VPN configuration: {exc}") from exc

    def processes(self, config) -> list[ChildSpec]:
        if not self.wanted(config):
            return []
        digest = hashlib.sha256(strongswan_conf(self.paths).encode()).hexdigest()[:16]
        argv: tuple[str, ...] = (CHARON,)
        if self.netns:
            argv = ("ip", "netns", "exec", self.netns, *argv)
        env = (("STRONGSWAN_CONF", str(self.paths.strongswan_conf)), ("OFFICEBOX_VPN_CONF", digest))
        return [ChildSpec("charon", argv, env=env, stop_timeout=15.0)]

    async def start(self, config) -> None:
        self._config = config
        self._task = asyncio.create_task(self._poll(), name="vpn:state")

    async def _poll(self) -> None:
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(POLL_EVERY)

    async def reload(self, config) -> None:
        self._config = config
        if not self.wanted(config) or not (self.paths.run / "charon.vici").exists():
            return  # charon loads the files itself when the supervisor (re)starts it
        try:
            await asyncio.to_thread(self._load, config)
        except swanctl.SwanctlError as exc:
            raise ApplyError(str(exc)) from exc

    def _load(self, config) -> None:
        swanctl.load(self.paths)
        names = {t.name for t in config.vpn.tunnels if t.enabled}
        for sa in swanctl.list_sas(self.paths):
            if sa["name"] not in names:
                swanctl.terminate(self.paths, sa["name"])
        self.refresh()

    async def stop(self) -> None:
        self._config = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    # -- live state -------------------------------------------------------------------------------
    def tunnels(self) -> list[dict]:
        """Every configured tunnel with its live state: up/connecting/down, since, traffic."""
        if self._config is None:
            return []
        sas = self._sas
        rows = []
        for tunnel in self._config.vpn.tunnels:
            mine = [sa for sa in sas if sa["name"] == tunnel.name]
            established = [sa for sa in mine if sa.get("state") == "ESTABLISHED"]
            children = [c for sa in established for c in sa.get("child-sas", {}).values()
                        if isinstance(c, dict) and c.get("state") == "INSTALLED"]
            state = ("off" if not tunnel.enabled else "up" if children else
                     "connecting" if mine else "down")
            rows.append({
                "name": tunnel.name, "peer": tunnel.peer, "state": state,
                "up_seconds": max((int(sa.get("established", 0)) for sa in established), default=0),
                "bytes_in": sum(int(c.get("bytes-in", 0)) for c in children),
                "bytes_out": sum(int(c.get("bytes-out", 0)) for c in children),
                "packets_in": sum(int(c.get("packets-in", 0)) for c in children),
                "packets_out": sum(int(c.get("packets-out", 0)) for c in children),
                "algorithm": "/".join(filter(None, (established[0].get("encr-alg"), established[0].get(
                    "prf-alg"), established[0].get("dh-group")))) if established else "",
            })
        return rows

    def refresh(self) -> None:
        """Ask charon for the live SAs (blocking: from a worker thread or a web request)."""
        try:
            self._sas = swanctl.list_sas(self.paths) if (self.paths.run / "charon.vici").exists() else []
            self.error = ""
        except swanctl.SwanctlError as exc:
            self._sas, self.error = [], str(exc)

    def status(self) -> Status:
        if not self.can_run:
            return Status("disabled", "the VPN needs the box's own network (not available in lab mode)")
        if self._config is None:
            return Status("starting", "starting")
        rows = [r for r in self.tunnels() if r["state"] != "off"]
        if not rows:
            return Status("ok", "no tunnel configured")
        up = sum(r["state"] == "up" for r in rows)
        figures = {f"tunnel {r['name']}": r["state"] for r in rows}
        health = "ok" if up == len(rows) else "degraded"
        return Status(health, self.error or f"{up} of {len(rows)} tunnels up", figures)


def _inside(address: str, nets: list[ipaddress.IPv4Network]) -> bool:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return any(ip in net for net in nets)
