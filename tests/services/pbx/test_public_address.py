"""A box behind another router (public_address): what leaves for a carrier carries the public address
(Via, Contact, SDP), what goes to the LAN keeps the box's own. The PBX is real; the carrier and the
phones are scripted SIP peers, so the test can read every header they receive."""
from __future__ import annotations

import asyncio

from services.pbx.sip.message import Request, response_to

from .conftest import ALICE, BOB, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

PUBLIC = "203.0.113.77"


def sdp(host: str, port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()


async def invite_received(peer: SipClient) -> Request:
    for _ in range(10):  # bounded: a stray retransmission or OPTIONS may come first
        msg = await peer.recv(5)
        if isinstance(msg, Request) and msg.method == "INVITE":
            return msg
    raise AssertionError("no INVITE")


def test_carrier_sees_the_public_address_the_lan_the_box_address(tmp_path):
    async def scenario(box: PbxRunner) -> None:
        server = ("127.0.0.1", box.port)
        async with SipClient(server) as alice, SipClient(server) as bob, \
                SipClient(server, local_host="127.0.0.2") as carrier:
            assert (await alice.register("201", ALICE["sip_secret"])).status == 200
            assert (await bob.register("202", BOB["sip_secret"])).status == 200
            box.reload(config([ALICE, BOB], public_address=PUBLIC, lab_rtp_port_min=box.cfg.pbx.lab_rtp_port_min,
                              lab_rtp_port_max=box.cfg.pbx.lab_rtp_port_max,
                              trunks=[{"name": "carrier", "host": "127.0.0.2", "port": carrier.port}],
                              routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}],
                              extensions={"202": {"voicemail": False}}))  # bob busy: 486, not his voicemail

            outbound = alice.request("INVITE", f"sip:6000@{server[0]}", "201", body=sdp("127.0.0.1", 40000))
            answer = asyncio.ensure_future(alice.authed(outbound, "201", ALICE["sip_secret"]))
            offer = await invite_received(carrier)
            assert offer.top_via.host == PUBLIC
            assert f"@{PUBLIC}:" in offer.get("Contact")
            assert f"c=IN IP4 {PUBLIC}" in offer.body.decode()
            carrier.send(response_to(offer, 486, to_tag="carrier1"))
            assert (await answer).status == 486

            internal = alice.request("INVITE", f"sip:202@{server[0]}", "201", body=sdp("127.0.0.1", 40002))
            answer = asyncio.ensure_future(alice.authed(internal, "201", ALICE["sip_secret"]))
            ringing = await invite_received(bob)
            assert PUBLIC not in ringing.to_bytes().decode()
            assert "c=IN IP4 127.0.0.1" in ringing.body.decode()
            bob.send(response_to(ringing, 486, to_tag="bob1"))
            assert (await answer).status == 486

    with PbxRunner(tmp_path / "box", config([ALICE, BOB])) as box:
        run(scenario(box))
