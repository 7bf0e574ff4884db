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
import threading
import time

from cryptography import x509

from appliance.aio import cancel_and_wait
from appliance.contributions import Listener, Network
from appliance.fsutil import atomic_write
from appliance.service import ApplyError, ChildSpec, Service, Status
from services.vpn import bundle, pptp, revocation, strongswan, swanctl
from services.vpn.config import VpnConfig
from services.vpn.pki import Pki, ensure_site, issue_peer
from services.vpn.pki import ensure as ensure_pki
from services.vpn.strongswan import CHARON, TUN, Paths, allowed_accounts, strongswan_conf, swanctl_conf
from services.vpn.wireguard import Interface, allowed_devices, endpoint_host, server_conf

log = logging.getLogger("officebox.vpn")
TICK = 1.0
SAS_EVERY = 5  # ticks
ROAD_WARRIORS = "road-warriors"  # the IKEv2 remote-access connection in swanctl.conf
WG_CONNECTED = 180  # seconds: a WireGuard peer with a newer handshake counts as connected
PPP = "ppp*"  # the PPTP clients' links (nft wildcard)


class VpnService(Service):
    name = "vpn"
    title = "VPN (IPsec between offices, WireGuard, IKEv2 and legacy PPTP for staff)"
    Config = VpnConfig
    depends_on = ("system", "network", "users")
    lab_enabled = False

    @classmethod
    def contributes(cls, config, lab: bool) -> list:
        """IKE/NAT-T (and ESP) from the tunnels' peers, WireGuard's port when on; their networks."""
        vpn: VpnConfig = config.vpn
        found: list = []
        tunnels = [t for t in vpn.tunnels if t.enabled]
        if tunnels or vpn.remote_access.enabled:
            peers = tuple(sorted({t.peer for t in tunnels}))
            clients = vpn.remote_access.enabled or not all(_is_address(p) for p in peers)
            wan_peers = () if clients else peers
            found += [Listener("ike", "udp", (500, 500), wan_peers, "IPsec IKE"),
                      Listener("ike-nat-t", "udp", (4500, 4500), wan_peers, "IPsec NAT-T"),
                      Listener("ipsec-esp", "esp", (0, 0), wan_peers, "IPsec ESP")]
            found += [Network("vpn", str(net), TUN, f"tunnel {t.name}") for t in tunnels for net in t.remote_subnets]
            if vpn.remote_access.enabled:
                found.append(Network("vpn", str(vpn.remote_access.pool), TUN, "IKEv2 clients"))
        wg = vpn.wireguard
        if wg.enabled:
            found.append(Listener("wireguard", "udp", (wg.port, wg.port), (), "WireGuard"))
            found.append(Network("vpn", str(wg.pool), wg.interface, "WireGuard devices"))
        if vpn.pptp.enabled:  # pptpd's control connection and its GRE data; every client's link is a ppp*
            found += [Listener("pptp", "tcp", (1723, 1723), (), "PPTP (legacy, insecure)"),
                      Listener("pptp-gre", "gre", (0, 0), (), "PPTP GRE"),
                      Network("vpn", str(vpn.pptp.pool), PPP, "PPTP clients")]
        return found

    def __init__(self, ctx, netns: str | None = None) -> None:
        super().__init__(ctx)
        self.netns = netns
        self._config = None
        self._sas: list[dict] = []
        self._sas_at = 0.0
        self._task: asyncio.Task | None = None
        self._wg: Interface | None = None
        self._wg_synced = ""
        self._wg_lock = threading.Lock()
        self.error = ""

    @property
    def paths(self) -> Paths:
        return Paths(etc=self.ctx.etc_dir(self.name), run=self.ctx.run_dir(self.name))

    @property
    def can_run(self) -> bool:
        return not self.ctx.lab or self.netns is not None

    def wanted(self, config) -> bool:
        return self.can_run and (any(t.enabled for t in config.vpn.tunnels) or config.vpn.remote_access.enabled)

    def pptp_wanted(self, config) -> bool:
        return self.can_run and config.vpn.pptp.enabled

    @property
    def pki(self) -> Pki:
        return Pki(self.ctx.state_dir(self.name) / "pki")

    @staticmethod
    def server_id(config) -> str:
        wan = config.network.wan.address
        return config.vpn.remote_access.server_name or (str(wan.ip) if wan is not None else "")

    def wireguard(self, config) -> Interface | None:
        wg = config.vpn.wireguard
        if not (self.can_run and wg.enabled):
            return None
        if self._wg is None or self._wg.name != wg.interface:
            self._wg = Interface(wg.interface, self.netns)
        return self._wg

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
            expired = bundle.validity(tunnel.bundle) if tunnel.enabled and tunnel.bundle else ""
            if expired:
                errors.append(f"tunnel {tunnel.name}: {expired}")
        errors += self._validate_wireguard(config, lan)
        errors += self._validate_road_warriors(config, lan)
        errors += self._validate_pptp(config, lan)
        if len(str(self.paths.uri)) > 100:
            errors.append("the VPN control socket path is too long for a Unix socket: use a shorter data directory")
        return errors

    def _validate_wireguard(self, config, lan) -> list[str]:
        wg = config.vpn.wireguard
        errors = []
        clash = [str(n) for n in lan + [s for t in config.vpn.tunnels for s in t.remote_subnets + t.local_subnets]
                 if n.overlaps(wg.pool)]
        if clash and (wg.enabled or wg.devices):
            errors.append(f"the WireGuard pool {wg.pool} overlaps {', '.join(clash)}: choose another pool")
        logins = {u.login for u in config.users}
        errors += [f"WireGuard device {d.name}: no user with the login {d.user}" for d in wg.devices
                   if d.user not in logins]
        if wg.enabled and not endpoint_host(config):
            errors.append("WireGuard: enter the public name or address devices dial (the WAN has no fixed address)")
        if wg.enabled and wg.port == config.system.admin_port:
            errors.append(f"WireGuard cannot use port {wg.port}: the web admin listens there")
        return errors

    def _validate_road_warriors(self, config, lan) -> list[str]:
        ra = config.vpn.remote_access
        errors = []
        if ra.enabled and not self.server_id(config):
            errors.append("IKEv2 remote access: enter the name or address clients dial (the WAN has no fixed address)")
        others = lan + [config.vpn.wireguard.pool] + [s for t in config.vpn.tunnels for s in t.remote_subnets]
        clash = [str(n) for n in others if n.overlaps(ra.pool)]
        if ra.enabled and clash:
            errors.append(f"the IKEv2 client pool {ra.pool} overlaps {', '.join(clash)}: choose another pool")
        logins = {u.login for u in config.users}
        errors += [f"IKEv2 account: no user with the login {a.user}" for a in ra.accounts if a.user not in logins]
        return errors

    def _validate_pptp(self, config, lan) -> list[str]:
        vpn = config.vpn
        if not vpn.pptp.enabled:
            return []
        others = [(n, "the LAN") for n in lan]
        others += [(s, f"tunnel {t.name}") for t in vpn.tunnels for s in t.remote_subnets]
        if vpn.wireguard.enabled or vpn.wireguard.devices:
            others.append((vpn.wireguard.pool, "the WireGuard pool"))
        if vpn.remote_access.enabled:
            others.append((vpn.remote_access.pool, "the IKEv2 client pool"))
        clash = [f"{what} {net}" for net, what in others if net.overlaps(vpn.pptp.pool)]
        if clash:
            return [f"the PPTP pool {vpn.pptp.pool} overlaps {', '.join(clash)}: choose another pool"]
        return []

    def render(self, config) -> dict[str, str]:
        files = {"strongswan.conf": strongswan_conf(self.paths),
                 "swanctl.conf": swanctl_conf(config, self.pki, self.server_id(config)),
                 **strongswan.credentials(config)}
        if config.vpn.wireguard.enabled:
            files["wg.conf"] = server_conf(config)
        if config.vpn.pptp.enabled:
            files.update(pptp.files(config, self.paths.etc, self.paths.run, self.ctx.log_dir(self.name) / "pppd.log",
                                    allowed_accounts(config)))
        return files

    async def check(self, config, staged) -> None:
        for script in ("pptp-ip-up", "pptp-ip-down"):  # pppd runs them (rendered 0600)
            if (staged / script).exists():
                (staged / script).chmod(0o700)
        try:
            await asyncio.to_thread(self._stage_credentials, config, staged)
            await asyncio.to_thread(swanctl.check, staged)
        except (OSError, swanctl.SwanctlError) as exc:
            raise ApplyError(f"strongSwan refused the VPN configuration: {exc}") from exc

    def _stage_credentials(self, config, staged) -> None:
        """The keys of the box's own certificates go next to swanctl.conf (swanctl loads keys from pkcs8/):
        the server certificate's (remote access), the site certificate's (head-office certificate tunnels)."""
        company = config.system.company_name
        if config.vpn.remote_access.enabled:
            pki = ensure_pki(self.pki.root, self.server_id(config), company)
            atomic_write(staged / "pkcs8" / "server.key", pki.server_key.read_bytes(), mode=0o600)
        if any(t.enabled and t.auth == "certificate" and not t.peer_bundle_secret for t in config.vpn.tunnels):
            pki = ensure_site(self.pki.root, strongswan.site_identity(config, self.pki), company)
            atomic_write(staged / "pkcs8" / "site.key", pki.site_key.read_bytes(), mode=0o600)
        crl = revocation.crl_pem(self.pki.root)
        if crl:  # the branch certificates this box revoked (services/vpn/revocation.py)
            atomic_write(staged / "x509crl" / revocation.CRL_FILE, crl.encode(), mode=0o644)

    def processes(self, config) -> list[ChildSpec]:
        specs = []
        wg = self.wireguard(config)
        if wg is not None and not wg.kernel:  # no WireGuard in the kernel: the userspace one
            specs.append(ChildSpec("wireguard-go", self._in_netns("wireguard-go", "-f", wg.name)))
        return specs + self._charon(config) + self._pptpd(config)

    def _in_netns(self, *argv: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns, *argv) if self.netns else argv

    def _charon(self, config) -> list[ChildSpec]:
        if not self.wanted(config):
            return []
        digest = hashlib.sha256(strongswan_conf(self.paths).encode()).hexdigest()[:16]
        argv = self._in_netns(CHARON)
        env = (("STRONGSWAN_CONF", str(self.paths.strongswan_conf)), ("OFFICEBOX_VPN_CONF", digest))
        return [ChildSpec("charon", argv, env=env, stop_timeout=15.0)]

    def _pptpd(self, config) -> list[ChildSpec]:
        if not self.pptp_wanted(config):
            return []
        conf = self.paths.etc / "pptpd.conf"
        digest = hashlib.sha256(pptp.pptpd_conf(config, self.paths.etc).encode()).hexdigest()[:16]
        argv = self._in_netns(pptp.PPTPD, "--fg", "--conf", str(conf), "--pidfile", str(self.paths.run / "pptpd.pid"))
        return [ChildSpec("pptpd", argv, env=(("OFFICEBOX_PPTPD_CONF", digest),), stop_timeout=10.0)]

    def drop_pptp(self, config) -> list[str]:
        """End the PPTP sessions of users no longer allowed (disabled, VPN off, no account; all when PPTP
        is off): their pppd is terminated. The users dropped (blocking)."""
        allowed = {a.user for a in allowed_accounts(config)} if config is not None and config.vpn.pptp.enabled \
            else set()
        dropped = pptp.drop(self.paths.run, allowed)
        for user in dropped:
            log.warning("PPTP: dropped %s (no longer allowed)", user)
        return dropped

    async def start(self, config) -> None:
        self._config = config
        self._task = asyncio.create_task(self._poll(), name="vpn:state")

    async def _poll(self) -> None:
        tick = 0
        while True:
            try:
                await asyncio.to_thread(self.ensure_wireguard, self._config)
                if tick % SAS_EVERY == 0:
                    await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("checking the VPN state failed")
            tick += 1
            await asyncio.sleep(TICK)

    def ensure_wireguard(self, config) -> None:
        """Bring the WireGuard interface to the rendered peers; again after wireguard-go restarted."""
        wg = self.wireguard(config)
        with self._wg_lock:
            if wg is None:
                if self._wg is not None and self._wg_synced:
                    self._wg.remove()
                self._wg_synced = ""
                return
            text = server_conf(config)
            if text == self._wg_synced and wg.listen_port() == config.vpn.wireguard.port:
                return
            if not wg.exists():
                return  # wireguard-go is starting: the next tick configures it
            wg.sync(self.paths.etc / "wg.conf", config.vpn.wireguard.box_address)
            self._wg_synced = text

    async def reload(self, config) -> None:
        self._config = config
        await asyncio.to_thread(self.drop_pptp, config)
        try:
            await asyncio.to_thread(self.ensure_wireguard, config)
        except RuntimeError as exc:
            raise ApplyError(f"WireGuard: {exc}") from exc
        if not self.wanted(config) or not (self.paths.run / "charon.vici").exists():
            return  # charon loads the files itself when the supervisor (re)starts it
        try:
            await asyncio.to_thread(self._load, config)
        except swanctl.SwanctlError as exc:
            raise ApplyError(str(exc)) from exc

    def _load(self, config) -> None:
        swanctl.load(self.paths)
        names = {t.name for t in config.vpn.tunnels if t.enabled} | {ROAD_WARRIORS}
        accounts = {a.user for a in allowed_accounts(config)} if config.vpn.remote_access.enabled else set()
        for sa in swanctl.list_sas(self.paths):
            if sa["name"] not in names:
                swanctl.terminate(self.paths, sa["name"])
            elif sa["name"] == ROAD_WARRIORS and sa.get("remote-eap-id") not in accounts:
                swanctl.terminate_id(self.paths, sa["uniqueid"])  # a disabled user: dropped at once
        self.refresh()

    async def stop(self) -> None:
        self._config = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._wg is not None:
            await asyncio.to_thread(self._wg.remove)
            self._wg, self._wg_synced = None, ""
        await asyncio.to_thread(self.drop_pptp, None)  # pppd left pptpd's process group: end them too

    # -- live state -------------------------------------------------------------------------------
    def tunnels(self, config=None) -> list[dict]:
        """Every configured tunnel (of `config`, default the running one) with its live state."""
        config = config or self._config
        return tunnel_rows(config, self._sas if self._config is not None else []) if config is not None else []

    def refresh(self) -> None:
        """Ask charon for the live SAs (blocking: from a worker thread or a web request)."""
        try:
            self._sas = swanctl.list_sas(self.paths) if (self.paths.run / "charon.vici").exists() else []
            self._sas_at, self.error = time.time(), ""
        except swanctl.SwanctlError as exc:
            self._sas, self.error = [], str(exc)

    def _peers(self) -> dict[str, dict]:
        """WireGuard's live peers by public key (blocking)."""
        wg = self.wireguard(self._config) if self._config is not None else None
        if wg is None or not wg.exists():
            return {}
        return {p.public_key: {"endpoint": p.endpoint, "latest_handshake": p.latest_handshake,
                               "rx_bytes": p.rx_bytes, "tx_bytes": p.tx_bytes} for p in wg.peers()}

    def devices(self, config=None) -> list[dict]:
        """Every WireGuard device (of `config`, default the running one) with its live state (blocking)."""
        config = config or self._config
        return device_rows(config, self._peers()) if config is not None else []

    def clients(self) -> list[dict]:
        return client_rows(self._sas if self._config is not None else [], self._sas_at)

    def wireguard_peers(self, config=None) -> list[dict]:
        return connected(self.devices(config))

    def live(self) -> dict:
        """What charon and WireGuard report now, for rows made with the caller's configuration
        (tunnel_rows, device_rows, client_rows; appliance.clients.VpnClient; blocking)."""
        if self._config is None:
            return {"sas": [], "sas_at": 0.0, "peers": {}, "issued": {}, "pptp": [], "pptp_at": 0.0}
        self.refresh()
        return {"sas": self._sas, "sas_at": self._sas_at, "peers": self._peers(),
                "issued": revocation.unrevoked(self.pki.root), "pptp": pptp.sessions(self.paths.run),
                "pptp_at": time.time()}

    def ca_pem(self) -> str:
        ca = self.pki.ca
        return ca.read_text() if ca.exists() else ""

    def issue_bundle(self, tunnel_name: str) -> str:
        """A new peer bundle for the branch of the running tunnel `tunnel_name` (see issue_bundle below)."""
        return issue_bundle(self.pki, self._config, tunnel_name)

    def revoke_peer(self, tunnel_name: str) -> list[str]:
        """Revoke the certificates issued to the branch of `tunnel_name` (see revoke_peer below)."""
        serials = revoke_peer(self.pki, self.paths, self._config, tunnel_name)
        self.refresh()
        return serials

    def disconnect(self, unique_id: str) -> str:
        """End one remote-access client's IKE SA; the user it was, or "" when no such client is connected."""
        self.refresh()
        client = next((c for c in self.clients() if c["id"] == unique_id), None)
        if client is None:
            return ""
        try:
            swanctl.terminate_id(self.paths, unique_id)
        except swanctl.SwanctlError as exc:
            raise ApplyError(str(exc)) from exc
        self.refresh()
        if any(c["id"] == unique_id for c in self.clients()):
            raise ApplyError(f"charon did not end the connection of {client['user']}")
        return client["user"]

    def status(self) -> Status:
        if not self.can_run:
            return Status("disabled", "the VPN needs the box's own network (not available in lab mode)")
        if self._config is None:
            return Status("starting", "starting")
        rows = [r for r in self.tunnels() if r["state"] != "off"]
        wg = self._config.vpn.wireguard
        if not rows:
            methods = ([f"WireGuard on port {wg.port}"] if wg.enabled else []) + \
                (["PPTP (insecure)"] if self._config.vpn.pptp.enabled else [])
            return Status("ok", ", ".join(methods) or "no tunnel configured")
        up = sum(r["state"] == "up" for r in rows)
        figures = {f"tunnel {r['name']}": r["state"] for r in rows}
        health = "ok" if up == len(rows) else "degraded"
        return Status(health, self.error or f"{up} of {len(rows)} tunnels up", figures)


