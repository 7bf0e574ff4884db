"""What a phone changes and does from the keypad, with real baresip phones and the configuration path the
appliance uses (apply engine + change requests, services/pbx/changes.py): *72/*73 forwarding, *78/*79
do not disturb, the voicemail PIN by phone; and in the owner's menu: the temporary greeting, forwarding
a message to another box with an introduction, calling the caller back, the spoken 90 % warning. Audio
is compared as in test_voicemail.py (10 ms envelopes; SAME/OTHER of test_channel.py)."""
from __future__ import annotations

import datetime
import shutil
import time
from contextlib import ExitStack

import pytest

from appliance.apply import ApplyEngine
from appliance.bus import appliance_bus
from appliance.changerequests import ChangeRequests
from appliance.store import ConfigStore
from appliance.users import verify_password
from services.pbx.prompts import PromptLibrary, catalogue
from services.pbx.voicemail import for_core
from services.pbx.voicemail.pin import hash_pin

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, seed_prompts
from .pbxrunner import PbxRunner, config
from .test_trunks import wait
from .vmutil import put_message

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
PIN = "4321"


class _Live:
    """The engine's view of the running PBX (what the supervisor is on the box)."""

    def __init__(self, runner: PbxRunner) -> None:
        self.runner = runner

    def run(self, coro, timeout: float):
        return self.runner.call(coro, timeout)

    async def reconfigure(self, name: str, cfg) -> None:
        self.runner.cfg = cfg
        await self.runner.svc.reload(cfg)


def _doc(alice_role: str = "staff", **pbx):
    alice = dict(ALICE, voicemail_pin_hash=hash_pin(PIN), role=alice_role)
    return config([alice, BOB, CAROL], digest_algorithms=["MD5"], codecs=["PCMU"], lab_rtp_port_min=23800,
                  lab_rtp_port_max=23999,
                  voicemail={"silence_stop": 2, **pbx.pop("voicemail", {})}, **pbx)


@pytest.fixture(scope="module")
def rig(tmp_path_factory, prompt_set):
    data = tmp_path_factory.mktemp("pbx")
    seed_prompts(prompt_set, data)
    with PbxRunner(data, _doc()) as runner:
        engine = ApplyEngine(runner.ctx, ConfigStore(runner.ctx.db_path), {"pbx": runner.svc})
        engine.apply(runner.cfg, "test", "start")
        engine.live = _Live(runner)
        requests = ChangeRequests(engine, {"pbx": runner.svc}, appliance_bus(runner.ctx))
        PromptLibrary(data, "en").ensure()
        try:
            yield runner, engine
        finally:
            requests.close()


@pytest.fixture
def pbx(rig):
    runner, engine = rig
    engine.apply(_doc(), "test", "reset")
    vm = for_core(runner.svc.core)
    for ext in ("201", "202", "203"):
        for path in runner.sync(vm.box, ext).dir.rglob("*"):
            if path.is_file():
                path.unlink()
    return runner


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    said = ch.speech(d / "said.wav", "Hello Alice, this is Bob. Please call me back about the budget.")
    other = ch.speech(d / "other.wav", "The weather today is sunny with a light breeze from the west.")
    samples, _ = ch.read_wav(said)
    return {"said": said, "other": other, "quiet": ch.write_wav(d / "quiet.wav", [0] * 8000 * 60),
            "talk": ch.write_wav(d / "talk.wav", (samples + [0] * 4000) * 8)}


def _phone(stack, pbx, who: dict, source) -> ch.AudioBaresip:
    ua = stack.enter_context(ch.AudioBaresip(who["login"], source, user=who["extension"],
                                             password=who["sip_secret"], registrar=pbx.registrar, codecs=("pcmu",)))
    ua.register()
    return ua


def _current(rig):
    return rig[1].store.current()


def _box(pbx, ext: str):
    return pbx.sync(for_core(pbx.svc.core).box, ext)


def _feature(stack, pbx, who: dict, number: str, audio) -> None:
    phone = _phone(stack, pbx, who, audio["quiet"])
    phone.dial(number)
    phone.wait_for("CALL_ESTABLISHED", timeout=15)
    phone.wait_for("CALL_CLOSED", timeout=30)  # "... is on. Goodbye."


