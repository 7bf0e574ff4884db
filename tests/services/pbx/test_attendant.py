"""The auto attendant with real baresip phones sending RFC 4733 keys, the time injected (clock.inject):
a two-level attendant in opening hours, after hours and on a French public holiday (what the caller
hears is compared with each menu's espeak-ng greeting, as in test_voicemail.py: 10 ms envelopes, the
other menus' greetings as negative controls, and where the keys lead shows which menu took them);
an extension dialled during the greeting; unknown keys and silence ending at the fallback; dial by
name by surname letters (two matches: 2 skips to the next); night service by feature code through the
configuration change path (a stand-in for the root applies the PBX's request with its real handler).
"""
from __future__ import annotations

import datetime
import threading
import time
import zoneinfo
from contextlib import ExitStack

import pytest

from appliance import schema
from services.pbx import changes
from services.pbx.attendant import clock
from services.pbx.attendant.greetings import Greetings
from services.pbx.changes import KINDS
from services.pbx.prompts import PromptLibrary
from services.pbx.prompts.audio import duration
from services.pbx.voicemail.pin import hash_pin

from . import test_channel as ch
from .baresip import Baresip, have_baresip
from .conftest import BOB, CAROL, seed_prompts
from .pbxrunner import PbxRunner, config, user
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
PIN = "4321"
ALICE = user("alice", "201", "alicesecret1", "Alice Martin", role="admin", voicemail_pin_hash=hash_pin(PIN))
EVE = user("eve", "205", "evesecret123", "Eve Dupont")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
TUESDAY_10 = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
TUESDAY_20 = datetime.datetime(2026, 12, 1, 20, 0, tzinfo=PARIS)
CHRISTMAS_10 = datetime.datetime(2026, 12, 25, 10, 0, tzinfo=PARIS)  # a Friday: open hours, but a holiday
TEXTS = {"day": "Welcome to Acme. For sales, press one.",
         "sales": "Sales department. For Bob, press one. To go back, press nine.",
         "closed": "We are closed for the night. For the emergency line, press one.",
         "holiday": "Happy holidays. Our offices are closed today. Press one for the duty manager.",
         "one-night": "Good evening. Everybody has gone home, but press one and we will try our night porter."}
HOURS = [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "18:00"}]


def attendant_doc(**over) -> dict:
    doc = {"name": "main", "profile": "office", "timeout": 2, "attempts": 2, "fallback": "203",
           "entry": {"closed": "closed", "break": "closed", "holiday": "holiday"},
           "menus": [
               {"name": "day", "greeting_text": TEXTS["day"], "number": "11", "options": [
                   {"key": "1", "action": "menu", "target": "sales"},
                   {"key": "2", "action": "extension", "target": "203"},
                   {"key": "5", "action": "dial_by_name"}, {"key": "#", "action": "hangup"}]},
               {"name": "sales", "greeting_text": TEXTS["sales"], "options": [
                   {"key": "1", "action": "extension", "target": "202"},
                   {"key": "9", "action": "menu", "target": "day"}]},
               {"name": "closed", "greeting_text": TEXTS["closed"], "options": [
                   {"key": "1", "action": "extension", "target": "202"}]},
               {"name": "holiday", "greeting_text": TEXTS["holiday"], "options": [
                   {"key": "1", "action": "extension", "target": "203"}]}]}
    return doc | over


ONE_MENU = {"name": "one", "profile": "office", "timeout": 2, "attempts": 2, "menus": [
    {"name": "only", "greeting_text": TEXTS["day"], "state_texts": {"closed": TEXTS["one-night"]},
     "options": [{"key": "1", "action": "extension", "target": "202"}]}]}  # one menu, its own greeting at night


def cfg(night: bool = False):
    profile = {"name": "office", "country": "FR", "night_service": night,
               "hours": {day: HOURS for day in ("mon", "tue", "wed", "thu", "fri")}}
    return config([ALICE, BOB, CAROL, EVE], digest_algorithms=["MD5"], codecs=["PCMU"],
                  application_numbers={"800": "attendant:main", "801": "attendant:one"}, time_profiles=[profile],
                  attendants=[attendant_doc(), ONE_MENU],
                  extensions={"201": {"assistant": {"choices": [{"kind": "voicemail"}]}}})


@pytest.fixture(scope="module")
def attpbx(tmp_path_factory, prompt_set):
    data = tmp_path_factory.mktemp("pbx")
    seed_prompts(prompt_set, data)
    with PbxRunner(data, cfg()) as runner:
        PromptLibrary(data, "en").ensure()
        store = Greetings(data)
        runner.greetings = {name: store.spoken(text, "en") for name, text in TEXTS.items()}
        yield runner


