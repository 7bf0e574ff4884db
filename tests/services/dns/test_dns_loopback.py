"""The DNS service on loopback (lab mode) against dig, with a dnslib upstream on another loopback port."""
from __future__ import annotations

import socket
import struct
import time

import pytest
from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.leases import LeaseInfo, lease_bus
from services.dns import SERVICE
from tests.services.dhcp.helpers import LoopThread, lan_config
from tests.services.dns.digtool import dig, status


def test_local_names(dns):
    svc, port, upstream, _ = dns
    assert dig(port, "+short", "nas.office.test").split() == ["10.77.0.5"]
    assert dig(port, "+short", "files.office.test").split() == ["nas.office.test.", "10.77.0.5"]
    assert dig(port, "+short", "box.office.test").split() == ["10.77.0.1"]
    assert dig(port, "+short", "nas").split() == ["10.77.0.5"]  # a bare name is the local host, never forwarded
    assert status(dig(port, "nothere")) == "NOERROR"  # no such host here: the Internet answers (a TLD?)
    assert dig(port, "+short", "files").split() == ["nas.office.test.", "10.77.0.5"]
    assert dig(port, "+short", "MX", "office.test").split() == ["10", "nas.office.test."]
    assert dig(port, "+short", "-x", "10.77.0.5").split() == ["nas.office.test."]
    out = dig(port, "nobody.office.test")
    assert status(out) == "NXDOMAIN" and " aa" in out.split("flags:", 1)[1].split(";", 1)[0]
    assert status(dig(port, "-x", "10.77.0.99")) == "NXDOMAIN"  # LAN reverse names never go upstream
    assert status(dig(port, "SOA", "0.77.10.in-addr.arpa")) == "NOERROR"  # RFC 6303: partial ones neither
    assert status(dig(port, "NS", "10.in-addr.arpa")) == "NOERROR"
    assert upstream.asked == {"nothere": 1}


def test_dhcp_names_follow_the_lease_bus(dns, ctx):
    svc, port, _, runner = dns
    bus = lease_bus(ctx)
    lease = LeaseInfo(__import__("ipaddress").IPv4Address("10.77.0.150"), "02:00:00:00:00:09", "laptop", 2e9, "lan")
    runner.sync(bus.publish, "bound", lease)
    assert dig(port, "+short", "laptop.office.test").split() == ["10.77.0.150"]
    assert dig(port, "+short", "-x", "10.77.0.150").split() == ["laptop.office.test."]
    runner.sync(bus.publish, "bound", LeaseInfo(lease.ip, "02:00:00:00:00:0a", "nas", 2e9, "lan"))
    assert dig(port, "+short", "nas.office.test").split() == ["10.77.0.5"]  # static wins over a DHCP name
    runner.sync(bus.publish, "gone", lease)
    assert status(dig(port, "laptop.office.test")) == "NXDOMAIN"


def test_forwarding_is_cached_with_ttl_and_negative_caching(dns):
    svc, port, upstream, runner = dns
    first = dig(port, "www.example.net")
    assert status(first) == "NOERROR" and "203.0.113." in first
    for _ in range(3):
        again = dig(port, "WWW.Example.NET")
        assert "WWW.Example.NET." in again  # the client's spelling comes back
    assert upstream.asked["www.example.net"] == 1
    ttl = int(dig(port, "+noall", "+answer", "www.example.net").split()[1])
    assert 295 <= ttl <= 300
    assert status(dig(port, "missing.example.net")) == "NXDOMAIN"
    assert status(dig(port, "missing.example.net")) == "NXDOMAIN"
    assert upstream.asked["missing.example.net"] == 1
    svc.flush_cache()  # from another thread (the web admin's): done on the loop soon after
    time.sleep(0.1)
    dig(port, "www.example.net")
    assert upstream.asked["www.example.net"] == 2
    runner.sync(svc.flush_cache)  # on the loop's own thread
    dig(port, "www.example.net")
    assert upstream.asked["www.example.net"] == 3
    out = dig(port, "+noall", "+authority", "missing.example.net")
    assert 0 < int(out.split()[1]) <= 120  # negative TTL: the SOA minimum


def test_truncated_answers_go_tcp_only_where_edns_cannot_carry_them(dns):
    svc, port, upstream, _ = dns
    out = dig(port, "+ignore", "+noedns", "big.example.net")
    assert " tc" in out.split("flags:", 1)[1].split(";", 1)[0] and status(out) == "NOERROR"
    assert len(dig(port, "+tcp", "+short", "big.example.net").split()) == 60
    assert len(dig(port, "+short", "big.example.net").split()) == 60
    assert upstream.asked["big.example.net"] == 1 and not upstream.tcp_asked  # EDNS: whole over UDP
    assert len(dig(port, "+short", "huge.example.net").split()) == 100  # over 1232 bytes: TCP both legs
    assert (upstream.asked["huge.example.net"], upstream.tcp_asked["huge.example.net"]) == (1, 1)
    assert dig(port, "+tcp", "+short", "nas.office.test").split() == ["10.77.0.5"]


def test_malformed_queries_get_formerr_or_nothing(dns):
    svc, port, _, _ = dns
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    try:
        bad = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x05abc"  # name runs off the end
        sock.sendto(bad, ("127.0.0.1", port))
        reply = sock.recv(512)
        assert reply[:2] == b"\x42\x42" and reply[3] & 0x0F == 1  # FORMERR
        sock.sendto(b"\x01", ("127.0.0.1", port))  # not even a header: dropped
        with pytest.raises(socket.timeout):
            sock.recv(512)
        good = DNSRecord.question("nas.office.test").pack()
        sock.sendto(good, ("127.0.0.1", port))
        assert "10.77.0.5" in str(DNSRecord.parse(sock.recv(512)))
    finally:
        sock.close()


GARBAGE = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=300).map(lambda b: struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b),
    st.binary(max_size=300).map(lambda b: struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 1) + b"\3www\7example\3net\0"
                                + b"\0\1\0\1" + b),
    st.binary(max_size=64).map(lambda b: b"\0\7" + b[:1] + b"\0" + b[1:]),
)


def test_fuzzed_queries_never_break_the_server(dns, caplog):
    svc, port, _, runner = dns
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(GARBAGE)
    def blast(data):
        sock.sendto(data, ("127.0.0.1", port))

    try:
        blast()
    finally:
        sock.close()
    tcp = socket.create_connection(("127.0.0.1", port), timeout=2)  # a TCP client sending garbage, then EOF
    tcp.sendall(b"\x00\x05hello\x00")
    tcp.close()
    assert dig(port, "+short", "nas.office.test").split() == ["10.77.0.5"]
    assert dig(port, "+tcp", "+short", "nas.office.test").split() == ["10.77.0.5"]
    assert runner.sync(svc.status).figures["formerr"] > 0
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]  # no handler crashed


def test_dead_or_missing_upstream_gives_servfail(ctx):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nobody listens there any more: the kernel answers "port unreachable"
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(lan_config("lan0", dns={"lab_port": 0, "upstreams": [f"127.0.0.1:{dead_port}"]})))
    try:
        port = svc.addresses[0][1]
        assert status(dig(port, "www.example.net")) == "SERVFAIL"
        assert dig(port, "+short", "box.office.test").split() == ["10.77.0.1"]  # the local zone still works
        runner.call(svc.reload(lan_config("lan0", dns={"lab_port": 0, "upstreams": []})))
        assert status(dig(port, "www.example.net")) == "SERVFAIL"
        assert runner.sync(svc.status).health == "degraded"
    finally:
        runner.call(svc.stop())
        runner.close()
