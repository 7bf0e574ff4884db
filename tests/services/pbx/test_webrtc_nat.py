"""A browser behind a symmetric NAT reaches the WebRTC gateway without TURN. Namespaces: the browser
(10.0.0.2) behind a NAT (nft masquerade with random ports: every destination gets its own mapping) and
the box at 203.0.113.10, which has no route to the browser's network. The gateway is ICE-lite with its
reachable address as host candidate: the browser's checks open the NAT's mapping, the gateway answers and
sends media to the address the nominated check came from (the browser's peer-reflexive address), so ICE,
DTLS and SRTP both ways work through it (scripted DTLS-SRTP browser of bench/bench_webrtc.py)."""
from __future__ import annotations

import asyncio
import ipaddress
import secrets
import select
import socket
import struct
import threading

from bench.bench_webrtc import Browser, _client_context
from services.pbx.webrtc import stun
from services.pbx.webrtc.gateway import WebRtcGateway
from tests.netns import Lab, needs_netns

BOX, NAT_OUTSIDE = "203.0.113.10", "203.0.113.1"


def _mapped(reply: bytes) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS of the gateway's Binding success (its first attribute)."""
    port = struct.unpack_from("!H", reply, 26)[0] ^ (stun.MAGIC >> 16)
    ip = int.from_bytes(reply[28:32], "big") ^ stun.MAGIC
    return str(ipaddress.ip_address(ip)), port


def _recv(sock: socket.socket, timeout: float = 3.0) -> tuple[bytes, tuple]:
    ready, _, _ = select.select([sock], [], [], timeout)
    assert ready, "nothing came back through the NAT"
    return sock.recvfrom(4096)


async def _through_nat(browser_ns, box_ns) -> dict:
    gateway = WebRtcGateway(lambda ip: BOX, "127.0.0.1", 47000, 47999)
    await gateway.start()
    loop = asyncio.get_running_loop()
    ctx, fingerprint = _client_context()
    leg = await gateway._leg("nat-1", ("wss", NAT_OUTSIDE, 40000))
    b = Browser(ctx, leg.info, "127.0.0.1", keep=True)  # its plain peer (the relay's stand-in) in the box
    b.sock.close()
    with browser_ns.enter():  # the browser's own socket lives behind the NAT
        b.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.sock.bind(("0.0.0.0", 0))
    b.gateway_addr = (BOX, leg.info["port"])
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a second destination on the box
    other.bind((BOX, 0))
    try:
        # the NAT is symmetric: the gateway and another port of the box see two different mappings
        tid = secrets.token_bytes(12)
        b.sock.sendto(stun.request(tid, f"{leg.info['ufrag']}:{b.ufrag}", leg.info["pwd"], nominate=False),
                      b.gateway_addr)
        reply, _ = await asyncio.to_thread(_recv, b.sock)
        seen_by_gateway = _mapped(reply)
        b.sock.sendto(b"probe", other.getsockname())
        _, seen_by_other = await asyncio.to_thread(_recv, other)

        gateway._send({"op": "remote", "session": leg.id, "fingerprint": fingerprint})
        gateway._send({"op": "plain_peer", "session": leg.id, "ip": "127.0.0.1", "port": b.plain.getsockname()[1]})
        b.sock.setblocking(False)
        loop.add_reader(b.sock.fileno(), b.readable)
        loop.add_reader(b.plain.fileno(), b.plain_readable)
        b.start()
        for _ in range(100):
            if b.out is not None and gateway.counters["established"]:
                break
            await asyncio.sleep(0.05)
            b.retransmit()
        for _ in range(50):
            b.send_frame()
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        loop.remove_reader(b.sock.fileno())
        loop.remove_reader(b.plain.fileno())
        return {"gateway_saw": seen_by_gateway, "other_saw": seen_by_other, "local": b.sock.getsockname(),
                "up": b.out is not None, "established": gateway.counters["established"],
                "to_browser": b.received, "to_plain": b.plain_received}
    finally:
        other.close()
        b.close()
        await gateway.close()


@needs_netns
def test_a_browser_behind_a_symmetric_nat_gets_media_both_ways_without_turn():
    with Lab() as lab:
        browser, nat, box = lab.host("brows"), lab.host("nat"), lab.host("box")
        _, nat_in = lab.link(browser, "10.0.0.2/24", nat, "10.0.0.1/24")
        nat_out, _ = lab.link(nat, f"{NAT_OUTSIDE}/24", box, f"{BOX}/24")
        browser.run("ip", "route", "add", "default", "via", "10.0.0.1")
        nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        nat.run("nft", "-f", "-", input=("table ip nat {\n chain post {\n"
                                          "  type nat hook postrouting priority srcnat;\n"
                                          f'  oifname "{nat_out}" masquerade random\n }}\n}}\n'))
        box.run("ip", "link", "set", "lo", "up")
        result: dict = {}

        def in_the_box() -> None:  # the gateway process starts in the box's namespace
            with box.enter():
                result.update(asyncio.run(_through_nat(browser, box)))
        worker = threading.Thread(target=in_the_box)
        worker.start()
        worker.join(60)
        assert not worker.is_alive()
    assert result["gateway_saw"][0] == NAT_OUTSIDE and result["other_saw"][0] == NAT_OUTSIDE
    assert result["gateway_saw"][1] != result["other_saw"][1]  # a new mapping per destination: symmetric
    assert result["up"] and result["established"] == 1  # ICE and DTLS through the NAT
    assert result["to_browser"] >= 45 and result["to_plain"] >= 45  # SRTP both ways (of 50)
