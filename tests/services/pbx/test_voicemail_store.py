"""The voicemail store on its own: crash recovery, limits, counts on the bus, bad files."""
from __future__ import annotations

import json

import pytest

from appliance.bus import Bus
from services.pbx.config import VoicemailLimits
from services.pbx.voicemail.pin import hash_pin
from services.pbx.voicemail.store import TOPIC, BoxFull, Mailbox

from .test_channel import write_wav


def _box(tmp_path, bus=None, **limits) -> Mailbox:
    return Mailbox(tmp_path, "201", VoicemailLimits(**limits), bus)


def _leave(box: Mailbox, seconds: float) -> None:
    pending = box.begin("202", "Bob")
    write_wav(pending.wav, [1000] * int(seconds * 8000))
    assert box.deposit(pending) is not None


def test_a_recording_cut_by_a_crash_is_recovered_with_its_envelope(tmp_path):
    box = _box(tmp_path)
    pending = box.begin("202", "Bob Durand")
    write_wav(pending.wav, [1000] * 8000 * 3)  # what the engine had written when the PBX was killed
    bus = Bus()
    again = _box(tmp_path, bus)  # the PBX started again
    assert len(again.recover()) == 1
    [msg] = again.messages("INBOX")
    assert (msg.envelope["caller"], msg.envelope["caller_name"], msg.seconds) == ("202", "Bob Durand", 3.0)
    assert not list(again.dir.glob(".rec-*"))
    assert bus.retained(TOPIC)["201"] == {"extension": "201", "new": 1, "old": 0}


def test_recovery_drops_what_cannot_be_a_message(tmp_path):
    box = _box(tmp_path)
    short = box.begin("202", "Bob")
    write_wav(short.wav, [1000] * 4000)  # half a second
    box.begin("202", "Bob")  # an envelope whose recording never started
    (box.dir / ".rec-0000000000-deadbeef.wav").write_bytes(b"RIFF")  # a WAV without an envelope
    assert box.recover() == []
    assert box.messages("INBOX") == [] and not list(box.dir.glob(".rec-*"))


def test_limits_messages_and_minutes(tmp_path):
    box = _box(tmp_path, max_messages=2, max_message_seconds=60)
    assert box.room_seconds() == 60
    _leave(box, 2)
    _leave(box, 2)
    with pytest.raises(BoxFull):
        box.room_seconds()
    box.limits = VoicemailLimits(storage_minutes=20, max_messages=100, max_message_seconds=3600)
    assert box.room_seconds() == pytest.approx(20 * 60 - 4)


def test_counts_follow_moves_and_deletes(tmp_path):
    bus = Bus()
    seen = []
    bus.subscribe(TOPIC, lambda ev: seen.append(ev.data))
    box = _box(tmp_path, bus)
    _leave(box, 1.5)
    msg = box.move(box.messages("INBOX")[0], "Old")
    box.move(msg, "Saved")
    box.delete(box.messages("Saved")[0])
    assert [(d["new"], d["old"]) for d in seen] == [(1, 0), (0, 1), (0, 1), (0, 0)]


def test_an_unreadable_envelope_hides_one_message_not_the_box(tmp_path):
    box = _box(tmp_path)
    _leave(box, 1.5)
    _leave(box, 1.5)
    first = box.messages("INBOX")[0]
    first.wav.with_suffix(".json").write_text("{not json")
    assert len(box.messages("INBOX")) == 1
    assert json.loads(box.messages("INBOX")[0].wav.with_suffix(".json").read_text())["extension"] == "201"


def test_bad_names_and_pins_are_refused(tmp_path):
    with pytest.raises(ValueError):
        Mailbox(tmp_path, "../etc", VoicemailLimits())
    for pin in ("", "123", "12a4", "1" * 13):
        with pytest.raises(ValueError):
            hash_pin(pin)
    assert hash_pin("0042").startswith("$argon2")


def test_pbx_start_recovers_and_publishes_every_box(tmp_path):
    """After a crash: the PBX starting again finishes the cut recording and publishes the counts."""
    from .conftest import ALICE, BOB
    from .pbxrunner import PbxRunner, config

    data = tmp_path / "box"
    root = data / "state" / "pbx" / "voicemail"
    _leave(Mailbox(root, "202", VoicemailLimits()), 2)
    cut = Mailbox(root, "201", VoicemailLimits()).begin("202", "Bob")
    write_wav(cut.wav, [1000] * 8000 * 2)
    with PbxRunner(data, config([ALICE, BOB])) as runner:
        held = runner.svc.core.events.bus.retained(TOPIC)
    assert held == {"201": {"extension": "201", "new": 1, "old": 0}, "202": {"extension": "202", "new": 1, "old": 0}}


def test_a_temporary_greetings_day_is_the_boxs_day():
    """Voicemail.today is the date in the box's time zone (system.timezone), UTC for an unknown zone; the
    date typed by phone is 8 digits from today to a year ahead."""
    import datetime
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from services.pbx.voicemail import Voicemail
    from services.pbx.voicemail.menu import parse_day

    east, west = (Voicemail.today(SimpleNamespace(timezone=z)) for z in ("Pacific/Kiritimati", "Pacific/Pago_Pago"))
    assert (east - west).days in (1, 2)  # UTC+14 and UTC-11: never the same day
    assert east == datetime.datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert Voicemail.today(SimpleNamespace(timezone="Nowhere/Atlantis")) == datetime.datetime.now(datetime.UTC).date()
    today = datetime.date(2026, 12, 1)
    assert parse_day("20261201", today) == today and parse_day("20271201", today) == datetime.date(2027, 12, 1)
    assert [parse_day(d, today) for d in ("20261130", "20280101", "20260230", "2026121", "2026120a")] == [None] * 5
