"""SUBSCRIBE/NOTIFY (sip/subscribe.py) with the dialog package (blf.py): a scripted subscriber watches
extension 202 while a baresip phone calls another baresip phone (NOTIFYs early, confirmed,
terminated), then unsubscribes; unknown packages get 489, unknown subscriptions 481.
Call events on the bus (events.py) in order for the same call."""
import asyncio
import re

import pytest

from appliance.bus import appliance_bus
from services.pbx.sip.message import Request, Response, response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, run
from .sipclient import SipClient


async def _subscribe(x: SipClient, port: int, event: str, expires: int = 300) -> Response:
    req = x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{port}", "201",
                    headers={"Event": event, "Expires": str(expires), "Accept": "application/dialog-info+xml"})
    return await x.authed(req, "201", ALICE["sip_secret"])


def test_unknown_package_489_and_unknown_subscription_481(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            x.send(x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{pbx.port}", "201", headers={"Event": "nonsense"}))
            assert (await x.final()).status == 489
            req = x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{pbx.port}", "201", headers={"Event": "dialog"})
            req.set("To", "<sip:202@127.0.0.1>;tag=notours")
            x.send(req)
            assert (await x.final()).status == 481
            ok = await _subscribe(x, pbx.port, "dialog", expires=10)
            assert ok.status == 423 and ok.get("Min-Expires") == "60"
    run(main())


def test_refresh_and_a_notify_answered_481_ends_the_subscription(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            ok = await _subscribe(x, pbx.port, "dialog", expires=300)
            assert ok.status == 200 and ok.get("Expires") == "300"
            [first] = await _notifies(x, 1, 5)
            assert first.get("Event") == "dialog" and first.get("Content-Type") == "application/dialog-info+xml"
            req = x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{pbx.port}", "201", call_id=ok.call_id,
                            headers={"Event": "dialog", "Expires": "120"})
            req.set("To", ok.get("To"))
            x.send(req)
            refreshed = await x.final()
            assert refreshed.status == 200 and refreshed.get("Expires") == "120"
            msg = await x.recv()
            while not (isinstance(msg, Request) and msg.method == "NOTIFY"):
                msg = await x.recv()
            left = int(msg.get("Subscription-State").split("expires=")[1])
            assert 110 <= left <= 120
            assert pbx.sync(lambda: len(pbx.svc.core.subscriptions.snapshot())) == 1
            x.send(response_to(msg, 481))  # the subscriber forgot it: the box stops notifying
            for _ in range(50):
                if not pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot()):
                    break
                await asyncio.sleep(0.05)
            assert pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot()) == []
    run(main())


async def _notifies(x: SipClient, wanted: int, timeout: float) -> list[Request]:
    got = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(got) < wanted and loop.time() < end:
        try:
            msg = await x.recv(max(0.05, end - loop.time()))
        except TimeoutError:
            break
        if isinstance(msg, Request) and msg.method == "NOTIFY":
            x.send(response_to(msg, 200))
            got.append(msg)
    return got


def _states(body: bytes) -> list[str]:
    return re.findall(r"<state>(\w+)</state>", body.decode())


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_dialog_package_follows_a_baresip_call(pbx):
    seen = []
    off = appliance_bus(pbx.ctx).subscribe("pbx.", lambda e: seen.append((e.topic, e.key, e.data)))
    with Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar) as bob, \
            Baresip("carol", user="203", password=CAROL["sip_secret"], registrar=pbx.registrar) as carol:
        bob.register()
        carol.register()

        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as x:
                ok = await _subscribe(x, pbx.port, "dialog")
                assert ok.status == 200 and ok.to.tag
                [first] = await _notifies(x, 1, 5)
                assert first.get("Subscription-State").startswith("active")
                assert _states(first.body) == []  # 202 idle
                await carol.aio.dial("202")
                await bob.aio.answer()
                await carol.aio.wait_for("CALL_ESTABLISHED")
                got = await _notifies(x, 2, 10)
                await carol.aio.hangup()
                got += await _notifies(x, 1, 10)
                states = [s for n in got for s in _states(n.body)]
                assert states == ["early", "confirmed", "terminated"], states
                versions = [int(re.search(rb'version="(\d+)"', n.body).group(1)) for n in [first, *got]]
                assert versions == sorted(versions) and len(set(versions)) == len(versions)
                # unsubscribe: a last NOTIFY says terminated
                req = x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{pbx.port}", "201",
                                headers={"Event": "dialog", "Expires": "0"}, call_id=ok.call_id)
                req.set("To", ok.get("To"))
                x.send(req)
                last = await _notifies(x, 1, 5)
                assert last and last[0].get("Subscription-State").startswith("terminated")
                assert pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot()) == []
        run(main())
    off()
    calls = [d["event"] for t, _, d in seen if t == "pbx.call" and d is not None]
    assert calls == ["initiated", "alerting", "connected", "cleared"], calls
    bob_events = [d["dialog"] for t, k, d in seen if t == "pbx.device" and k == "202"]
    assert bob_events == ["early", "confirmed", "terminated"], bob_events
    assert appliance_bus(pbx.ctx).retained("pbx.call") == {}