def issue_bundle(pki: Pki, config, tunnel_name: str) -> str:
    """A new peer bundle for the branch at the other end of `config`'s tunnel `tunnel_name` (a certificate
    tunnel whose peer certificate this box issues): the branch's new key and certificate, this box's site
    certificate and its CA (services/vpn/bundle.py). A secret: hand it to the branch. ApplyError if that
    tunnel issues none."""
    tunnel = next((t for t in config.vpn.tunnels if t.name == tunnel_name), None) if config else None
    if tunnel is None:
        raise ApplyError(f"there is no running tunnel {tunnel_name}: save it and let the VPN start first")
    if tunnel.auth != "certificate" or tunnel.peer_bundle_secret:
        raise ApplyError(f"tunnel {tunnel_name}: only a certificate tunnel without an imported bundle "
                         "(the head office's side) issues the branch's certificate")
    company = config.system.company_name
    pki = ensure_site(pki.root, strongswan.site_identity(config, pki), company)
    identity = strongswan.peer_identity(tunnel, pki.site_identity(""))
    key, cert = issue_peer(pki.root, identity, company)
    revocation.record(pki.root, tunnel_name, x509.load_pem_x509_certificate(cert), identity)
    log.info("issued a peer certificate for tunnel %s", tunnel_name)
    return bundle.make(tunnel_name, key, cert, pki.site_cert.read_bytes(), pki.ca.read_bytes())


