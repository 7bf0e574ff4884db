"""WireGuard remote access: the box's interface, one peer per allowed device, the devices' own files.

    server_conf(config)       `wg setconf` text: the box's key and port, a peer per device whose owner
                              exists, is enabled and may use the VPN (a disabled user's peer is absent,
                              so `wg syncconf` drops it at once)
    client_conf(config, dev)  the file a device imports (wg-quick format): its key, address, the box's
                              DNS, the LAN and pool through the tunnel
    add_device(vpn, login, name)  keys made on the box, the next free pool address
    Interface                 creates/configures the interface in the box's namespace (kernel module,
                              else wireguard-go run by the supervisor) and reads the peers' live state
"""
from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

from services.vpn.config import WgDevice
from services.vpn.wgkeys import private_key, public_key

KEEPALIVE = 25
TIMEOUT = 10


def allowed_devices(config) -> list[WgDevice]:
    users = {u.login: u for u in config.users}
    return [d for d in config.vpn.wireguard.devices
            if d.user in users and users[d.user].enabled and users[d.user].vpn_enabled]


def server_conf(config) -> str:
    wg = config.vpn.wireguard
    lines = ["[Interface]", f"PrivateKey = {wg.private_key_secret}", f"ListenPort = {wg.port}", ""]
    for device in allowed_devices(config):
        lines += [f"# {device.user}/{device.name}", "[Peer]", f"PublicKey = {device.public_key}",
                  f"AllowedIPs = {device.address}/32", ""]
    return "\n".join(lines)


def endpoint_host(config) -> str:
    wg = config.vpn.wireguard
    if wg.endpoint:
        return wg.endpoint
    wan = config.network.wan.address
    return str(wan.ip) if wan is not None else ""


def client_conf(config, device: WgDevice) -> str:
    wg = config.vpn.wireguard
    routes = [*map(str, config.network.lan_networks()), str(wg.pool)]
    return "\n".join([
        f"# OfficeBox VPN for {device.user} ({device.name})",
        "[Interface]", f"PrivateKey = {device.private_key_secret}", f"Address = {device.address}/32",
        f"DNS = {config.network.lan.address.ip}", "",
        "[Peer]", f"PublicKey = {public_key(wg.private_key_secret)}",
        f"Endpoint = {endpoint_host(config)}:{wg.port}", f"AllowedIPs = {', '.join(routes)}",
        f"PersistentKeepalive = {KEEPALIVE}", ""])


def qr_svg(text: str) -> str:
    """The client file as a QR code (SVG) for the WireGuard phone apps, by Debian's qrencode."""
    result = subprocess.run(["qrencode", "-t", "SVG", "-l", "M", "-o", "-"], input=text, capture_output=True,
                            text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"qrencode failed: {result.stderr.strip()}")
    return result.stdout


def add_device(vpn: dict, login: str, name: str) -> dict:
    """Append a device with fresh keys and the next free address to a vpn section (a document dict)."""
    wg = vpn.setdefault("wireguard", {})
    pool = ipaddress.IPv4Network(wg.get("pool", "10.8.0.0/24"))
    taken = {ipaddress.IPv4Address(d["address"]) for d in wg.get("devices", [])}
    hosts = pool.hosts()
    next(hosts)  # the box's own address
    address = next((h for h in hosts if h not in taken), None)
    if address is None:
        raise ValueError(f"the WireGuard pool {pool} is full")
    key = private_key()
    device = {"user": login, "name": name, "address": str(address), "private_key_secret": key,
              "public_key": public_key(key)}
    wg.setdefault("devices", []).append(device)
    return device


@dataclass
class Peer:
    public_key: str
    endpoint: str
    allowed_ips: str
    latest_handshake: int
    rx_bytes: int
    tx_bytes: int


class Interface:
    def __init__(self, name: str, netns: str | None) -> None:
        self.name, self.netns = name, netns
        self._kernel: bool | None = None

    def _run(self, *argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        prefix = ("ip", "netns", "exec", self.netns) if self.netns else ()
        result = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=TIMEOUT, **kw)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}: {result.stderr.strip()[-300:]}")
        return result

    @property
    def kernel(self) -> bool:
        """Whether the kernel has WireGuard (tried once: create the interface the kernel way)."""
        if self._kernel is None:
            self._kernel = self.exists() or self._run(
                "ip", "link", "add", self.name, "type", "wireguard", check=False).returncode == 0
        return self._kernel

    def exists(self) -> bool:
        return self._run("ip", "link", "show", self.name, check=False).returncode == 0

    def listen_port(self) -> int | None:
        result = self._run("wg", "show", self.name, "listen-port", check=False)
        return int(result.stdout) if result.returncode == 0 and result.stdout.strip().isdigit() else None

    def sync(self, conf_path, address: ipaddress.IPv4Interface) -> None:
        """Bring the interface to the rendered file (peers added and removed in place) and address."""
        if self.kernel and not self.exists():
            self._run("ip", "link", "add", self.name, "type", "wireguard")
        self._run("wg", "syncconf", self.name, str(conf_path))
        self._run("ip", "address", "replace", str(address), "dev", self.name)
        self._run("ip", "link", "set", self.name, "up")

    def remove(self) -> None:
        if self.kernel:
            self._run("ip", "link", "del", self.name, check=False)

    def peers(self) -> list[Peer]:
        result = self._run("wg", "show", self.name, "dump", check=False)
        peers = []
        for line in result.stdout.splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) >= 7:
                peers.append(Peer(fields[0], fields[2], fields[3], int(fields[4]), int(fields[5]), int(fields[6])))
        return peers
