"""Protocol correctness against dig (issue 12): what a validating resolver or a careful client on the
LAN needs from the box's forwarder. Each test failed before its fix."""
from __future__ import annotations

import ipaddress
import logging
import socket
import struct

from appliance.leases import LeaseInfo, lease_bus
from tests.services.dns.digtool import dig, flags, status


def raw_query(port: int, packet: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, ("127.0.0.1", port))
        return sock.recv(4096)


def header(ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, ar)


def test_tlds_and_unknown_bare_names_are_forwarded_not_nxdomain(dns):
    svc, port, upstream, _ = dns
    for args, name in ((("com", "NS"), "com"), (("org", "DS"), "org"), (("arpa", "NS"), "arpa")):
        out = dig(port, *args)
        assert status(out) == "NOERROR" and "aa" not in flags(out), out
        assert upstream.asked[name] == 1
    assert "a.nic.com." in dig(port, "+short", "com", "NS")
    assert dig(port, "+short", "nas").split() == ["10.77.0.5"]  # the local convenience stays
    assert "nas" not in upstream.asked


def test_no_aa_on_forwarded_answers(dns):
    svc, port, upstream, _ = dns
    for _ in range(2):  # uncacheable (TTL 0) and cached answers alike
        for name in ("zero.example.net", "www.example.net"):
            out = dig(port, name)
            assert status(out) == "NOERROR" and "aa" not in flags(out), out
    assert "aa" in flags(dig(port, "nas.office.test"))


def test_no_ad_echoed_from_the_query(dns):
    svc, port, upstream, _ = dns
    for name in ("nas.office.test", "zero.example.net", "www.example.net", "www.example.net"):
        out = dig(port, "+adflag", name)
        assert status(out) == "NOERROR" and "ad" not in flags(out), out


def test_edns_do_reaches_the_upstream_and_rrsigs_reach_clients_that_ask(dns):
    svc, port, upstream, _ = dns
    plain = dig(port, "+noall", "+answer", "signed.example.net")
    assert " A " in plain.replace("\t", " ") and "RRSIG" not in plain
    opt = upstream.opts[-1]
    assert opt is not None and opt.ttl & 0x8000  # asked upstream with EDNS and DO
    for _ in range(2):  # from the upstream's answer, then from the cache
        signed = dig(port, "+dnssec", "signed.example.net")
        assert "RRSIG" in signed and "; EDNS: version: 0, flags: do;" in signed
    assert "RRSIG" not in dig(port, "+noall", "+answer", "signed.example.net")
    assert upstream.asked["signed.example.net"] == 1


def test_badvers_for_edns_version_1(dns):
    svc, port, upstream, _ = dns
    for name in ("nas.office.test", "www.example.net"):
        out = dig(port, "+edns=1", "+noednsneg", name)
        assert status(out) == "BADVERS" and "; EDNS: version: 0" in out, out
    assert "www.example.net" not in upstream.asked


def test_more_than_one_opt_is_formerr_and_replies_carry_one(dns):
    svc, port, upstream, _ = dns
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    question = b"\3nas\6office\4test\0\0\1\0\1"
    reply = raw_query(port, header(ar=2) + question + opt + opt)
    assert reply[:2] == b"\x42\x42" and reply[3] & 0x0F == 1  # FORMERR
    for name in (b"\3nas\6office\4test\0", b"\4zero\7example\3net\0", b"\3www\7example\3net\0"):
        reply = raw_query(port, header(ar=1) + name + b"\0\1\0\1" + opt)
        assert struct.unpack("!H", reply[10:12])[0] == 1 and reply.count(b"\0\0\x29") == 1


def test_soa_at_the_apex(dns):
    svc, port, upstream, _ = dns
    out = dig(port, "+noall", "+answer", "SOA", "office.test")
    assert "SOA" in out and "box.office.test." in out


def test_zone_transfers_refused_and_never_forwarded(dns):
    svc, port, upstream, _ = dns
    for args in (("axfr", "office.test"), ("axfr", "example.net"), ("ixfr=1", "example.net")):
        out = dig(port, *args)
        assert "Transfer failed" in out and "SOA" not in out.split("Transfer failed")[0], out
    for qtype in (252, 251):  # AXFR, IXFR over UDP (dig always asks those over TCP)
        reply = raw_query(port, header() + b"\7example\3net\0" + struct.pack("!HH", qtype, 1))
        assert reply[3] & 0x0F == 5  # REFUSED
    assert not upstream.asked and not upstream.tcp_asked


def test_localhost_is_answered_here(dns):
    svc, port, upstream, _ = dns
    assert dig(port, "+short", "localhost").split() == ["127.0.0.1"]
    assert dig(port, "+short", "AAAA", "localhost").split() == ["::1"]
    assert dig(port, "+short", "printer.localhost").split() == ["127.0.0.1"]
    assert dig(port, "+short", "-x", "127.0.0.1").split() == ["localhost."]
    assert not upstream.asked


