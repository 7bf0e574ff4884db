"""Call centre queues with real peers: SIPp and baresip callers into `queue:sales` (dialled as 600), served
by three baresip agents (201 alice, 202 bob, 203 carol) that answer by themselves; the test hangs each
agent's call up after a moment. Reports are checked against the calls the test made."""
from __future__ import annotations

import subprocess
import threading
import time
from contextlib import ExitStack

import pytest

from services.pbx import acd as acd_pkg
from services.pbx import apps
from services.pbx.acd.queue import enter_queue
from services.pbx.prompts import PromptLibrary

from . import test_channel as ch
from .baresip import Baresip, BaresipError, _free_port, have_baresip
from .conftest import seed_prompts
from .pbxrunner import PbxRunner, config, user
from .sipp import SCENARIOS, free_media_port, have_sipp
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]
AGENTS = [user("alice", "201", "alicesecret1"), user("bob", "202", "bobsecret12"), user("carol", "203", "carolsecret1")]
OVERFLOW = user("olivia", "204", "oliviasecret1")
CALLERS = [user(f"caller{i}", str(210 + i), f"callersecret{i:02d}") for i in range(12)]


def _queue(**kw) -> dict:
    q = {"number": "600", "name": "sales", "strategy": "longest_idle", "agent_timeout": 4, "wrap_up": 0,
         "announce_every": 0, "max_wait": 120, "overflow": "204",
         "members": [{"agent": "201", "skill": 3}, {"agent": "202", "skill": 8}, {"agent": "203", "skill": 5}]}
    return q | kw


def _cfg(**queue):
    return config([*AGENTS, OVERFLOW, *CALLERS], digest_algorithms=["MD5"], codecs=["PCMU", "PCMA"],
                  queues=[_queue(**queue)], application_numbers={"700": "app:ivr-test"})


async def _ivr(channel) -> None:
    """An IVR before the queue: the key pressed is the caller's priority."""
    if await channel.answer():
        key = await channel.next_key(15)
        await enter_queue(channel, "sales", int(key) if key and key.isdigit() else 0)


@pytest.fixture(scope="module")
def acdpbx(tmp_path_factory, prompt_set):
    data = tmp_path_factory.mktemp("pbx")
    seed_prompts(prompt_set, data)
    apps.register("app:ivr-test", _ivr)
    try:
        with PbxRunner(data, _cfg()) as runner:
            PromptLibrary(data, "en").ensure()  # once for the module
            yield runner
    finally:
        apps.unregister("app:ivr-test")


@pytest.fixture
def pbx(acdpbx):
    """The module's PBX with a fresh queue and every agent logged out, and the records emptied."""
    def reset():
        acd = acd_pkg.for_core(acdpbx.svc.core)
        for ext in list(acd.agents):
            acd.logout(ext)
        for waiters in acd.waiting.values():
            waiters.clear()
        acd.recent.clear()
        acd.answered_recent.clear()
        acd.store.flush()
        with acd.store._db() as db:
            db.execute("DELETE FROM queue_calls")
            db.execute("DELETE FROM agent_log")
    acdpbx.reload(_cfg())
    acdpbx.sync(reset)
    yield acdpbx


def _acd(pbx) -> acd_pkg.Acd:
    return acd_pkg.for_core(pbx.svc.core)


def _action(pbx, ext: str, action: str, reason: str = "") -> str:
    out = pbx.svc.acd_agent_action(ext, action, reason)
    assert "status" in out, out
    return out["status"]


class Agent:
    """A baresip agent phone that answers by itself; each call it takes is hung up after `talk` seconds."""

    def __init__(self, stack: ExitStack, pbx, who: dict, talk: float = 1.0, answer: bool = True) -> None:
        self.ext = who["extension"]
        self.ua = stack.enter_context(Baresip(who["login"], user=self.ext, password=who["sip_secret"],
                                              registrar=pbx.registrar, auto_answer=answer, timeout=20))
        self.ua.register()
        self.talk, self.taken, self.stop = talk, 0, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        if answer:
            self.thread.start()
        stack.callback(self.stop.set)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                ev = self.ua.wait_for("CALL_ESTABLISHED", timeout=0.5)
            except BaresipError:
                continue
            self.taken += 1
            time.sleep(self.talk)
            try:
                self.ua.select(ev["id"])
                self.ua.hangup()
            except BaresipError:
                pass