def revoke_peer(pki: Pki, paths: Paths, config, tunnel_name: str) -> list[str]:
    """Revoke every certificate this box issued to the branch of `tunnel_name` (the serials, hex) and, when
    charon runs, load the new CRL into it and end the tunnel's SAs: the branch's next IKE_SA is refused
    until it imports a new bundle. ApplyError when this box issued no valid certificate for that tunnel."""
    if not any(r["tunnel"] == tunnel_name for r in revocation.issued(pki.root)):
        raise ApplyError(f"this box issued no certificate for a tunnel {tunnel_name}")
    serials = revocation.revoke(pki.root, tunnel_name)
    if not serials:
        raise ApplyError(f"the certificates issued for tunnel {tunnel_name} are revoked already")
    log.warning("revoked the peer certificates of tunnel %s: %s", tunnel_name, ", ".join(serials))
    if (paths.run / "charon.vici").exists() and paths.swanctl_conf.exists():
        # the applied generation gets the CRL the next apply stages anyway (VpnService._stage_credentials)
        atomic_write(paths.etc / "x509crl" / revocation.CRL_FILE, revocation.crl_pem(pki.root).encode(), mode=0o644)
        swanctl.load(paths)
        if config is not None and any(t.name == tunnel_name for t in config.vpn.tunnels):
            swanctl.terminate(paths, tunnel_name)
    return serials