@pytest.fixture
def at(attpbx):
    def set_time(when: datetime.datetime) -> None:
        clock.inject(lambda: when)
    attpbx.reload(cfg())
    yield set_time
    clock.inject(None)


def _ua(stack, pbx, who: dict, **kw) -> Baresip:
    ua = stack.enter_context(Baresip(who["login"], user=who["extension"], password=who["sip_secret"],
                                     registrar=pbx.registrar, **kw))
    ua.register()
    return ua


def _caller(stack, pbx, tmp_path) -> ch.AudioBaresip:
    quiet = ch.write_wav(tmp_path / "quiet.wav", [0] * 8000 * 60)
    ua = stack.enter_context(ch.AudioBaresip("alice", quiet, user="201", password=ALICE["sip_secret"],
                                             registrar=pbx.registrar, codecs=("pcmu",)))
    ua.register()
    return ua


def _after_greeting(pbx, menu: str, extra: float = 0.6) -> None:
    time.sleep(duration(pbx.greetings[menu]) + extra)


def _heard_greetings(pbx, heard_wav, expected: list[str]) -> None:
    """Each expected menu greeting is in what the caller heard; the others are not."""
    heard = ch.envelope(ch.read_wav(heard_wav)[0])
    for name, path in pbx.greetings.items():
        ref = ch.envelope(ch.read_wav(path)[0])
        score, _ = ch.best_correlation(ref, heard, 3000)
        if name in expected:
            assert score > ch.SAME, f"the {name} greeting was not heard ({score:.3f})"
        else:
            assert score < ch.OTHER, f"the {name} greeting matches what was heard ({score:.3f})"


def _answered_by(ua: Baresip, others: list[Baresip], timeout: float = 20) -> None:
    ua.wait_for("CALL_ESTABLISHED", timeout=timeout)
    assert all(o.call_state() is None for o in others), "another phone rang"


def test_two_levels_in_opening_hours(attpbx, at, tmp_path):
    at(TUESDAY_10)
    with ExitStack() as stack:
        bob = _ua(stack, attpbx, BOB, auto_answer=True)
        carol = _ua(stack, attpbx, CAROL, auto_answer=True)
        alice = _caller(stack, attpbx, tmp_path)
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        _after_greeting(attpbx, "day")
        alice.send_dtmf("1")      # day -> sales
        _after_greeting(attpbx, "sales", 2.2)  # DIGIT_GAP passes, the sales greeting plays
        alice.send_dtmf("9")      # back to day
        _after_greeting(attpbx, "day", 2.2)
        alice.send_dtmf("1")
        time.sleep(2.0)
        alice.send_dtmf("1")      # sales -> bob
        _answered_by(bob, [carol])
        wait(lambda: [c["devices"] for c in attpbx.svc.active_calls()] == [["201", "202"]],
             what="alice and bob in one call, the attendant gone")
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        alice.wait_for("CALL_CLOSED")
        _heard_greetings(attpbx, alice.heard(), ["day", "sales"])


@pytest.mark.parametrize("when, menu, answerer", [(TUESDAY_20, "closed", BOB), (CHRISTMAS_10, "holiday", CAROL)],
                         ids=["after-hours", "public-holiday"])
def test_closed_and_holiday_menus(attpbx, at, tmp_path, when, menu, answerer):
    """After hours and on Christmas Day (a Friday, in opening hours) the caller hears that state's menu,
    and its key 1 rings a phone (in the day menu 1 leads to the sales menu, not to a phone)."""
    at(when)
    with ExitStack() as stack:
        phones = {who["login"]: _ua(stack, attpbx, who, auto_answer=True) for who in (BOB, CAROL)}
        alice = _caller(stack, attpbx, tmp_path)
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        _after_greeting(attpbx, menu)
        alice.send_dtmf("1")
        _answered_by(phones.pop(answerer["login"]), list(phones.values()))
        alice.hangup()
        alice.wait_for("CALL_CLOSED")
        _heard_greetings(attpbx, alice.heard(), [menu])


def test_one_menu_with_a_greeting_per_state(attpbx, at, tmp_path):
    """After hours the single menu plays its "closed" greeting (not its day one), and its keys stay."""
    at(TUESDAY_20)
    with ExitStack() as stack:
        bob = _ua(stack, attpbx, BOB, auto_answer=True)
        alice = _caller(stack, attpbx, tmp_path)
        alice.dial("801")
        alice.wait_for("CALL_ESTABLISHED")
        _after_greeting(attpbx, "one-night")
        alice.send_dtmf("1")
        _answered_by(bob, [])
        alice.hangup()
        alice.wait_for("CALL_CLOSED")
        _heard_greetings(attpbx, alice.heard(), ["one-night"])