def _sipp_caller(pbx, who: dict, workdir, number: str = "600") -> subprocess.Popen:
    """A SIPp caller that waits in the queue until the box hangs up (queue_caller.xml)."""
    argv = ["sipp", pbx.registrar, "-sf", str(SCENARIOS / "queue_caller.xml"), "-s", number,
            "-au", who["extension"], "-ap", who["sip_secret"], "-auth_uri", f"{number}@{pbx.registrar}",
            "-key", "caller", who["extension"], "-i", "127.0.0.1", "-p", str(_free_port("127.0.0.1")),
            "-mp", str(free_media_port()), "-m", "1", "-l", "1", "-timeout", "90s", "-timeout_error",
            "-nostdin", "-trace_err", "-error_file", str(workdir / f"sipp-{who['extension']}.log")]
    return subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)


def _log(pbx) -> list[dict]:
    return list(reversed(pbx.svc.acd_agent_log(0)))


def _rows(pbx) -> list[dict]:
    return pbx.svc.acd_report(0, time.time() + 10, "agent")


def _queue_rows(pbx) -> list[dict]:
    store = _acd(pbx).store
    return store.calls(0, time.time() + 10)


def _caller(stack, pbx, who: dict, **kw) -> Baresip:
    ua = stack.enter_context(Baresip(who["login"], user=who["extension"], password=who["sip_secret"],
                                     registrar=pbx.registrar, timeout=20, **kw))
    ua.register()
    return ua


# -- a dozen callers, three agents ---------------------------------------------------------------------
@pytest.mark.skipif(not have_sipp(), reason="SIPp (sip-tester) is not installed")
@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "fewest_calls"])
def test_a_dozen_callers_are_shared_by_three_agents_and_counted_once(pbx, tmp_path, strategy):
    pbx.reload(_cfg(strategy=strategy))
    with ExitStack() as stack:
        agents = [Agent(stack, pbx, who, talk=0.8) for who in AGENTS]
        for a in agents:
            assert _action(pbx, a.ext, "login") == "available"
        callers = [_sipp_caller(pbx, who, tmp_path) for who in CALLERS]
        try:
            codes = [p.wait(120) for p in callers]
        finally:
            for p in callers:
                if p.poll() is None:
                    p.kill()
        assert codes == [0] * 12, [(tmp_path / f"sipp-{c['extension']}.log").read_text(errors="replace")[-800:]
                                   for c, code in zip(CALLERS, codes, strict=True) if code]
        wait(lambda: sum(a.taken for a in agents) == 12, timeout=10,
             what=f"12 answered calls: {[(r['outcome'], r['agent']) for r in _queue_rows(pbx)]} "
             f"{[(a.ext, a.taken) for a in agents]} {[(r['agent'], r['state'], r['reason']) for r in _log(pbx)]}")
    taken = {a.ext: a.taken for a in agents}
    assert all(n >= 2 for n in taken.values()), taken  # every agent took part
    wait(lambda: sum(r["offered"] for r in _rows(pbx)) == 12, timeout=10, what="12 records")
    by_agent = {r["key"]: r for r in _rows(pbx)}
    assert {k: r["answered"] for k, r in by_agent.items()} == taken  # the records say what the phones saw
    [q] = pbx.svc.acd_report(0, time.time() + 10, "queue")
    assert (q["offered"], q["answered"], q["abandoned"], q["overflowed"]) == (12, 12, 0, 0)
    assert q["aht"] > 0.5 and q["longest_wait"] >= q["asa"] >= 0


def test_ring_all_rings_every_free_agent_and_the_first_answer_takes_it(pbx):
    pbx.reload(_cfg(strategy="ring_all"))
    with ExitStack() as stack:
        agents = [Agent(stack, pbx, who, answer=False) for who in AGENTS]
        for a in agents:
            _action(pbx, a.ext, "login")
        caller = _caller(stack, pbx, CALLERS[0])
        caller.dial("600")
        rung = [a.ua.wait_for("CALL_INCOMING") for a in agents]  # all three ring
        agents[2].ua.select(rung[2]["id"])
        agents[2].ua.command("accept")
        caller.wait_for("CALL_ESTABLISHED")
        for a in agents[:2]:
            a.ua.wait_for("CALL_CLOSED")  # the others stop ringing
        caller.wait_rtp(rx=caller.rtp_stats().get("rx", 0) + 25)
        agents[2].ua.hangup()
        caller.wait_for("CALL_CLOSED")
    wait(lambda: _queue_rows(pbx), what="the record")
    [row] = _queue_rows(pbx)
    assert (row["agent"], row["outcome"]) == ("203", "answered")


