"""Per-extension BLF policy (pbx.extensions.<ext>.blf_watchers, blf.py): who may SUBSCRIBE to the
`dialog` state of an extension. 202 lets only its ring group watch it, 203 nobody but itself; 201
keeps the default (everyone). A refused watcher gets 403 and no subscription is kept."""
import pytest

from .conftest import ALICE, BOB, CAROL, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

SECRETS = {"201": ALICE["sip_secret"], "202": BOB["sip_secret"], "203": CAROL["sip_secret"]}


@pytest.fixture
def pbx(tmp_path):
    cfg = config([ALICE, BOB, CAROL], groups=[{"number": "600", "members": ["201", "202"]}],
                 extensions={"202": {"blf_watchers": "same_groups"}, "203": {"blf_watchers": "nobody"}})
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


async def _subscribe(pbx, watcher: str, watched: str) -> int:
    async with SipClient(("127.0.0.1", pbx.port)) as x:
        req = x.request("SUBSCRIBE", f"sip:{watched}@127.0.0.1:{pbx.port}", watcher,
                        headers={"Event": "dialog", "Expires": "300", "Accept": "application/dialog-info+xml"})
        return (await x.authed(req, watcher, SECRETS[watcher])).status


def test_blf_watchers_policy_is_enforced_on_subscribe(pbx):
    async def main():
        return {(w, r): await _subscribe(pbx, w, r)
                for w, r in [("201", "202"), ("203", "202"), ("201", "203"), ("202", "203"), ("203", "203"),
                             ("203", "201"), ("202", "299")]}
    got = run(main())
    assert got == {("201", "202"): 200, ("203", "202"): 403,   # same group / not in 202's group
                   ("201", "203"): 403, ("202", "203"): 403,   # 203 lets nobody watch it
                   ("203", "203"): 200,                        # but itself
                   ("203", "201"): 200,                        # 201: the default, everyone
                   ("202", "299"): 404}
    watchers = sorted((s["subscriber"], s["resource"]) for s in pbx.sync(pbx.svc.core.subscriptions.snapshot))
    assert watchers == [("201", "202"), ("203", "201"), ("203", "203")]


def test_a_policy_change_applies_to_new_subscriptions(pbx):
    assert run(_subscribe(pbx, "203", "202")) == 403
    cfg = pbx.cfg.model_copy(deep=True)
    cfg.pbx.extensions["202"].blf_watchers = "everyone"
    pbx.reload(cfg)
    assert run(_subscribe(pbx, "203", "202")) == 200