# -- feature codes --------------------------------------------------------------------------------------
def test_star72_with_a_number_forwards_all_calls_and_star73_cancels(rig, pbx, audio):
    with ExitStack() as stack:
        _feature(stack, pbx, ALICE, "*720612345678", audio)
        rev = _current(rig)
        assert rev.config.pbx.extensions["201"].forward_always == "0612345678"
        assert (rev.author, rev.summary) == ("pbx:201", "forwarding of 201 set by phone to 0612345678")
        _feature(stack, pbx, ALICE, "*72203", audio)  # to carol's extension: the next call shows it works
        assert _current(rig).config.pbx.extensions["201"].forward_always == "203"
        alice = _phone(stack, pbx, ALICE, audio["quiet"])
        carol = _phone(stack, pbx, CAROL, audio["quiet"])
        bob = _phone(stack, pbx, BOB, audio["quiet"])
        bob.dial("201")
        carol.answer(timeout=15)
        bob.wait_for("CALL_ESTABLISHED", timeout=10)
        assert not any(e.get("type") == "CALL_INCOMING" for e in alice.events), "alice's phone rang"
        bob.hangup()
        carol.wait_for("CALL_CLOSED")
        _feature(stack, pbx, ALICE, "*73", audio)
        assert _current(rig).config.pbx.extensions["201"].forward_always is None
        bob.dial("201")
        alice.wait_for("CALL_INCOMING", timeout=15)
        bob.hangup()


def test_star72_refuses_forwarding_to_itself_and_says_so(rig, pbx, audio):
    before = _current(rig).id
    with ExitStack() as stack:
        _feature(stack, pbx, ALICE, "*72201", audio)
    assert _current(rig).id == before and _current(rig).config.pbx.extensions.get("201") is None


def test_star78_and_star79_turn_do_not_disturb_on_and_off(rig, pbx, audio):
    with ExitStack() as stack:
        _feature(stack, pbx, ALICE, "*78", audio)
        rev = _current(rig)
        assert rev.config.pbx.extensions["201"].dnd and rev.author == "pbx:201"
        alice = _phone(stack, pbx, ALICE, audio["quiet"])
        bob = _phone(stack, pbx, BOB, audio["quiet"])
        bob.dial("201")  # straight to the box (busy greeting): the recording starts, alice never rings
        box = _box(pbx, "201")
        wait(lambda: list(box.dir.glob(".rec-*.json")), timeout=30, what="the voicemail recording")
        assert not any(e.get("type") == "CALL_INCOMING" for e in alice.events)
        bob.hangup()
        _feature(stack, pbx, ALICE, "*79", audio)
        assert not _current(rig).config.pbx.extensions["201"].dnd
        bob.dial("201")
        alice.wait_for("CALL_INCOMING", timeout=15)
        bob.hangup()


# -- the owner's menu -----------------------------------------------------------------------------------
def _login(stack, pbx, source, keys_after: list[tuple[float, str]], code: str = "*97"):
    """alice dials *97 (or `code`) and her PIN, then sends each key after its pause; returns her phone."""
    alice = _phone(stack, pbx, ALICE, source)
    alice.dial(code)
    alice.wait_for("CALL_ESTABLISHED")
    time.sleep(1.0)
    alice.send_dtmf(PIN + "#")
    for pause, keys in keys_after:
        time.sleep(pause)
        alice.send_dtmf(keys)
    return alice


def test_pin_changed_by_phone(rig, pbx, audio):
    with ExitStack() as stack:
        alice = _login(stack, pbx, audio["quiet"], [(2.0, "0"), (1.0, "6"), (1.5, "201#")])  # the extension: no
        time.sleep(6.0)
        assert verify_password(_current(rig).config.user("alice").voicemail_pin_hash, PIN)
        alice.send_dtmf("6")
        time.sleep(1.5)
        alice.send_dtmf("86420#")
        time.sleep(1.5)
        alice.send_dtmf("86420#")
        wait(lambda: _current(rig).summary == "voicemail PIN of 201 changed by phone", timeout=30,
             what="the PIN revision")
        alice.hangup()
    rev = _current(rig)
    hashed = rev.config.user("alice").voicemail_pin_hash
    assert rev.author == "pbx:201" and hashed.startswith("$argon2id$") and "86420" not in str(rev.document)
    assert verify_password(hashed, "86420") and not verify_password(hashed, PIN)


def _record_temporary(stack, pbx, box, audio):
    """alice records a temporary greeting from her menu (0, 4, four seconds of speech, #)."""
    alice = _login(stack, pbx, audio["talk"], [(2.0, "0"), (1.0, "4")])
    wait(lambda: list(box.dir.glob(".greet-*.wav")), timeout=40, what="the temporary greeting recording")
    time.sleep(4.0)
    alice.send_dtmf("#")
    wait(lambda: box.greeting("temporary"), timeout=10, what="the temporary greeting saved")
    return alice


def _heard_by_bob(pbx, box, audio) -> list[int]:
    """What bob hears calling 201 until the recording starts (the greeting and the beep)."""
    with ExitStack() as stack:
        earlier = set(box.dir.glob(".rec-*.json"))  # an earlier call's, until its deposit is done
        bob = _phone(stack, pbx, BOB, audio["quiet"])
        bob.dial("201")
        wait(lambda: set(box.dir.glob(".rec-*.json")) - earlier, timeout=30, what="the recording to start")
        time.sleep(1.0)
        bob.hangup()
        bob.wait_for("CALL_CLOSED")
        return ch.read_wav(bob.heard())[0]