def test_skills_give_the_caller_the_most_skilled_free_agent(pbx):
    pbx.reload(_cfg(strategy="skills"))
    with ExitStack() as stack:
        agents = [Agent(stack, pbx, who, talk=0.5) for who in AGENTS]
        for a in agents:
            _action(pbx, a.ext, "login")
        for who in CALLERS[:2]:
            caller = _caller(stack, pbx, who)
            caller.dial("600")
            caller.wait_for("CALL_CLOSED", timeout=20)
    wait(lambda: len(_queue_rows(pbx)) == 2, what="the records")
    assert [r["agent"] for r in _queue_rows(pbx)] == ["202", "202"]  # skill 8 over 5 and 3, twice


def test_a_vip_caller_waiting_less_is_served_first(pbx):
    pbx.reload(_cfg(vip_callers=["211"]))
    with ExitStack() as stack:
        bob = Agent(stack, pbx, AGENTS[1], talk=0.5)
        _action(pbx, "202", "login")
        _action(pbx, "202", "pause", "meeting")
        first = _caller(stack, pbx, CALLERS[0])
        first.dial("600")
        first.wait_for("CALL_ESTABLISHED")
        wait(lambda: pbx.sync(lambda: len(_acd(pbx).waiting["sales"])) == 1, what="the first caller waiting")
        time.sleep(1.0)
        vip = _caller(stack, pbx, CALLERS[1])
        vip.dial("600")
        vip.wait_for("CALL_ESTABLISHED")
        wait(lambda: pbx.sync(lambda: len(_acd(pbx).waiting["sales"])) == 2, what="both waiting")
        _action(pbx, "202", "resume")
        vip.wait_for("CALL_CLOSED", timeout=20)  # bob took the VIP first and hung up
        assert first.call_state() == "CALL_ESTABLISHED"  # still waiting, with music
        first.wait_for("CALL_CLOSED", timeout=20)
        assert bob.taken == 2
    rows = _queue_rows(pbx)
    assert [(r["caller"], r["priority"]) for r in sorted(rows, key=lambda r: r["answered"])] == [("211", 9), ("210", 0)]


def test_an_ivr_choice_sets_the_priority(pbx):
    with ExitStack() as stack:
        bob = Agent(stack, pbx, AGENTS[1], talk=0.5)
        _action(pbx, "202", "login")
        _action(pbx, "202", "pause", "meeting")
        plain = _caller(stack, pbx, CALLERS[0])
        plain.dial("600")
        plain.wait_for("CALL_ESTABLISHED")
        chose = _caller(stack, pbx, CALLERS[1])
        chose.dial("700")
        chose.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        chose.send_dtmf("5")
        wait(lambda: pbx.sync(lambda: len(_acd(pbx).waiting["sales"])) == 2, what="both waiting")
        _action(pbx, "202", "resume")
        chose.wait_for("CALL_CLOSED", timeout=20)  # served first
        plain.wait_for("CALL_CLOSED", timeout=20)
        assert bob.taken == 2
    rows = sorted(_queue_rows(pbx), key=lambda r: r["answered"])
    assert [(r["caller"], r["priority"]) for r in rows] == [("211", 5), ("210", 0)]


def test_position_announcement_is_heard(pbx, tmp_path):
    pbx.reload(_cfg(announce_every=30))
    library = PromptLibrary(pbx.ctx.data_dir, "en")
    quiet = ch.write_wav(tmp_path / "quiet.wav", [0] * 8000 * 30)
    with ExitStack() as stack:
        Agent(stack, pbx, AGENTS[0])
        _action(pbx, "201", "login")
        _action(pbx, "201", "pause", "break")
        caller = stack.enter_context(ch.AudioBaresip("caller0", quiet, user="210", password=CALLERS[0]["sip_secret"],
                                                     registrar=pbx.registrar, codecs=("pcmu",)))
        caller.register()
        caller.dial("600")
        caller.wait_for("CALL_ESTABLISHED")
        time.sleep(12)  # music, then (at 3 s) "you are caller number one in the queue..."
        caller.hangup()
        caller.wait_for("CALL_CLOSED")
        heard = ch.read_wav(caller.heard())[0]
    prompt = ch.read_wav(library.prompt_path("acd-position", "en"))[0]
    other = ch.read_wav(library.prompt_path("acd-sorry-closed", "en"))[0][:len(prompt)]
    same, lag = ch.best_correlation(ch.envelope(prompt), ch.envelope(heard), 1100)
    different, _ = ch.best_correlation(ch.envelope(other), ch.envelope(heard), 1100)
    assert same > ch.SAME, f"the position announcement was not heard ({same:.3f} at {lag * 10} ms)"
    assert different < same - 0.1, f"another prompt matches as well ({different:.3f})"
    assert 2.0 <= lag / 100 <= 7.0, f"heard at {lag / 100:.1f} s"
    wait(lambda: _queue_rows(pbx), what="the record")
    [row] = _queue_rows(pbx)
    assert row["outcome"] == "abandoned" and 10 <= row["ended"] - row["entered"] <= 15  # abandon counted


