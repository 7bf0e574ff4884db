"""Two offices joined by an "Internet" namespace, each a box running the firewall and the VPN service,
a host behind each.

    host A 10.1.0.10 -- 10.1.0.1 [box A] 203.0.113.1 -- internet -- 198.51.100.1 [box B] 10.2.0.1 -- 10.2.0.10 host B

The Internet host forwards between the two public subnets and knows nothing of the offices' LANs:
only the tunnel carries traffic from one LAN to the other. `Capture` records the frames on the
Internet side of box A's link with a packet socket.
"""
from __future__ import annotations

import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from services.firewall.service import FirewallService
from services.vpn.service import VpnService
from tests.netns import Lab, move_thread
from tests.services.firewall.topology import ECHO_SERVER, Appliance

HOST_A, BOX_A_LAN, BOX_A_WAN, INET_A = "10.1.0.10", "10.1.0.1", "203.0.113.1", "203.0.113.254"
HOST_B, BOX_B_LAN, BOX_B_WAN, INET_B = "10.2.0.10", "10.2.0.1", "198.51.100.1", "198.51.100.254"
ROAD, ROAD_GW = "192.0.2.10", "192.0.2.254"
PSK = "Head-office2branch-Zx81pq"
ETH_P_ALL = 0x0003


class Offices:
    def __init__(self) -> None:
        self.lab = Lab()
        self.procs = []
        self.closers: list = []  # called first at close
        self.apps: dict[str, Appliance] = {}
        self.top = Path(tempfile.mkdtemp(prefix="ob-vpn-"))
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self) -> None:
        lab = self.lab
        self.host_a, self.box_a, self.inet = lab.host("hosta"), lab.host("boxa"), lab.host("inet")
        self.box_b, self.host_b = lab.host("boxb"), lab.host("hostb")
        _, self.lan_a = lab.link(self.host_a, f"{HOST_A}/24", self.box_a, f"{BOX_A_LAN}/24")
        self.wan_a, self.inet_a = lab.link(self.box_a, f"{BOX_A_WAN}/24", self.inet, f"{INET_A}/24")
        self.inet_b, self.wan_b = lab.link(self.inet, f"{INET_B}/24", self.box_b, f"{BOX_B_WAN}/24")
        _, self.lan_b = lab.link(self.host_b, f"{HOST_B}/24", self.box_b, f"{BOX_B_LAN}/24")
        for host, gateway in ((self.host_a, BOX_A_LAN), (self.box_a, INET_A), (self.box_b, INET_B),
                              (self.host_b, BOX_B_LAN)):
            host.run("ip", "route", "add", "default", "via", gateway)
        for host in (self.box_a, self.inet, self.box_b):
            host.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.procs.append(self.host_b.popen([sys.executable, "-c", ECHO_SERVER, HOST_B, "8000"]))

    def add_road_warrior(self) -> None:
        """A client on the Internet side (192.0.2.10) and an echo server on host A for it to reach."""
        self.road = self.lab.host("road")
        self.lab.link(self.road, f"{ROAD}/24", self.inet, f"{ROAD_GW}/24")
        self.road.run("ip", "route", "add", "default", "via", ROAD_GW)
        self.procs.append(self.host_a.popen([sys.executable, "-c", ECHO_SERVER, HOST_A, "8000"]))

    def document(self, side: str, **tunnel) -> dict:
        a = side == "a"
        lan_if, lan = (self.lan_a, BOX_A_LAN) if a else (self.lan_b, BOX_B_LAN)
        wan_if, wan, gateway = (self.wan_a, BOX_A_WAN, INET_A) if a else (self.wan_b, BOX_B_WAN, INET_B)
        tunnel = {"name": "hq" if not a else "branch", "peer": BOX_B_WAN if a else BOX_A_WAN,
                  "local_subnets": ["10.1.0.0/24" if a else "10.2.0.0/24"],
                  "remote_subnets": ["10.2.0.0/24" if a else "10.1.0.0/24"], "psk": PSK,
                  "dpd_delay": 5, **tunnel}
        return {"network": {"lan": {"interface": lan_if, "address": f"{lan}/24"},
                            "wan": {"interface": wan_if, "mode": "static", "address": f"{wan}/24",
                                    "gateway": gateway}},
                "vpn": {"enabled": True, "tunnels": [tunnel]}}

    def start(self, side: str, document: dict | None = None) -> Appliance:
        box = self.box_a if side == "a" else self.box_b
        app = Appliance(self.top / side, {"firewall": FirewallService, "vpn": VpnService}, box.name)
        self.apps[side] = app
        app.boot(document or self.document(side))
        return app

    def stop(self, side: str) -> None:
        self.apps.pop(side).close()

    def close(self) -> None:
        for close in self.closers:
            close()
        for side in list(self.apps):
            self.stop(side)
        for proc in self.procs:
            proc.kill()
            proc.wait(5)
        self.lab.close()
        shutil.rmtree(self.top, ignore_errors=True)


def tunnel_state(app: Appliance) -> dict:
    service = app.services["vpn"]
    service.refresh()
    return service.tunnels()[0]


def wait_up(app: Appliance, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = tunnel_state(app)
        if row["state"] == "up":
            return row
        time.sleep(0.3)
    raise AssertionError(f"the tunnel did not come up: {tunnel_state(app)}")


class Capture:
    """Frames seen on one interface of a namespace, from a packet socket in its own thread."""

    def __init__(self, netns: str, ifname: str, limit: int = 20000) -> None:
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(netns, ifname, limit), daemon=True)

    def _run(self, netns: str, ifname: str, limit: int) -> None:
        move_thread(netns)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
            sock.bind((ifname, 0))
            sock.settimeout(0.1)
            self._ready.set()
            while not self._stop.is_set() and len(self.frames) < limit:
                try:
                    self.frames.append(sock.recv(65535))
                except TimeoutError:
                    continue

    def __enter__(self) -> "Capture":
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def ipv4(self) -> list[tuple[int, bytes]]:
        """(IP protocol, IP payload) of every IPv4 frame."""
        out = []
        for frame in self.frames:
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            ihl = (frame[14] & 0x0F) * 4
            out.append((frame[23], frame[14 + ihl:]))
        return out

    def esp(self) -> int:
        """ESP packets: IP protocol 50, or in UDP to port 4500 with a non-zero SPI (RFC 3948)."""
        count = 0
        for proto, payload in self.ipv4():
            if proto == 50:
                count += 1
            elif proto == 17 and len(payload) > 12 and struct.unpack("!H", payload[2:4])[0] == 4500:
                count += payload[8:12] != b"\0\0\0\0"
        return count

    def contains(self, data: bytes) -> bool:
        return any(data in frame for frame in self.frames)
