"""The SIP trace page: a bounded capture in the PBX (services/pbx/sip/trace.py) of a real baresip
registration, filtered by extension, with the digest response masked, downloadable as text and pcap."""
from __future__ import annotations

import json
import logging
import struct

import pytest

from services.pbx.sip.trace import SipTrace
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import post
from tests.webadmin.test_pbx_pages import _LivePbx, _until, page, pbx_client  # noqa: F401 (fixture)


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_a_real_registration_is_traced_with_the_digest_masked(pbx_client, runtime, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, "officebox.audit")
    with _LivePbx(runtime) as live:
        registrar = f"127.0.0.1:{live.svc.sip_port}"
        bad = post(pbx_client, "/diagnostics/sip-trace", {"seconds": "9999", "packets": "50", "extension": "201",
                                                          "ip": "not-an-ip"})
        assert bad.status_code == 400 and 'href="#f-seconds"' in bad.get_data(as_text=True)
        assert 'value="not-an-ip"' in bad.get_data(as_text=True)
        started = post(pbx_client, "/diagnostics/sip-trace", {"seconds": "60", "packets": "50", "extension": "201",
                                                              "ip": ""})
        assert started.status_code == 302
        assert "SIP trace started (60 s, 50 messages, extension 201" in caplog.text
        with Baresip("alice", user="201", password="alicesecret1", registrar=registrar) as alice, \
                Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
            alice.register()
            bob.register()
            trace = _until(lambda: (t := runtime.client("pbx").sip_trace())["state"]["captured"] >= 4 and t)
    assert json.loads(json.dumps(trace)) == trace  # what crosses the RPC boundary of the PBX process
    lines = [(m["direction"], m["first_line"]) for m in trace["messages"]]
    assert ("in", next(line for d, line in lines if line.startswith("REGISTER sip:"))) in lines
    assert ("out", "SIP/2.0 401 Unauthorized") in lines and ("out", "SIP/2.0 200 OK") in lines
    assert all("sip:201@" in m["text"] for m in trace["messages"])  # bob's are filtered out
    authorized = [m["text"] for m in trace["messages"] if "Authorization: Digest" in m["text"]]
    assert authorized and all('response="********"' in text for text in authorized)

    view = page(pbx_client, "/diagnostics/sip-trace")
    assert "SIP/2.0 401 Unauthorized" in view and "response=&#34;********&#34;" in view
    text = pbx_client.get("/diagnostics/sip-trace.txt")
    assert text.status_code == 200 and "REGISTER sip:" in text.get_data(as_text=True)
    assert 'response="********"' in text.get_data(as_text=True)
    pcap = pbx_client.get("/diagnostics/sip-trace.pcap").get_data()
    assert struct.unpack_from("<IHHiIII", pcap) == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    first_len = struct.unpack_from("<IIII", pcap, 24)[2]
    packet = pcap[40:40 + first_len]
    assert packet[0] == 0x45 and packet[9] == 17 and packet[28:].startswith(trace["messages"][0]["text"].encode())
    assert pcap.count(b'response="********"') == pcap.count(b"Authorization: Digest") >= len(authorized)
    assert b"alicesecret1" not in pcap


def test_the_capture_is_bounded_and_checked():
    trace = SipTrace()
    with pytest.raises(ValueError):
        trace.start(601, 10)
    with pytest.raises(ValueError):
        trace.start(10, 10, ip="192.0.2.300")
    trace.start(10, 2)
    for _ in range(5):
        trace.tap(b"OPTIONS sip:201@box SIP/2.0\r\n\r\n", ("udp", "192.0.2.1", 5060), "in")
    assert trace.state()["captured"] == 2 and trace.state()["running"] is False
