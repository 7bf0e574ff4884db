"""Message waiting (mwi.py, RFC 3842): a baresip phone with its mwi module subscribes to its own box and
is told "yes" then "no" as the counts on the bus topic pbx.mailbox change; subscribing to another
extension's box gets 403; a subscription refreshes and expires; a phone that does not subscribe gets
unsolicited NOTIFYs when its extension is set so (mwi_unsolicited), also when it registers later."""
import asyncio
import time

import pytest

from appliance.bus import appliance_bus
from services.pbx.mwi import MAILBOX_TOPIC, SWEEP_SECONDS
from services.pbx.sip import subscribe
from services.pbx.sip.message import Request, response_to

from .baresip import Baresip, have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

ACCEPT = "application/simple-message-summary"


class MwiPhone(Baresip):
    """baresip with its mwi module loaded and the account's mwi=yes: it subscribes once registered and
    reports each NOTIFY body as an MWI_NOTIFY event."""

    def _account_line(self) -> str:
        return super()._account_line().replace("mwi=no", "mwi=yes")

    def _config(self) -> str:
        return super()._config().replace("module_app menu.so", "module_app menu.so\nmodule_app mwi.so")


class _Unsubscribed(MwiPhone):
    def _account_line(self) -> str:
        return Baresip._account_line(self)


def publish(pbx, ext: str, new: int, old: int) -> None:
    appliance_bus(pbx.ctx).publish(MAILBOX_TOPIC, ext, {"extension": ext, "new": new, "old": old}, retain=True)


def _fields(body: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in body.replace("\r", "").splitlines() if ":" in line)
    return {k.strip().lower(): v.strip() for k, v in pairs}


async def _subscribe(x: SipClient, port: int, box: str, user: str, secret: str, expires: int = 300):
    req = x.request("SUBSCRIBE", f"sip:{box}@127.0.0.1:{port}", user,
                    headers={"Event": "message-summary", "Expires": str(expires), "Accept": ACCEPT})
    return await x.authed(req, user, secret)


async def _next_notify(x: SipClient, timeout: float = 5.0) -> Request:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        msg = await x.recv(max(0.05, end - loop.time()))
        if isinstance(msg, Request) and msg.method == "NOTIFY":
            x.send(response_to(msg, 200))
            return msg


def _told(phone: Baresip, voice: str, timeout: float) -> dict[str, str]:
    """The first MWI_NOTIFY baresip reports with this Voice-Message line (earlier states are skipped:
    baresip subscribes anew on each registration refresh, which NOTIFYs the state of that moment)."""
    end = time.monotonic() + timeout
    while True:
        fields = _fields(phone.wait_for("MWI_NOTIFY", max(0.05, end - time.monotonic()))["param"])
        if fields["voice-message"] == voice:
            return fields


@pytest.mark.skipif(not have_baresip(), reason="baresip not installed")
def test_a_subscribing_baresip_phone_is_told_yes_then_no(pbx):
    publish(pbx, "201", 0, 3)  # already known before the phone subscribes: the first NOTIFY says so
    with MwiPhone("alice", "201", ALICE["sip_secret"], pbx.registrar) as phone:  # started by `with`
        phone.register()
        first = _told(phone, "0/3 (0/0)", 10)
        assert first["messages-waiting"] == "no" and first["message-account"].startswith("sip:201@")
        started = time.monotonic()
        publish(pbx, "201", 1, 3)  # a new message
        assert _told(phone, "1/3 (0/0)", 5)["messages-waiting"] == "yes"
        print(f"baresip told of the new message {time.monotonic() - started:.3f} s after it was published")
        publish(pbx, "201", 0, 4)  # heard
        assert _told(phone, "0/4 (0/0)", 5)["messages-waiting"] == "no"
        publish(pbx, "202", 5, 0)  # someone else's box: not this phone's business
        time.sleep(1.5)  # (baresip subscribes anew on each registration refresh: a NOTIFY of 0/4 each time)
        told = [_fields(e["param"])["voice-message"] for e in phone.events if e.get("type") == "MWI_NOTIFY"]
        assert "5/0 (0/0)" not in told and told[-1] == "0/4 (0/0)"
        subs = pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot())
        assert subs and all(s["package"] == "message-summary" and s["subscriber"] == s["resource"] == "201"
                            for s in subs)


def test_only_the_own_box_may_be_watched(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            other = await _subscribe(x, pbx.port, "202", "201", ALICE["sip_secret"])
            assert other.status == 403
            unknown = await _subscribe(x, pbx.port, "299", "201", ALICE["sip_secret"])
            assert unknown.status == 404
            disabled = await _subscribe(x, pbx.port, "204", "201", ALICE["sip_secret"])
            assert disabled.status == 404
            assert pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot()) == []
    run(main())