def test_an_extension_dialled_during_the_greeting(attpbx, at):
    at(TUESDAY_10)
    with ExitStack() as stack:
        bob = _ua(stack, attpbx, BOB, auto_answer=True)
        carol = _ua(stack, attpbx, CAROL, auto_answer=True)
        alice = _ua(stack, attpbx, ALICE)
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(0.8)
        alice.send_dtmf("202")    # key 2 alone is carol: the digits that follow make it bob's number
        _answered_by(bob, [carol])
        alice.hangup()


@pytest.mark.parametrize("keys", [["7", "7"], [], ["299", "299"]], ids=["unknown-keys", "timeouts", "unknown-numbers"])
def test_bad_input_ends_at_the_fallback(attpbx, at, keys):
    at(TUESDAY_10)
    with ExitStack() as stack:
        bob = _ua(stack, attpbx, BOB, auto_answer=True)
        carol = _ua(stack, attpbx, CAROL, auto_answer=True)
        alice = _ua(stack, attpbx, ALICE)
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        started = time.monotonic()
        for key in keys:
            _after_greeting(attpbx, "day")
            alice.send_dtmf(key)
        # two failures (attempts 2): the fallback 203, within two greetings, waits and prompts
        _answered_by(carol, [bob], timeout=40)
        assert time.monotonic() - started < 40
        alice.hangup()


def test_bad_input_without_fallback_hangs_up(attpbx, at):
    at(TUESDAY_10)
    doc = cfg().model_dump(mode="json")
    doc["pbx"]["attendants"][0]["fallback"] = ""
    attpbx.reload(schema.parse(doc))
    with ExitStack() as stack:
        alice = _ua(stack, attpbx, ALICE)
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        alice.wait_for("CALL_CLOSED", timeout=40)  # "goodbye" and the attendant hangs up
    wait(lambda: attpbx.svc.active_calls() == [], what="the call to end")


def test_dial_by_name_from_the_menu_and_by_feature_code(attpbx, at):
    at(TUESDAY_10)
    with ExitStack() as stack:
        bob = _ua(stack, attpbx, BOB, auto_answer=True)
        eve = _ua(stack, attpbx, EVE, auto_answer=True)
        alice = _ua(stack, attpbx, ALICE)
        # from the attendant: 5, then D-U-R-A (3872) for Durand (DUPO is 3876): one match, 1 connects
        alice.dial("800")
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(0.8)
        alice.send_dtmf("5")
        time.sleep(3.0)
        alice.send_dtmf("3872#")
        time.sleep(3.0)          # "Bob Durand", then "press 1..."
        alice.send_dtmf("1")
        _answered_by(bob, [eve])
        alice.hangup()
        bob.wait_for("CALL_CLOSED")
        # *34: D-U (38) matches Dupont and Durand, in that order: 2 skips Eve Dupont, 1 takes Bob Durand
        alice.dial("*34")
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        alice.send_dtmf("38#")
        time.sleep(3.0)
        alice.send_dtmf("2")
        time.sleep(3.0)
        alice.send_dtmf("1")
        _answered_by(bob, [eve])
        alice.hangup()


class RootStandIn:
    """What the appliance's root does with the PBX's configuration requests (appliance/changerequests.py),
    for a PBX run alone: the real handler on the document, then the PBX's reload, then the answer."""

    def __init__(self, pbx) -> None:
        self.pbx = pbx
        self.bus = pbx.svc.core.events.bus
        self.off = self.bus.subscribe("config.request.pbx", self.request)
        self.summaries: list[str] = []

    def request(self, event) -> None:
        threading.Thread(target=self.apply, args=(event.key, dict(event.data)), daemon=True).start()

    def apply(self, key: str, request: dict) -> None:
        doc = self.pbx.cfg.model_dump(mode="json")
        try:
            self.summaries.append(KINDS[request["kind"]](doc, request["data"]))
            self.pbx.reload(schema.parse(doc))
            error = None
        except ValueError as exc:
            error = str(exc)
        self.pbx.loop.call_soon_threadsafe(self.bus.publish, "config.result.pbx", key,
                                           {"error": error, "revision": None})


def test_night_service_by_feature_code(attpbx, at):
    at(TUESDAY_10)
    root = RootStandIn(attpbx)
    try:
        with ExitStack() as stack:
            bob = _ua(stack, attpbx, BOB, auto_answer=True)
            alice = _ua(stack, attpbx, ALICE)
            alice.dial("*36")
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(rx=25)  # "enter your PIN" playing: the PIN is typed during it (type-ahead)
            alice.send_dtmf(PIN + "#")
            alice.wait_for("CALL_CLOSED", timeout=20)  # "night service is on, goodbye"
            assert root.summaries == ["night service on by phone (201)"]
            assert attpbx.cfg.pbx.time_profiles[0].night_service
            alice.dial("800")  # opening hours, but closed now: the closed menu's 1 is bob
            alice.wait_for("CALL_ESTABLISHED")
            _after_greeting(attpbx, "closed")
            alice.send_dtmf("1")
            _answered_by(bob, [])
            alice.hangup()
    finally:
        root.off()