def test_callback_is_placed_when_an_agent_frees_up(pbx):
    pbx.reload(_cfg(callback_every=5))
    with ExitStack() as stack:
        bob = Agent(stack, pbx, AGENTS[1], talk=1.0)
        _action(pbx, "202", "login")
        _action(pbx, "202", "pause", "lunch")
        caller = _caller(stack, pbx, CALLERS[0], auto_answer=True)
        caller.dial("600")
        caller.wait_for("CALL_ESTABLISHED")
        time.sleep(8)  # the offer at 5 s
        caller.send_dtmf("1")
        caller.wait_for("CALL_CLOSED", timeout=20)  # "we will call you back", the box hangs up
        assert pbx.sync(lambda: [w.channel for w in _acd(pbx).waiting["sales"]]) == [None]  # kept its place
        _action(pbx, "202", "resume")
        caller.wait_for("CALL_ESTABLISHED", timeout=20)  # called back, answered, joined to bob
        caller.wait_for("CALL_CLOSED", timeout=20)
        assert bob.taken == 1
    wait(lambda: _queue_rows(pbx), what="the record")
    [row] = _queue_rows(pbx)
    assert (row["outcome"], row["callback"], row["agent"]) == ("callback", 1, "202")
    [q] = pbx.svc.acd_report(0, time.time() + 10, "queue")
    assert (q["offered"], q["callbacks"], q["abandoned"]) == (1, 1, 0)


def test_overflow_on_timeout(pbx):
    pbx.reload(_cfg(max_wait=10))
    with ExitStack() as stack:
        Agent(stack, pbx, AGENTS[0])
        _action(pbx, "201", "login")
        _action(pbx, "201", "pause", "break")
        olivia = Agent(stack, pbx, OVERFLOW, talk=1.0)
        caller = _caller(stack, pbx, CALLERS[0])
        started = time.monotonic()
        caller.dial("600")
        caller.wait_for("CALL_CLOSED", timeout=30)
        assert olivia.taken == 1 and time.monotonic() - started >= 10
    [row] = _queue_rows(pbx)
    assert row["outcome"] == "timeout" and row["answered"] is None


def test_an_agent_whose_phone_vanished_is_passed_over(pbx):
    with ExitStack() as stack:
        alice = Agent(stack, pbx, AGENTS[0], answer=False)
        bob = Agent(stack, pbx, AGENTS[1], talk=0.5)
        _action(pbx, "201", "login")  # longest idle: alice first
        time.sleep(0.2)
        _action(pbx, "202", "login")
        alice.ua.proc.kill()  # the phone is gone, its registration stays
        alice.ua.proc.wait(5)
        caller = _caller(stack, pbx, CALLERS[0])
        caller.dial("600")
        caller.wait_for("CALL_CLOSED", timeout=30)
        assert bob.taken == 1
    [row] = _queue_rows(pbx)
    assert (row["agent"], row["outcome"]) == ("202", "answered")
    assert row["answered"] - row["entered"] >= 4  # alice's ring timeout first
    log = pbx.svc.acd_agent_log(0, "201")
    assert [r["state"] for r in reversed(log)][:3] == ["available", "ringing", "available"]


def test_auto_pause_after_missed_calls(pbx):
    pbx.reload(_cfg(auto_pause_after=1, max_wait=10, overflow=None))
    with ExitStack() as stack:
        Agent(stack, pbx, AGENTS[0], answer=False)
        _action(pbx, "201", "login")
        caller = _caller(stack, pbx, CALLERS[0])
        caller.dial("600")
        wait(lambda: pbx.svc.acd_agent("201")["status"] == "paused", timeout=15, what="the auto-pause")
        assert pbx.svc.acd_agent("201")["reason"] == "missed calls"
        caller.wait_for("CALL_CLOSED", timeout=30)  # timeout, no overflow: "sorry", then hung up


