"""SIP over TCP: one host cannot take every connection, keep-alive pings (RFC 5626) get their pong even
cut in two, and a phone registered over a connection that closed is reached by a new one."""
import asyncio
import contextlib
import socket
import time

from .conftest import ALICE, BOB, run
from .rawphone import invite, sdp
from .sipclient import SipClient
from .test_registrar import _tcp_register

OPTIONS = ("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {ip}:{port};branch=z9hG4bKtcp{port}\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tcp-{port}\r\n"
           "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def _connect(pbx, source_ip: str) -> socket.socket:
    s = socket.socket()
    s.bind((source_ip, 0))
    s.settimeout(3)
    s.connect(("127.0.0.1", pbx.port))
    return s


def _served(sock: socket.socket) -> bool:
    ip, port = sock.getsockname()
    try:
        sock.sendall(OPTIONS.format(ip=ip, port=port).encode())
        data = sock.recv(65535)
    except OSError:
        return False
    return data.startswith(b"SIP/2.0 200")


def test_one_host_holding_1100_connections_locks_nobody_else_out(pbx):
    with contextlib.ExitStack() as stack:
        for _ in range(1100):  # more than the PBX's total: idle, never a byte sent
            try:
                stack.enter_context(_connect(pbx, "127.0.0.2"))
            except OSError:
                pass  # refused once its share is used up
        time.sleep(0.3)
        with _connect(pbx, "127.0.0.3") as other:
            assert _served(other)
        assert pbx.sync(lambda: pbx.svc.core.stack.transports.per_source.get("127.0.0.2", 0)) <= 64


def test_a_full_table_makes_room_by_closing_the_idlest_connection(pbx):
    transports = pbx.svc.core.stack.transports
    pbx.sync(setattr, transports, "max_connections", 3)
    pbx.sync(setattr, transports, "evict_idle", 0.2)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(_connect(pbx, "127.0.0.4"))
        time.sleep(0.3)
        for ip in ("127.0.0.5", "127.0.0.6"):
            assert _served(stack.enter_context(_connect(pbx, ip)))
        newcomer = stack.enter_context(_connect(pbx, "127.0.0.7"))
        assert _served(newcomer)
        assert first.recv(10) == b""  # the one idle the longest was closed for it


def test_keepalive_ping_cut_in_two_gets_its_pong(pbx):
    with _connect(pbx, "127.0.0.1") as c:
        c.sendall(b"\r\n")
        time.sleep(0.2)
        c.sendall(b"\r\n")
        assert c.recv(2) == b"\r\n"
        assert _served(c)


def test_phone_registered_over_a_closed_connection_is_called_over_a_new_one(pbx):
    """The PBX closes idle connections (900 s): the phone's binding stays and its contact is called."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    phone_port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", pbx.port), timeout=3) as reg:
        # registered from an ephemeral port, contact on the phone's listening port
        assert _tcp_register(pbx.port, reg, "202", BOB["sip_secret"], phone_port).status == 200
    time.sleep(0.3)

    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as alice:
            req = alice.request("INVITE", "sip:202@127.0.0.1", "201", body=sdp(4000))
            await invite(alice, req, "201", ALICE["sip_secret"])
            loop = asyncio.get_running_loop()
            listener.setblocking(False)
            conn, _ = await asyncio.wait_for(loop.sock_accept(listener), 5)
            with conn:
                data = await asyncio.wait_for(loop.sock_recv(conn, 65535), 5)
                assert data.startswith(b"INVITE sip:202@127.0.0.1:%d;transport=tcp SIP/2.0" % phone_port)
    try:
        run(main())
    finally:
        listener.close()