def test_refresh_then_expiry(pbx, monkeypatch):
    monkeypatch.setattr(subscribe, "MIN_EXPIRES", 1)  # a subscription that runs out within the test

    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as x:
            ok = await _subscribe(x, pbx.port, "202", "202", BOB["sip_secret"], expires=300)
            assert ok.status == 200
            first = await _next_notify(x)
            assert first.get("Content-Type") == ACCEPT and first.get("Event") == "message-summary"
            assert _fields(first.body.decode())["messages-waiting"] == "no"
            publish(pbx, "202", 2, 0)
            changed = await _next_notify(x, 1.0)
            assert _fields(changed.body.decode())["voice-message"] == "2/0 (0/0)"
            refresh = x.request("SUBSCRIBE", f"sip:202@127.0.0.1:{pbx.port}", "202", call_id=ok.call_id,
                                headers={"Event": "message-summary", "Expires": "2"})
            refresh.set("To", ok.get("To"))
            x.send(refresh)
            assert (await x.final()).get("Expires") == "2"
            again = await _next_notify(x)  # a refresh NOTIFYs the full state again
            assert again.get("Subscription-State").startswith("active;expires=")
            assert _fields(again.body.decode())["messages-waiting"] == "yes"
            last = await _next_notify(x, 5)
            assert last.get("Subscription-State") == "terminated;reason=timeout"
            await asyncio.sleep(0.1)
            assert pbx.sync(lambda: pbx.svc.core.subscriptions.snapshot()) == []
            publish(pbx, "202", 0, 2)
            with pytest.raises(TimeoutError):
                await _next_notify(x, 1.0)
    run(main())


def test_unsolicited_notify_reaches_a_phone_that_does_not_subscribe(tmp_path):
    cfg = config([ALICE, BOB, CAROL, DAVE], extensions={"203": {"mwi_unsolicited": True}})

    async def main(pbx):
        async with SipClient(("127.0.0.1", pbx.port)) as carol, SipClient(("127.0.0.1", pbx.port)) as bob:
            assert (await carol.register("203", CAROL["sip_secret"])).status == 200
            assert (await bob.register("202", BOB["sip_secret"])).status == 200
            hello = await _next_notify(carol, 5)  # a phone that registers is told the current state
            assert _fields(hello.body.decode())["messages-waiting"] == "no"
            started = time.monotonic()
            publish(pbx, "203", 1, 0)
            publish(pbx, "202", 1, 0)  # bob's extension is not set so: his phone hears nothing
            notify = await _next_notify(carol, 2)
            print(f"unsolicited NOTIFY {time.monotonic() - started:.3f} s after the change")
            assert not notify.to_tag and notify.get("Event") == "message-summary"
            assert notify.uri.user == "203" and notify.uri.port == carol.port
            assert _fields(notify.body.decode())["messages-waiting"] == "yes"
            with pytest.raises(TimeoutError):
                await _next_notify(bob, 1.0)
            publish(pbx, "203", 0, 1)
            assert _fields((await _next_notify(carol, 2)).body.decode())["messages-waiting"] == "no"
            publish(pbx, "203", 4, 1)
            async with SipClient(("127.0.0.1", pbx.port)) as desk:  # a second phone registers later
                assert (await desk.register("203", CAROL["sip_secret"])).status == 200
                late = await _next_notify(desk, 5)
                assert _fields(late.body.decode())["voice-message"] == "4/1 (0/0)"
    with PbxRunner(tmp_path / "pbx", cfg) as pbx:
        run(main(pbx))


@pytest.mark.skipif(not have_baresip(), reason="baresip not installed")
def test_each_registered_phone_of_an_extension_is_told_once(tmp_path):
    """Two baresip phones registered as 201: the desk one subscribes (mwi module), the soft one does not.
    With mwi_unsolicited the desk phone is told in its dialog only (it sees Messages-Waiting yes then no)
    and the soft phone out of dialog only. baresip 1.0 reports no out-of-dialog NOTIFY as an event, so
    the soft phone's side is read from its answers: the NOTIFYs the PBX sent it and their counts."""
    cfg = config([ALICE, BOB, CAROL, DAVE], extensions={"201": {"mwi_unsolicited": True}})
    with PbxRunner(tmp_path / "pbx", cfg) as pbx, \
            MwiPhone("desk", "201", ALICE["sip_secret"], pbx.registrar) as desk, \
            _Unsubscribed("soft", "201", ALICE["sip_secret"], pbx.registrar) as soft:
        package = pbx.svc.core.subscriptions.packages["message-summary"]
        told: list[tuple[str, tuple[int, int], int]] = []
        send = package._send

        def spy(extension, binding, counts):
            told.append((binding.contact, counts, binding.flow[2]))
            send(extension, binding, counts)
        package._send = spy
        desk.register()
        soft.register()
        _told(desk, "0/0 (0/0)", 10)
        contacts = pbx.sync(lambda: {b.flow[2]: b.contact for b in pbx.svc.core.location.lookup("201")})
        assert len(contacts) == 2, contacts
        publish(pbx, "201", 2, 0)
        assert _told(desk, "2/0 (0/0)", 5)["messages-waiting"] == "yes"
        publish(pbx, "201", 0, 2)
        assert _told(desk, "0/2 (0/0)", 5)["messages-waiting"] == "no"
        time.sleep(SWEEP_SECONDS + 0.5)
        assert {port for _, _, port in told} == {soft.sip_port} != {desk.sip_port}, \
            f"only the phone without a subscription is told out of dialog: {told}"
        assert [c for _, c, _ in told][-2:] == [(2, 0), (0, 2)], told