def test_all_agents_logging_out_sends_waiting_callers_to_overflow(pbx):
    with ExitStack() as stack:
        for who in AGENTS:
            Agent(stack, pbx, who)
            _action(pbx, who["extension"], "login")
            _action(pbx, who["extension"], "pause", "meeting")
        olivia = Agent(stack, pbx, OVERFLOW, talk=1.0)
        callers = [_caller(stack, pbx, who) for who in CALLERS[:2]]
        for c in callers:
            c.dial("600")
            c.wait_for("CALL_ESTABLISHED")
        wait(lambda: pbx.sync(lambda: len(_acd(pbx).waiting["sales"])) == 2, what="two waiting")
        for who in AGENTS:
            _action(pbx, who["extension"], "logout")
        for c in callers:
            c.wait_for("CALL_CLOSED", timeout=30)  # each went to olivia, who talked and hung up
        assert olivia.taken == 2
    assert sorted(r["outcome"] for r in _queue_rows(pbx)) == ["no_agents", "no_agents"]
    # a caller arriving now goes to the overflow at once
    assert pbx.sync(lambda: _acd(pbx).waiting["sales"]) == []


def test_agent_feature_codes(pbx):
    with ExitStack() as stack:
        carol = _caller(stack, pbx, AGENTS[2])
        for code, status in (("*51", "available"), ("*53", "paused"), ("*54", "available"), ("*52", "logged_out")):
            carol.dial(code)
            if code == "*53":
                carol.wait_for("CALL_ESTABLISHED")
                time.sleep(1.0)
                carol.send_dtmf("2")
            carol.wait_for("CALL_CLOSED", timeout=30)
            assert pbx.svc.acd_agent("203")["status"] == status, code
    log = pbx.svc.acd_agent_log(0, "203")
    assert [(r["state"], r["reason"]) for r in reversed(log)] == [
        ("available", ""), ("paused", "lunch"), ("available", ""), ("logged_out", "")]
    retained = pbx.svc.core.events.bus.retained("pbx.agent")["203"]
    assert retained["status"] == "logged_out" and retained["queues"] == ["sales"]


def test_a_full_queue_sends_the_next_caller_to_overflow(pbx):
    pbx.reload(_cfg(max_length=1))
    with ExitStack() as stack:
        Agent(stack, pbx, AGENTS[0])
        _action(pbx, "201", "login")
        _action(pbx, "201", "pause", "break")
        olivia = Agent(stack, pbx, OVERFLOW, talk=0.5)
        first = _caller(stack, pbx, CALLERS[0])
        first.dial("600")
        first.wait_for("CALL_ESTABLISHED")
        wait(lambda: pbx.sync(lambda: len(_acd(pbx).waiting["sales"])) == 1, what="the first caller waiting")
        second = _caller(stack, pbx, CALLERS[1])
        second.dial("600")
        second.wait_for("CALL_CLOSED", timeout=20)  # olivia took it and hung up
        assert olivia.taken == 1 and first.call_state() == "CALL_ESTABLISHED"
        first.hangup()
        first.wait_for("CALL_CLOSED")
    wait(lambda: len(_queue_rows(pbx)) == 2, what="two records")
    assert sorted((r["caller"], r["outcome"]) for r in _queue_rows(pbx)) == [("210", "abandoned"), ("211", "full")]


def test_wrap_up_keeps_the_next_call_away(pbx):
    pbx.reload(_cfg(wrap_up=5))
    with ExitStack() as stack:
        bob = Agent(stack, pbx, AGENTS[1], talk=0.5)
        _action(pbx, "202", "login")
        callers = [_caller(stack, pbx, who) for who in CALLERS[:2]]
        for c in callers:
            c.dial("600")
        for c in callers:
            c.wait_for("CALL_CLOSED", timeout=30)
        assert bob.taken == 2
    log = [(r["state"], r["time"]) for r in reversed(pbx.svc.acd_agent_log(0, "202"))]
    states = [s for s, _t in log]
    assert states[:6] == ["available", "ringing", "on_call", "wrap_up", "available", "ringing"], states
    assert log[4][1] - log[3][1] >= 5  # five seconds of wrap-up before the second call
