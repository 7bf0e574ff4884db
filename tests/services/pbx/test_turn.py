"""The box's TURN server (real coturn, on the file services/pbx/webrtc/turn.py renders, as the PBX's
user) against a raw TURN client: an Allocate with a wrong or an expired TURN REST credential is refused
(401), a good one gets a relay; the relay carries data to the box's own media address and to no other
(403); the same over TLS (turns:) with the box certificate."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from appliance import schema, serviceusers
from appliance.certs import box_certificate
from appliance.context import Context
from services.pbx import PbxService
from services.pbx.webrtc import turn
from tests.netns import Lab, needs_netns

MAGIC = 0x2112A442
ALLOCATE, CREATE_PERMISSION, SEND, DATA_INDICATION = 0x0003, 0x0008, 0x0016, 0x0017
USERNAME, INTEGRITY, ERROR, REALM, NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
PEER, DATA, RELAYED, TRANSPORT = 0x0012, 0x0013, 0x0016, 0x0019

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn is not installed")


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _address_of(value: bytes) -> tuple[str, int]:
    port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
    return socket.inet_ntoa(struct.pack("!I", struct.unpack("!I", value[4:8])[0] ^ MAGIC)), port


def _xor_address(host: str, port: int) -> bytes:
    ip = struct.unpack("!I", socket.inet_aton(host))[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), ip)


def _message(kind: int, attrs: bytes, key: bytes | None = None) -> bytes:
    tid = os.urandom(12)
    if key is None:
        return struct.pack("!HHI", kind, len(attrs), MAGIC) + tid + attrs
    head = struct.pack("!HHI", kind, len(attrs) + 24, MAGIC) + tid
    return head + attrs + _attr(INTEGRITY, hmac.new(key, head + attrs, hashlib.sha1).digest())


def _parse(packet: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length = struct.unpack("!HH", packet[:4])
    attrs, at = {}, 20
    while at < 20 + length:
        a, n = struct.unpack("!HH", packet[at:at + 4])
        attrs[a] = packet[at + 4:at + 4 + n]
        at += 4 + n + (-n % 4)
    return kind, attrs


def _error(attrs: dict[int, bytes]) -> int:
    value = attrs[ERROR]
    return (value[2] & 7) * 100 + value[3]


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.server = ("127.0.0.1", port)

    def ask(self, packet: bytes) -> tuple[int, dict[int, bytes]]:
        for _ in range(3):  # UDP: a bounded retransmission
            self.sock.sendto(packet, self.server)
            try:
                return _parse(self.sock.recv(2048))
            except TimeoutError:
                continue
        raise AssertionError("coturn did not answer")

    def allocate(self, username: str, password: str) -> tuple[int, dict[int, bytes], bytes]:
        transport = _attr(TRANSPORT, bytes([17, 0, 0, 0]))
        kind, attrs = self.ask(_message(ALLOCATE, transport))
        assert kind == 0x0113 and _error(attrs) == 401  # the challenge: realm and nonce
        realm, nonce = attrs[REALM], attrs[NONCE]
        key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
        auth = _attr(USERNAME, username.encode()) + _attr(REALM, realm) + _attr(NONCE, nonce)
        kind, attrs = self.ask(_message(ALLOCATE, transport + auth, key))
        self.auth, self.key = auth, key
        return kind, attrs, key


class TlsClient(Client):
    """The same requests over TLS (TURN over TCP: STUN messages back to back on the stream)."""

    def __init__(self, port: int, cafile, name: str = "localhost") -> None:
        context = ssl.create_default_context(cafile=str(cafile))
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = context.wrap_socket(raw, server_hostname=name)
        self.server = ("127.0.0.1", port)

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "coturn closed the TLS connection"
            data += chunk
        return data

    def receive(self) -> tuple[int, dict[int, bytes]]:
        head = self._exactly(20)
        return _parse(head + self._exactly(struct.unpack("!H", head[2:4])[0]))

    def ask(self, packet: bytes) -> tuple[int, dict[int, bytes]]:
        self.sock.sendall(packet)
        return self.receive()


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def start_coturn(argv: list[str], log_path) -> subprocess.Popen:
    log = open(log_path, "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 10
    while "Total General servers" not in log_path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return proc


@contextlib.contextmanager
def running_coturn(tmp_path, external: str = "", listen: str = "127.0.0.1", peers: tuple[str, ...] = ("127.0.0.1",),
                   host=None):
    """coturn as the PBX runs it in lab mode (127.0.0.1 the only peer, its user and folders), on a free port
    (in namespace `host` if given); its data directory outside pytest's tmp root (tests/appliance/conftest.py
    data says why)."""
    top = Path(tempfile.mkdtemp(prefix="ob-turn-"))
    ctx = Context(top / "var", lab=True)
    serviceusers.prepare(ctx, "pbx")  # what the PBX process's start does: its folders become its user's
    port = _free_port()
    state = ctx.state_dir("pbx")
    secret = turn.secret(state)
    conf = ctx.etc_dir("pbx") / "turnserver.conf"
    conf.parent.mkdir(parents=True)
    tls_port, certificate = _free_port(socket.SOCK_STREAM), box_certificate(ctx.data_dir, "box")
    text = turn.render(secret, "box.test", listen, port, turn.LAB_RELAY_PORTS, list(peers), listen == "127.0.0.1",
                       state / "turn", tls_port, certificate, external)
    conf.write_text(text)
    serviceusers.share_rendered(ctx, "pbx")
    argv = [*serviceusers.daemon_prefix("pbx"), *turn.launcher(conf, text, state / "turn")]
    proc = start_coturn(host.cmd(argv) if host is not None else argv, tmp_path / "turn.log")
    try:
        yield port, secret, tmp_path / "turn.log", tls_port, certificate[0]
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def coturn(tmp_path):
    with running_coturn(tmp_path) as running:
        yield running


def test_secret_is_private_and_credentials_follow_the_rest_api(tmp_path):
    secret = turn.secret(tmp_path)
    assert (tmp_path / turn.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert turn.secret(tmp_path) == secret
    made = turn.credentials(secret, "alice", now=1000, ttl=60)
    assert made["username"] == "1060:alice"
    expected = hmac.new(secret.encode(), b"1060:alice", hashlib.sha1).digest()
    assert base64.b64decode(made["credential"]) == expected


def test_bad_or_expired_credentials_are_refused(coturn):
    port, secret, *_ = coturn
    good = turn.credentials(secret, "alice")
    kind, attrs, _ = Client(port).allocate(good["username"], good["credential"][::-1])
    assert kind == 0x0113 and _error(attrs) == 401
    old = turn.credentials(secret, "alice", now=time.time() - 2 * turn.CREDENTIAL_TTL)
    kind, attrs, _ = Client(port).allocate(old["username"], old["credential"])
    assert kind == 0x0113 and _error(attrs) == 401
    other = turn.credentials("0" * 64, "alice")
    kind, attrs, _ = Client(port).allocate(other["username"], other["credential"])
    assert kind == 0x0113 and _error(attrs) == 401


def test_relays_to_the_box_media_address_only(coturn):
    port, secret, log, *_ = coturn
    made = turn.credentials(secret, "alice")
    client = Client(port)
    kind, attrs, key = client.allocate(made["username"], made["credential"])
    assert kind == 0x0103, attrs  # Allocate success
    assert RELAYED in attrs
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # stands for the box's WebRTC gateway
    gateway.bind(("127.0.0.1", 0))
    gateway.settimeout(2)
    gw_port = gateway.getsockname()[1]
    kind, attrs = client.ask(_message(CREATE_PERMISSION, _attr(PEER, _xor_address("127.0.0.1", gw_port))
                                      + client.auth, key))
    assert kind == 0x0108, attrs  # permitted
    client.sock.sendto(_message(SEND, _attr(PEER, _xor_address("127.0.0.1", gw_port)) + _attr(DATA, b"media")),
                       client.server)
    data, relayed = gateway.recvfrom(2048)
    assert data == b"media" and turn.LAB_RELAY_PORTS[0] <= relayed[1] <= turn.LAB_RELAY_PORTS[1]
    gateway.sendto(b"back", relayed)
    kind, attrs = _parse(client.sock.recv(2048))
    assert kind == DATA_INDICATION and attrs[DATA] == b"back"
    gateway.close()
    # any other address (another loopback one here: nothing is sent off the machine) is refused
    kind, attrs = client.ask(_message(CREATE_PERMISSION, _attr(PEER, _xor_address("127.0.0.2", 9)) + client.auth, key))
    assert kind == 0x0118 and _error(attrs) == 403
    text = log.read_text()
    assert "A peer IP 127.0.0.2 denied" in text
    assert re.search(r"user <\d+:alice>: incoming packet ALLOCATE processed, success", text), text[-2000:]


def test_turn_over_tls_with_the_box_certificate(coturn):
    _port, secret, _log, tls_port, cert = coturn
    made = turn.credentials(secret, "alice")
    kind, attrs, _ = TlsClient(tls_port, cert).allocate(made["username"], made["credential"][::-1])
    assert kind == 0x0113 and _error(attrs) == 401
    client = TlsClient(tls_port, cert)  # verified: the certificate names localhost and is the box's
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    kind, attrs, key = client.allocate(made["username"], made["credential"])
    assert kind == 0x0103 and RELAYED in attrs, attrs
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gateway.bind(("127.0.0.1", 0))
    gateway.settimeout(2)
    peer = _attr(PEER, _xor_address("127.0.0.1", gateway.getsockname()[1]))
    kind, attrs = client.ask(_message(CREATE_PERMISSION, peer + client.auth, key))
    assert kind == 0x0108, attrs
    client.sock.sendall(_message(SEND, peer + _attr(DATA, b"media over tls")))
    data, relayed = gateway.recvfrom(2048)
    assert data == b"media over tls"
    gateway.sendto(b"back", relayed)
    kind, attrs = client.receive()
    assert kind == DATA_INDICATION and attrs[DATA] == b"back"
    gateway.close()


def test_a_renewed_certificate_changes_the_file_so_coturn_restarts_on_it(tmp_path):
    cert, key = box_certificate(tmp_path, "box")
    args = ("0" * 64, "box.test", "", turn.PORT, turn.RELAY_PORTS, ["192.0.2.1"], False, tmp_path / "turn",
            turn.TLS_PORT, (cert, key))
    before = turn.render(*args)
    assert f"tls-listening-port={turn.TLS_PORT}" in before and f"cert={cert}" in before and "no-tls\n" not in before
    cert.write_text(cert.read_text().replace("A", "B", 1))  # stands for the renewed file at the same path
    assert turn.digest(turn.render(*args)) != turn.digest(before)
    assert "no-tls\n" in turn.render(*args[:-2])  # no certificate: no TLS listener


def test_a_box_behind_a_router_renders_its_public_address_as_the_external_ip(tmp_path):
    svc = PbxService(Context(tmp_path / "var"))
    static = {"wan": {"mode": "static", "address": "192.0.2.10/24", "gateway": "192.0.2.1"}}
    text = svc.render(schema.parse({"pbx": {"public_address": "203.0.113.7"}, "network": static}))["turnserver.conf"]
    assert "external-ip=203.0.113.7/192.0.2.10\n" in text and "relay-ip=192.0.2.10\n" in text
    assert "allowed-peer-ip=203.0.113.7\n" in text  # the gateway's candidate for browsers outside
    dhcp = svc.render(schema.parse({"pbx": {"public_address": "203.0.113.7"}}))["turnserver.conf"]
    assert "external-ip=203.0.113.7\n" in dhcp and "relay-ip" not in dhcp  # every relay address mapped
    plain = svc.render(schema.parse({}))["turnserver.conf"]
    assert "external-ip" not in plain and "203.0.113.7" not in plain


def test_relay_candidates_carry_the_external_ip_and_still_relay(tmp_path):
    with running_coturn(tmp_path, external="203.0.113.7") as (port, secret, _log, _tls, _cert):
        made = turn.credentials(secret, "alice")
        client = Client(port)
        kind, attrs, key = client.allocate(made["username"], made["credential"])
        assert kind == 0x0103, attrs
        host, relay_port = _address_of(attrs[RELAYED])
        assert host == "203.0.113.7" and turn.LAB_RELAY_PORTS[0] <= relay_port <= turn.LAB_RELAY_PORTS[1]
        gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gateway.bind(("127.0.0.1", 0))
        gateway.settimeout(2)
        peer = _attr(PEER, _xor_address("127.0.0.1", gateway.getsockname()[1]))
        kind, attrs = client.ask(_message(CREATE_PERMISSION, peer + client.auth, key))
        assert kind == 0x0108, attrs
        client.sock.sendto(_message(SEND, peer + _attr(DATA, b"media")), client.server)
        data, relayed = gateway.recvfrom(2048)  # sent from the private relay address, same port
        assert data == b"media" and relayed == ("127.0.0.1", relay_port)
        gateway.close()


BOX_INSIDE, ROUTER_INSIDE, PUBLIC, OUTSIDE = "10.1.0.2", "10.1.0.1", "198.51.100.1", "198.51.100.2"


@needs_netns
def test_a_box_behind_a_router_relays_a_browser_outside_through_its_public_address(tmp_path):
    """Namespaces: the box (10.1.0.2) behind a router whose public address 198.51.100.1 forwards UDP to it
    (and hairpins: the box reaching its public address comes back to itself), a browser outside. The browser
    allocates at the public address and gets it as its relay candidate; the gateway's candidate for it is the
    public address too (SipStack.local_ip with pbx.public_address), which coturn may relay to: media gets to
    the gateway's port and back."""
    with Lab() as lab:
        browser, router, box = lab.host("brows"), lab.host("router"), lab.host("box")
        lab.link(browser, f"{OUTSIDE}/24", router, f"{PUBLIC}/24")
        _, inside = lab.link(box, f"{BOX_INSIDE}/24", router, f"{ROUTER_INSIDE}/24")
        box.run("ip", "route", "add", "default", "via", ROUTER_INSIDE)
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.run("nft", "-f", "-", input=(
            "table ip nat {\n chain pre {\n  type nat hook prerouting priority dstnat;\n"
            f"  ip daddr {PUBLIC} udp dport 1024-65535 dnat to {BOX_INSIDE}\n }}\n"
            " chain post {\n  type nat hook postrouting priority srcnat;\n"
            f'  oifname "{inside}" ip saddr {BOX_INSIDE} ip daddr {BOX_INSIDE} masquerade\n }}\n}}\n'))
        with running_coturn(tmp_path, external=PUBLIC, listen=BOX_INSIDE, peers=(BOX_INSIDE, PUBLIC),
                            host=box) as (port, secret, log, _tls, _cert):
            with box.enter():
                gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the WebRTC gateway's port
            gateway.bind((BOX_INSIDE, 0))
            gateway.settimeout(3)
            with browser.enter():
                client = Client(port)
            client.server = (PUBLIC, port)
            made = turn.credentials(secret, "alice")
            try:
                kind, attrs, key = client.allocate(made["username"], made["credential"])
                assert kind == 0x0103, attrs
                assert _address_of(attrs[RELAYED])[0] == PUBLIC  # the relay candidate the browser announces
                peer = _attr(PEER, _xor_address(PUBLIC, gateway.getsockname()[1]))
                kind, attrs = client.ask(_message(CREATE_PERMISSION, peer + client.auth, key))
                assert kind == 0x0108, (attrs, log.read_text()[-1500:])
                client.sock.sendto(_message(SEND, peer + _attr(DATA, b"media")), client.server)
                data, came_from = gateway.recvfrom(2048)  # through the router and back (its hairpin)
                assert data == b"media"
                gateway.sendto(b"back", came_from)  # the gateway answers where it came from
                kind, attrs = _parse(client.sock.recv(2048))
                assert kind == DATA_INDICATION and attrs[DATA] == b"back"
            finally:
                gateway.close()
                client.sock.close()