def test_private_reverse_names_outside_the_lan_are_not_leaked(dns):
    svc, port, upstream, _ = dns
    for address in ("192.168.5.5", "172.20.1.2", "10.99.0.1", "169.254.1.1"):  # private, not our LAN
        out = dig(port, "-x", address)
        assert status(out) == "NXDOMAIN" and "aa" in flags(out), out
    assert status(dig(port, "NS", "168.192.in-addr.arpa")) == "NOERROR"
    assert not upstream.asked
    assert status(dig(port, "-x", "198.51.100.7")) == "NXDOMAIN"  # public reverse names are forwarded
    assert upstream.asked["7.100.51.198.in-addr.arpa"] == 1


def test_chaos_class_is_not_forwarded(dns):
    svc, port, upstream, _ = dns
    for name in ("version.bind", "hostname.bind", "id.server"):
        assert status(dig(port, "CH", "TXT", name)) == "REFUSED"
    assert not upstream.asked


def test_malformed_names_get_formerr_without_a_traceback(dns, caplog):
    svc, port, upstream, runner = dns
    caplog.set_level(logging.INFO)
    long_label = header() + b"\x40" + b"a" * 64 + b"\0\0\1\0\1"
    long_name = header() + (b"\x3f" + b"a" * 63) * 4 + b"\x05aaaaa\0\0\1\0\1"  # 262 bytes
    for packet in (long_label, long_name):
        reply = raw_query(port, packet)
        assert reply[:2] == b"\x42\x42" and reply[3] & 0x0F == 1, reply  # FORMERR
    assert dig(port, "+short", "nas.office.test").split() == ["10.77.0.5"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not upstream.asked


def test_logging_from_the_lan_is_rate_limited(ctx, caplog):
    from services.dns import SERVICE
    from tests.services.dhcp.helpers import LoopThread, lan_config

    caplog.set_level(logging.INFO, logger="officebox.dns")
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(lan_config("lan0", dns={"lab_port": 0, "upstreams": []})))
    try:
        port = svc.addresses[0][1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # 200 questions nobody can answer
            sock.settimeout(2)
            for i in range(200):
                sock.sendto(header() + bytes((5,)) + b"h%04d" % i + b"\3net\0\0\1\0\1", ("127.0.0.1", port))
                sock.recv(512)
        lines = [r for r in caplog.records if r.name == "officebox.dns"]
        assert 0 < len(lines) <= 12, len(lines)
    finally:
        runner.call(svc.stop())
        runner.close()


def lease(ip: str, mac: str, name: str) -> LeaseInfo:
    return LeaseInfo(ipaddress.IPv4Address(ip), mac, name, 2e9, "lan")


def test_dhcp_names_reserved_never_published_and_no_takeover(dns, ctx):
    svc, port, upstream, runner = dns
    bus = lease_bus(ctx)
    for i, name in enumerate(("wpad", "isatap", "WPAD", "localhost", "evil.example.com")):
        runner.sync(bus.publish, "bound", lease(f"10.77.0.{160 + i}", f"02:00:00:00:01:{i:02x}", name))
    assert status(dig(port, "wpad.office.test")) == "NXDOMAIN"
    assert status(dig(port, "isatap.office.test")) == "NXDOMAIN"
    assert dig(port, "+short", "localhost").split() == ["127.0.0.1"]
    assert status(dig(port, "evil.example.com.office.test")) == "NXDOMAIN"
    assert dig(port, "+short", "-x", "10.77.0.160").split() == []
    first = lease("10.77.0.150", "02:00:00:00:00:01", "laptop")
    runner.sync(bus.publish, "bound", first)
    runner.sync(bus.publish, "bound", lease("10.77.0.151", "02:00:00:00:00:02", "Laptop"))  # a second client
    assert dig(port, "+short", "laptop.office.test").split() == ["10.77.0.150"]
    assert dig(port, "+short", "-x", "10.77.0.151").split() == []
    runner.sync(bus.publish, "bound", first)  # the holder renews
    assert dig(port, "+short", "laptop.office.test").split() == ["10.77.0.150"]
    runner.sync(bus.publish, "gone", first)
    assert dig(port, "+short", "laptop.office.test").split() == ["10.77.0.151"]  # the waiting one gets it


def test_a_bare_name_forwarded_before_becomes_local_with_its_lease(dns, ctx):
    svc, port, upstream, runner = dns
    assert status(dig(port, "printer")) == "NOERROR" and dig(port, "+short", "printer").split() == []
    assert upstream.asked["printer"] == 1  # cached now
    runner.sync(lease_bus(ctx).publish, "bound", lease("10.77.0.170", "02:00:00:00:02:01", "printer"))
    assert dig(port, "+short", "printer").split() == ["10.77.0.170"]
    assert dig(port, "+short", "PRINTER.office.test").split() == ["10.77.0.170"]
    assert "PRINTER.office.test." in dig(port, "+noall", "+answer", "PRINTER.office.test")


def test_odd_bytes_in_local_names_are_answered_here(dns, caplog):
    svc, port, upstream, _ = dns
    for name, rcode, answers in ((b"\1\xff\6office\4test\0", 3, 0), (b"\3a.b\6office\4test\0", 3, 0),
                                 (b"\1\xff\x09localhost\0", 0, 1)):
        reply = raw_query(port, header() + name + b"\0\1\0\1")
        assert (reply[3] & 0x0F, reply[7]) == (rcode, answers) and reply[12:12 + len(name)] == name
    assert not upstream.asked
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