def test_a_temporary_greeting_overrides_the_others_until_removed(rig, pbx, audio):
    box = _box(pbx, "201")
    shutil.copy(audio["other"], box.dir / "greet-unavailable.wav")
    with ExitStack() as stack:
        alice = _record_temporary(stack, pbx, box, audio)
        alice.hangup()
    temporary, _ = ch.read_wav(box.greeting("temporary"))
    heard = _heard_by_bob(pbx, box, audio)
    unavailable, _ = ch.read_wav(audio["other"])
    same, _ = ch.best_correlation(ch.envelope(temporary), ch.envelope(heard), 400)
    assert same > ch.SAME, f"bob did not hear the temporary greeting ({same:.3f})"
    with ExitStack() as stack:
        alice = _login(stack, pbx, audio["quiet"], [(2.0, "0"), (1.0, "5")])
        wait(lambda: box.greeting("temporary") is None, timeout=30, what="the temporary greeting removed")
        alice.hangup()
    heard = _heard_by_bob(pbx, box, audio)
    same, _ = ch.best_correlation(ch.envelope(unavailable), ch.envelope(heard), 400)
    assert same > ch.SAME, f"bob did not hear the unavailable greeting again ({same:.3f})"


def test_forwarding_a_message_with_an_introduction(rig, pbx, audio):
    msg = put_message(pbx, "201", audio["said"])
    carol = _box(pbx, "203")
    with ExitStack() as stack:
        alice = _login(stack, pbx, audio["talk"], [])
        wait(lambda: _box(pbx, "201").messages("Old"), timeout=40, what="the message playing (INBOX -> Old)")
        alice.send_dtmf("8")
        time.sleep(1.0)
        alice.send_dtmf("203#")
        wait(lambda: list(_box(pbx, "201").dir.glob(".intro-*.wav")), timeout=30, what="the introduction")
        time.sleep(3.0)
        alice.send_dtmf("#")
        wait(lambda: carol.messages("INBOX"), timeout=15, what="the message in carol's box")
        alice.hangup()
    [fwd] = carol.messages("INBOX")
    assert (fwd.envelope["caller"], fwd.envelope["forwarded_by"]) == ("202", "201")
    assert fwd.seconds > msg.seconds + 2.0, (fwd.seconds, msg.seconds)
    stored, _ = ch.read_wav(fwd.wav)
    original, _ = ch.read_wav(msg.wav if msg.wav.exists() else audio["said"])
    tail = stored[-len(original):]
    same, _ = ch.best_correlation(ch.envelope(original), ch.envelope(tail), 50)
    assert same > 0.99, f"the forwarded message does not end with the original ({same:.3f})"
    assert _box(pbx, "201").messages("Old"), "forwarding keeps alice's own copy"


def test_calling_the_caller_back_from_the_menu(rig, pbx, audio):
    put_message(pbx, "201", audio["said"])
    with ExitStack() as stack:
        bob = _phone(stack, pbx, BOB, audio["quiet"])
        alice = _login(stack, pbx, audio["quiet"], [])
        wait(lambda: _box(pbx, "201").messages("Old"), timeout=40, what="the message playing")
        alice.send_dtmf("2")
        incoming = bob.answer(timeout=20)
        bob.wait_for("CALL_ESTABLISHED")
        time.sleep(1.0)
        assert alice.call_state() != "CALL_CLOSED", "alice should now talk to bob"
        assert "201" in str(incoming) or "Alice" in str(incoming), incoming
        alice.hangup()
        bob.wait_for("CALL_CLOSED", timeout=10)


def test_the_owner_hears_that_the_box_is_almost_full(rig, pbx, audio):
    rig[1].apply(_doc(voicemail={"limits": {"max_messages": 10}}), "test", "small box")
    for _ in range(9):
        put_message(pbx, "201", audio["said"])
    with ExitStack() as stack:
        alice = _login(stack, pbx, audio["quiet"], [])
        time.sleep(9.0)
        alice.hangup()
        heard, _ = ch.read_wav(alice.heard())
    lib = PromptLibrary(pbx.ctx.data_dir)
    warning, _ = ch.read_wav(lib.prompt_path("vm-almost-full", "en"))
    other, _ = ch.read_wav(lib.prompt_path("vm-mailbox-full", "en"))
    same, _ = ch.best_correlation(ch.envelope(warning), ch.envelope(heard), 1200)
    different, _ = ch.best_correlation(ch.envelope(other), ch.envelope(heard), 1200)
    assert same > ch.SAME and different < ch.OTHER, (same, different)


