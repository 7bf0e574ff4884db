"""One LAN address cannot hold every IMAP/POP3 login slot: the mail service's pre-login gate caps the
connections one address holds on Dovecot's ports before signing in, so another address still signs in;
signed-in sessions do not count (an office behind one NAT address, a mail program with several
connections). Real Dovecot and the real firewall ruleset in a namespace box, clients in a LAN namespace."""
from __future__ import annotations

import asyncio
import contextlib
import imaplib
import poplib
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from appliance.context import Context
from services.firewall.service import FirewallService
from tests.netns import Lab, needs_netns
from tests.services.mail.harness import PASSWORDS, RunningMail, client_tls, document

pytestmark = [needs_netns, pytest.mark.netns]
BOX, HOSTILE, GOOD = "192.0.2.1", "192.0.2.10", "192.0.2.11"
SLOTS, PER_ADDRESS = 12, 3  # mail.max_connections (one login process's clients), max_connections_per_ip


class Flood(threading.Thread):
    """Opens connections to `port` from HOSTILE and holds them idle (no TLS handshake: pre-login), opening
    a new one whenever the box drops one, until stopped (or 90 s). `most`: the most connections the box
    held at once (alive 1 s after they were opened: the box resets the one over the cap after accepting)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.held: list[tuple[float, socket.socket]] = []
        self.most = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 90
        while not self.stopping.is_set() and time.monotonic() < deadline:
            self.held = [(t, s) for t, s in self.held if self._alive(s) or s.close()]
            now = time.monotonic()
            self.most = max(self.most, sum(1 for t, _ in self.held if now - t > 1))
            if len(self.held) < 4 * SLOTS:
                try:
                    sock = socket.create_connection((BOX, self.port), 0.5, source_address=(HOSTILE, 0))
                except OSError:
                    time.sleep(0.01)
                    continue
                sock.setblocking(False)
                self.held.append((now, sock))
            else:
                time.sleep(0.01)
        for _, sock in self.held:
            sock.close()

    @staticmethod
    def _alive(sock: socket.socket) -> bool:
        try:
            return sock.recv(4096, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False


class GoodIMAP(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(
            socket.create_connection((self.host, self.port), timeout, source_address=(GOOD, 0)),
            server_hostname=self.host)


class GoodPOP3(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        return self.context.wrap_socket(
            socket.create_connection((self.host, self.port), timeout, source_address=(GOOD, 0)),
            server_hostname=self.host)


def imap_session(port: int, login: str) -> GoodIMAP:
    client = GoodIMAP(BOX, port, ssl_context=client_tls(), timeout=8)
    client.login(login, PASSWORDS[login])
    return client


def imap_signs_in(port: int) -> bool:
    try:
        client = GoodIMAP(BOX, port, ssl_context=client_tls(), timeout=8)
        client.login("bob", PASSWORDS["bob"])
        client.logout()
        return True
    except (OSError, imaplib.IMAP4.error):
        return False


def pop3_signs_in(port: int) -> bool:
    try:
        client = GoodPOP3(BOX, port, context=client_tls(), timeout=8)
        client.user("bob")
        client.pass_(PASSWORDS["bob"])
        client.quit()
        return True
    except (OSError, poplib.error_proto):
        return False


@pytest.fixture
def office():
    """The box namespace (the mail service with lab=False: the box's own ports, every address) and a LAN
    namespace with two addresses."""
    top = Path(tempfile.mkdtemp(prefix="ob-mail-"))
    top.chmod(0o711)
    with Lab() as lab:
        box, pc = lab.host("box"), lab.host("pc")
        box_if, pc_if = lab.link(box, f"{BOX}/24", pc, f"{HOSTILE}/24")
        pc.run("ip", "addr", "add", f"{GOOD}/24", "dev", pc_if)
        doc = document(max_connections=SLOTS, max_connections_per_ip=PER_ADDRESS)
        doc["network"] = {"lan": {"interface": box_if, "address": f"{BOX}/24"}}
        with box.enter():
            mail = RunningMail(Context(top / "var", lab=False), doc)
            firewall = FirewallService(Context(top / "fw", lab=True), netns=box.name)
            try:
                asyncio.run(firewall.start(mail.config))
                yield mail, pc
            finally:
                asyncio.run(firewall.stop())
                mail.stop()
    shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize(("kind", "signs_in"), [("imaps", imap_signs_in), ("pop3s", pop3_signs_in)])
def test_one_address_flooding_logins_leaves_room_for_another(office, kind, signs_in):
    mail, pc = office
    port = mail.port(kind)
    with pc.enter():
        assert signs_in(port)
        flood = Flood(port)
        flood.start()
        try:
            time.sleep(3)  # the flood has filled what it can
            outcomes = [signs_in(port) for _ in range(5)]
        finally:
            flood.stopping.set()
            flood.join(10)
    assert flood.most <= PER_ADDRESS, f"one address held {flood.most} connections"
    assert all(outcomes), outcomes


def test_signed_in_sessions_do_not_count_against_the_cap(office):
    """One address (an office behind NAT, a mail program with several connections) holds more signed-in
    IMAP sessions than the per-address cap and still opens another and signs in; a pre-login flood from
    it is still capped. The users differ: Dovecot's own limit per user and address stays PER_ADDRESS.
    (Dovecot's imap-login keeps the TLS of signed-in sessions too: SLOTS leaves room for them.)"""
    mail, pc = office
    port = mail.port("imaps")
    logins = ("alice", "bob", "carol", "alice", "bob")
    assert len(logins) > PER_ADDRESS
    sessions = []
    with pc.enter():
        try:
            for login in logins:
                sessions.append(imap_session(port, login))
            extra = imap_session(port, "carol")
            sessions.append(extra)
            assert extra.select("INBOX")[0] == "OK"
            assert ("carol", GOOD) in mail.service.auth.trusted  # Dovecot saw the client (PROXY header)
            assert all(s.noop()[0] == "OK" for s in sessions)
            pending = []  # from the same address, not signed in: capped at PER_ADDRESS
            for _ in range(PER_ADDRESS + 3):
                try:
                    pending.append(socket.create_connection((BOX, port), 2, source_address=(GOOD, 0)))
                except ConnectionResetError:  # over the cap the gate resets at once: under load, before
                    continue                  # connect() returns
                pending[-1].setblocking(False)
            time.sleep(1)
            alive = [s for s in pending if Flood._alive(s)]
            assert len(alive) == PER_ADDRESS, f"{len(alive)} connections not signed in held"
        finally:
            for s in sessions:
                with contextlib.suppress(OSError, imaplib.IMAP4.error):
                    s.logout()
            for s in locals().get("pending", []):
                s.close()
