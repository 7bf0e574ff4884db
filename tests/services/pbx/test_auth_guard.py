"""The abuse guard against spoofed sources: a flood of forged addresses cannot reset a real attacker's
counts, and forged packets cannot get a colleague's phone banned. Each fails on the guard that cleared
its table when full and counted every failure."""
from services.pbx.guard import Guard
from services.pbx.sip.message import Request

from .conftest import ALICE, BOB, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

ATTACKER = "198.51.100.7"


def test_source_flood_does_not_reset_a_real_attacker():
    guard = Guard(max_auth_failures=5)
    for _ in range(4):
        guard.auth_failed(ATTACKER)
    for i in range(3 * Guard.MAX_TRACKED):  # spoofed sources, one packet each
        assert guard.request(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        assert len(guard.sources) <= Guard.MAX_TRACKED
    guard.auth_failed(ATTACKER)
    assert guard.is_banned(ATTACKER)


def test_ban_table_is_bounded():
    guard = Guard(max_requests=1, request_window=60)
    guard.MAX_TRACKED = 50
    for i in range(200):
        ip = f"10.0.{i >> 8}.{i & 255}"
        guard.request(ip)
        assert not guard.request(ip)
        assert len(guard.banned) <= 50 and len(guard.sources) <= 50


def test_exempt_addresses_are_never_banned():
    guard = Guard(max_auth_failures=2, max_requests=10, exempt=lambda ip: ip == "192.0.2.20")
    for _ in range(50):
        assert guard.request("192.0.2.20")
        guard.auth_failed("192.0.2.20")
    assert not guard.is_banned("192.0.2.20")


def junk_register(client: SipClient) -> Request:
    """Credentials that need no reply to forge: a nonce this PBX never sent."""
    return client.request("REGISTER", "sip:127.0.0.1", "201", headers={
        "Authorization": 'Digest username="201", realm="office.lan", nonce="6b0e8f3a0123456789abcdef", '
                         'uri="sip:127.0.0.1", response="0123456789abcdef0123456789abcdef", algorithm=MD5'})


def test_forged_junk_credentials_ban_nobody(tmp_path):
    with PbxRunner(tmp_path / "p", config([ALICE], abuse={"max_auth_failures": 3})) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port), local_host="127.0.0.4") as forger:
                for _ in range(10):
                    forger.send(junk_register(forger))
                    assert (await forger.final()).status == 401  # a fresh challenge, counted nowhere
                assert pbx.svc.bans() == []
                assert (await forger.register("201", ALICE["sip_secret"])).status == 200
        run(main())


def test_failures_from_a_registered_phones_address_ban_nobody(tmp_path):
    with PbxRunner(tmp_path / "p", config([ALICE, BOB], abuse={"max_auth_failures": 3})) as pbx:
        async def main():
            addr = ("127.0.0.1", pbx.port)
            async with SipClient(addr, local_host="127.0.0.3") as bob, \
                    SipClient(addr, local_host="127.0.0.3") as same_host:
                assert (await bob.register("202", BOB["sip_secret"])).status == 200
                for _ in range(5):
                    assert (await same_host.register("201", "wrong-password")).status == 403
                assert pbx.svc.bans() == []
                assert (await bob.register("202", BOB["sip_secret"])).status == 200  # still served
        run(main())


def test_a_flood_of_unparseable_packets_is_banned_like_any_flood(tmp_path):
    """Before: garbage never reached the guard's count, so a source could flood the parser forever."""
    import socket
    import time
    with PbxRunner(tmp_path / "p", config([ALICE], abuse={"max_requests": 20, "request_window": 30})) as pbx:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.5", 0))
            for _ in range(40):
                s.sendto(b"\x00\x01not sip at all\r\n\r\n", ("127.0.0.1", pbx.port))
            deadline = time.monotonic() + 5
            while not pbx.svc.bans() and time.monotonic() < deadline:
                time.sleep(0.05)
        assert [b["source"] for b in pbx.svc.bans()] == ["127.0.0.5"]

        async def main():  # another address is still served
            async with SipClient(("127.0.0.1", pbx.port), local_host="127.0.0.6") as phone:
                assert (await phone.register("201", ALICE["sip_secret"])).status == 200
        run(main())
