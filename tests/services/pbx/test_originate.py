"""A call the box originates itself (PbxCore.originate: no incoming transaction behind it) to a
baresip phone, bridged to a second originated call to another: the two phones hear each other."""
import pytest

from .baresip import Baresip, have_baresip
from .conftest import BOB, CAROL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


def test_originate_two_phones_and_bridge_them(pbx):
    with Baresip("bob", user="202", password=BOB["sip_secret"], registrar=pbx.registrar, auto_answer=True) as bob, \
            Baresip("carol", user="203", password=CAROL["sip_secret"], registrar=pbx.registrar,
                    auto_answer=True) as carol:
        bob.register()
        carol.register()
        core = pbx.svc.core
        leg_b = pbx.call(core.originate("202", caller="operator"))
        leg_c = pbx.call(core.originate("203", caller="operator"))
        assert leg_b is not None and leg_c is not None and not leg_b.uas and not leg_c.uas
        assert len(pbx.svc.active_calls()) == 2
        b_rx, c_rx = bob.rtp_stats().get("rx", 0), carol.rtp_stats().get("rx", 0)
        pbx.sync(core.bridge, leg_b, leg_c)
        bob.wait_rtp(rx=b_rx + 25)  # nothing reached them before: each hears the other now
        carol.wait_rtp(rx=c_rx + 25)
        [call] = pbx.svc.active_calls()
        assert set(call["relay"]) == {"202", "203"} and call["state"] == "connected"
        assert pbx.call(core.originate("299", caller="operator")) is None  # no such extension
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
    assert pbx.svc.active_calls() == []