def test_night_service_refuses_a_non_admin():
    doc = cfg().model_dump(mode="json")
    with pytest.raises(ValueError, match="not an admin"):
        changes.KINDS["night_service"](doc, {"extension": "202", "on": True})
    with pytest.raises(ValueError, match="no enabled user"):
        changes.KINDS["night_service"](doc, {"extension": "299", "on": True})


def test_assistant_switched_on_by_phone(attpbx, at):
    root = RootStandIn(attpbx)
    try:
        with ExitStack() as stack:
            alice = _ua(stack, attpbx, ALICE)
            alice.dial("*37")
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(rx=25)  # "enter your PIN" playing: the PIN is typed during it (type-ahead)
            alice.send_dtmf(PIN + "#")
            time.sleep(1.5)
            alice.send_dtmf("1")   # on / off
            alice.wait_for("CALL_CLOSED", timeout=20)
        assert root.summaries == ["personal assistant of 201 on by phone"]
        assert attpbx.cfg.pbx.extensions["201"].assistant.enabled
    finally:
        root.off()


@pytest.mark.parametrize("keys, state", [("11#", ""), ("11*1#", "open")])
def test_greeting_recorded_by_phone_is_what_callers_hear(attpbx, at, tmp_path, keys, state):
    """alice (an admin) dials *35, her PIN, greeting number 11 (the day menu; with *1 its greeting of
    opening hours only) and speaks after the beep; then a caller in opening hours hears her recording
    instead of the typed text. alice is silent until the box records (its file appears after the beep),
    then her phone switches its source to what she says (baresip's ausrc), as a person speaks when
    they hear the beep: no fixed lead-in of silence to wait through, in the recording or for the caller."""
    at(TUESDAY_10)
    said = ch.speech(tmp_path / "said.wav", "Good morning, you have reached the reception desk of our company.")
    quiet = ch.write_wav(tmp_path / "quiet.wav", [0] * 8000 * 60)
    source = ch.write_wav(tmp_path / "alice.wav", [0] * 4000 + ch.read_wav(said)[0] + [0] * 8000 * 10)
    store = Greetings(attpbx.ctx.data_dir)
    stem = store.menu_stem("main", "day", state)
    try:
        with ExitStack() as stack:
            alice = stack.enter_context(ch.AudioBaresip("alice", quiet, user="201", password=ALICE["sip_secret"],
                                                        registrar=attpbx.registrar, codecs=("pcmu",)))
            alice.register()
            alice.dial("*35")
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(rx=25)  # "enter your PIN" playing: the PIN is typed during it (type-ahead)
            alice.send_dtmf(PIN + "#")
            time.sleep(1.5)
            alice.send_dtmf(keys)  # the greeting number of the day menu; recording after the beep
            wait(lambda: list(stem.parent.glob(".rec-*.wav")), timeout=30, what="the recording's start")
            alice.command("ausrc", f"aufile,{source}")
            wait(lambda: Greetings.recorded(stem), timeout=60, what="the recorded greeting")
            alice.hangup()
        recorded = ch.read_wav(Greetings.recorded(stem))[0]
        score, _ = ch.best_correlation(ch.envelope(ch.read_wav(said)[0]), ch.envelope(recorded), 2500)
        assert score > ch.SAME, f"the stored greeting is not what alice said ({score:.3f})"
        if state:  # that state's greeting only: the menu's own stays as it was; what callers hear is the
            assert Greetings.recorded(store.menu_stem("main", "day")) is None  # menu's (test above)
            return
        with ExitStack() as stack:
            caller = stack.enter_context(ch.AudioBaresip("carol", tmp_path / "alice.wav", user="203",
                                                         password=CAROL["sip_secret"], registrar=attpbx.registrar,
                                                         codecs=("pcmu",)))
            caller.register()
            caller.dial("800")
            caller.wait_for("CALL_ESTABLISHED")
            time.sleep(duration(Greetings.recorded(stem)) + 1.0)
            caller.hangup()
            caller.wait_for("CALL_CLOSED")
            heard = ch.read_wav(caller.heard())[0]
        score, _ = ch.best_correlation(ch.envelope(recorded), ch.envelope(heard), 1500)
        typed_text = ch.envelope(ch.read_wav(attpbx.greetings["day"])[0])
        typed, _ = ch.best_correlation(typed_text, ch.envelope(heard), 1500)
        assert score > ch.SAME and typed < ch.OTHER, (score, typed)
    finally:
        Greetings.remove(stem)