def test_calling_back_follows_the_owners_permission_class(rig, pbx, audio):
    """A caller from outside, called back by alice: refused by the dial plan (403) when her class is
    internal; tried (no trunk here, so another failure) when it is national. She hears why either way."""
    box = _box(pbx, "201")
    seen: set[int] = set()
    for permission, refused in (("internal", True), ("national", False)):
        rig[1].apply(_doc(permissions={"alice": permission}), "test", f"alice {permission}")
        for path in box.dir.rglob("*.json"):
            path.unlink()
        put_message(pbx, "201", audio["said"], caller="0612345678", name="Outside")
        with ExitStack() as stack:
            alice = _login(stack, pbx, audio["quiet"], [])
            wait(lambda: box.messages("Old"), timeout=40, what="the message playing")
            alice.send_dtmf("2")
            row = wait(lambda: next((r for r in pbx.svc.cdr_query(limit=50) if r["dialled"] == "0612345678"
                                     and r["id"] not in seen), None), timeout=20, what="the call back")
            seen.add(row["id"])
            alice.hangup()
        assert (row["status"] == 403) is refused, (permission, row)
        assert alice.call_state() in (None, "CALL_CLOSED")


def test_a_temporary_greeting_ends_after_its_end_date(rig, pbx, audio, monkeypatch):
    """Recorded by phone with today as its last day (8 digits, the box's time zone): bob hears it today,
    and the unavailable greeting again once the day has passed (the box's clock moved on a day)."""
    box = _box(pbx, "201")
    shutil.copy(audio["other"], box.dir / "greet-unavailable.wav")
    vm = for_core(pbx.svc.core)
    today = vm.today()
    with ExitStack() as stack:
        alice = _record_temporary(stack, pbx, box, audio)
        time.sleep(3.0)  # "your greeting has been saved", then the end date is asked
        alice.send_dtmf(today.strftime("%Y%m%d") + "#")
        wait(lambda: _current(rig).config.pbx.extensions["201"].voicemail_temporary_until == today, timeout=30,
             what="the end date applied")
        alice.hangup()
    assert _current(rig).author == "pbx:201"
    temporary, _ = ch.read_wav(box.greeting("temporary"))
    unavailable, _ = ch.read_wav(audio["other"])
    same, _ = ch.best_correlation(ch.envelope(temporary), ch.envelope(_heard_by_bob(pbx, box, audio)), 400)
    assert same > ch.SAME, f"bob did not hear the temporary greeting on its last day ({same:.3f})"
    monkeypatch.setattr(vm, "today", lambda: today + datetime.timedelta(days=1))
    same, _ = ch.best_correlation(ch.envelope(unavailable), ch.envelope(_heard_by_bob(pbx, box, audio)), 400)
    assert same > ch.SAME, f"bob did not hear the unavailable greeting after the end date ({same:.3f})"
    assert box.greeting("temporary") is not None  # kept: the owner may set another date



def test_an_admin_records_a_prompt_by_phone(rig, pbx, audio):
    """*39, the admin's PIN, a prompt's number (catalogue.numbered), then speech after the beep and #: the
    box says that prompt with the recording from then on (it correlates with what the phone played)."""
    runner, engine = rig
    engine.apply(_doc(alice_role="admin"), "test", "alice is an admin")
    vm = for_core(runner.svc.core)
    number = catalogue.numbered().index("goodbye") + 1
    with ExitStack() as stack:
        alice = _login(stack, pbx, audio["talk"], [(2.5, f"{number}#")], code="*39")
        wait(lambda: list(vm.root.glob(".prompt-*.wav")), timeout=40, what="the prompt recording")
        time.sleep(4.0)
        alice.send_dtmf("#")
        wait(lambda: vm.prompts.is_custom("goodbye", "en"), timeout=20, what="the prompt stored")
        alice.hangup()
    stored = vm.prompts.prompt_path("goodbye", "en")
    assert stored.parent == vm.prompts.custom_root / "en"
    got, _ = ch.read_wav(stored)
    assert 2.0 <= len(got) / 8000 <= 6.0
    same, _ = ch.best_correlation(ch.envelope(got), ch.envelope(ch.read_wav(audio["talk"])[0]), 600)
    other, _ = ch.best_correlation(ch.envelope(got), ch.envelope(ch.read_wav(audio["other"])[0]), 200)
    assert same > ch.SAME, f"the stored prompt does not match what the phone said ({same:.3f})"
    assert other < ch.OTHER, f"another sentence matches as well ({other:.3f})"
    vm.prompts.restore("goodbye", "en")


def test_a_user_may_not_record_prompts(rig, pbx, audio):
    with ExitStack() as stack:
        _feature(stack, pbx, BOB, "*39", audio)  # "you are not allowed", then the call ends
    assert not for_core(pbx.svc.core).prompts.is_custom("goodbye", "en")