def _is_address(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _inside(address: str, nets: list[ipaddress.IPv4Network]) -> bool:
    return _is_address(address) and any(ipaddress.IPv4Address(address) in net for net in nets)


def tunnel_rows(config, sas: list[dict]) -> list[dict]:
    """Every tunnel of `config` with its state in charon's SAs `sas` (swanctl --list-sas)."""
    rows = []
    for tunnel in config.vpn.tunnels:
        mine = [sa for sa in sas if sa["name"] == tunnel.name]
        established = [sa for sa in mine if sa.get("state") == "ESTABLISHED"]
        children = [c for sa in established for c in sa.get("child-sas", {}).values()
                    if isinstance(c, dict) and c.get("state") == "INSTALLED"]
        peer_bundle = tunnel.bundle
        problem = bundle.validity(peer_bundle) if peer_bundle else ""
        state = ("off" if not tunnel.enabled else "up" if children else "certificate invalid" if problem else
                 "connecting" if mine else "down")
        rows.append({
            "name": tunnel.name, "peer": tunnel.peer, "state": state, "auth": tunnel.auth, "problem": problem,
            "allowed_services": list(tunnel.allowed_services),
            "ike_version": tunnel.ike_version,
            "identity": peer_bundle.identity if peer_bundle else "",
            "peer_identity": peer_bundle.peer_identity if peer_bundle else "",
            "certificate_expires": int(peer_bundle.cert.not_valid_after_utc.timestamp()) if peer_bundle else 0,
            "up_seconds": max((int(sa.get("established", 0)) for sa in established), default=0),
            "bytes_in": sum(int(c.get("bytes-in", 0)) for c in children),
            "bytes_out": sum(int(c.get("bytes-out", 0)) for c in children),
            "packets_in": sum(int(c.get("packets-in", 0)) for c in children),
            "packets_out": sum(int(c.get("packets-out", 0)) for c in children),
            "algorithm": "/".join(filter(None, (established[0].get("encr-alg"), established[0].get(
                "prf-alg"), established[0].get("dh-group")))) if established else "",
        })
    return rows


def device_rows(config, peers: dict[str, dict]) -> list[dict]:
    """Every WireGuard device of `config` with its live figures in `peers` (by public key)."""
    allowed = {d.public_key for d in allowed_devices(config)}
    rows = []
    for device in config.vpn.wireguard.devices:
        peer = peers.get(device.public_key) or {}
        rows.append({"user": device.user, "name": device.name, "address": str(device.address),
                     "allowed": device.public_key in allowed, "endpoint": peer.get("endpoint", ""),
                     "latest_handshake": peer.get("latest_handshake", 0),
                     "rx_bytes": peer.get("rx_bytes", 0), "tx_bytes": peer.get("tx_bytes", 0)})
    return rows


def client_rows(sas: list[dict], sas_at: float) -> list[dict]:
    """The connected IKEv2 remote-access clients in `sas` (listed at `sas_at`): who, their virtual and
    outside address, for how long (seconds) and their traffic."""
    rows = []
    for sa in sas:
        if sa["name"] != ROAD_WARRIORS or sa.get("state") != "ESTABLISHED":
            continue
        children = [c for c in sa.get("child-sas", {}).values() if isinstance(c, dict)]
        rows.append({"id": sa.get("uniqueid", ""), "user": sa.get("remote-eap-id") or sa.get("remote-id", ""),
                     "virtual_ip": ", ".join(sa.get("remote-vips", [])),
                     "outside": f"{sa.get('remote-host', '')}:{sa.get('remote-port', '')}",
                     "since": int(sas_at - int(sa.get("established", 0))),
                     "bytes_in": sum(int(c.get("bytes-in", 0)) for c in children),
                     "bytes_out": sum(int(c.get("bytes-out", 0)) for c in children)})
    return rows


def connected(devices: list[dict]) -> list[dict]:
    """The devices that shook hands in the last WG_CONNECTED seconds."""
    now = time.time()
    return [d for d in devices if d["latest_handshake"] and now - d["latest_handshake"] < WG_CONNECTED]
