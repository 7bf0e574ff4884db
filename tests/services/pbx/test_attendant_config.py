"""Attendant configuration without phones: what validation refuses (loops between attendants, unknown
targets, opening hours that overlap or leave a senseless gap, an unknown country), what it accepts
(DIDs, ring-group overflow and forwarding to an attendant), the time profile states, the iCalendar
import and the keypad matching of dial by name."""
from __future__ import annotations

import datetime
import os

import pytest
from pydantic import ValidationError

from appliance import schema
from services.pbx import SERVICE
from services.pbx.attendant import ics, timeprofile
from services.pbx.attendant.byname import keypad, matches
from services.pbx.config import TimeProfile

from .conftest import ALICE, BOB
from .pbxrunner import user

MENU = {"name": "main", "options": [{"key": "1", "action": "extension", "target": "201"}]}


def parse(**pbx):
    return schema.parse({"users": [ALICE, BOB], "pbx": pbx})


def errors(**pbx) -> dict[str, str]:
    try:
        cfg = parse(**pbx)
    except ValidationError as exc:
        return {".".join(map(str, e["loc"])): e["msg"] for e in exc.errors()}
    return {e.path: e.message for e in SERVICE.validate(None, cfg)}


def test_an_attendant_is_a_destination_for_dids_overflow_and_forwarding():
    cfg = parse(attendants=[{"name": "main", "menus": [MENU]}], dids=[{"number": "0140000000",
                "destination": "attendant:main"}], groups=[{"number": "600", "overflow": "attendant:main"}],
                extensions={"201": {"forward_no_answer": "attendant:main"}})
    assert errors(**cfg.pbx.model_dump(mode="json")) == {}


def test_loops_between_attendants_are_refused():
    a = {"name": "a", "menus": [{"name": "m", "options": [{"key": "1", "action": "attendant", "target": "b"}]}]}
    b = {"name": "b", "menus": [MENU], "fallback": "attendant:c"}
    c = {"name": "c", "menus": [MENU], "fallback": "attendant:a"}
    found = errors(attendants=[a, b, c])
    assert set(found) == {"pbx.attendants.0", "pbx.attendants.1", "pbx.attendants.2"}, found
    assert "loop" in found["pbx.attendants.0"]
    assert errors(attendants=[a, dict(b, fallback="")]) == {}, "a leads to b, b to nobody: no loop"
    assert errors(attendants=[a, b, dict(c, fallback="attendant:b")]) != {}  # b <-> c
    # menus of one attendant may lead back to each other: the caller chooses, nothing loops by itself
    back = {"name": "a", "menus": [{"name": "m", "options": [{"key": "1", "action": "menu", "target": "n"}]},
                                   {"name": "n", "options": [{"key": "9", "action": "menu", "target": "m"}]}]}
    assert errors(attendants=[back]) == {}


@pytest.mark.parametrize("option, where, words", [
    ({"key": "1", "action": "menu", "target": "nowhere"}, "options.0.target", "no menu"),
    ({"key": "1", "action": "group", "target": "699"}, "options.0.target", "no ring group"),
    ({"key": "1", "action": "attendant", "target": "ghost"}, "options.0.target", "no attendant"),
    ({"key": "1", "action": "extension", "target": "299"}, "options.0.target", "not an extension"),
    ({"key": "1", "action": "voicemail", "target": "299"}, "options.0.target", "not an extension"),
    ({"key": "1", "action": "external", "target": ""}, "options.0", "valid target"),
    ({"key": "A", "action": "hangup"}, "options.0.key", "pattern"),
])
def test_unknown_targets_are_field_errors(option, where, words):
    found = errors(attendants=[{"name": "main", "menus": [{"name": "m", "options": [option]}]}])
    [(field, message)] = found.items()
    assert field.startswith("pbx.attendants.0.menus.0.") and field.endswith(where), found
    assert words in message, message


def test_entry_menus_profiles_and_fallbacks_must_exist():
    found = errors(attendants=[{"name": "main", "profile": "office", "entry": {"closed": "night"},
                                "fallback": "attendant:ghost", "menus": [MENU]}])
    assert set(found) == {"pbx.attendants.0.profile", "pbx.attendants.0.entry.closed"}, found
    found = errors(attendants=[{"name": "main", "fallback": "attendant:ghost", "menus": [MENU]}])
    assert found == {"pbx.attendants.0.fallback": "there is no attendant 'ghost'"}


@pytest.mark.parametrize("ranges, words", [
    ([{"start": "12:00", "end": "09:00"}], "ends before it starts"),
    ([{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "18:00"}], "overlaps"),
    ([{"start": "09:00", "end": "12:00"}, {"start": "12:02", "end": "18:00"}], "break of 2 minutes"),
    ([{"start": "9:00", "end": "12:00"}], "pattern"),
])
def test_opening_hours_that_make_no_sense_are_refused(ranges, words):
    found = errors(time_profiles=[{"name": "office", "hours": {"mon": ranges}}])
    [(field, message)] = found.items()
    assert field.startswith("pbx.time_profiles.0.hours"), found
    assert words in message, message


def test_an_unknown_country_is_refused():
    found = errors(time_profiles=[{"name": "office", "country": "XX"}])
    assert found == {"pbx.time_profiles.0.country": "Value error, no public holidays are known for country 'XX'"}


def test_profile_states_through_a_week():
    profile = TimeProfile(name="o", country="FR", hours={"tue": [{"start": "09:00", "end": "12:00"},
                                                                  {"start": "14:00", "end": "18:00"}]},
                          dates=[{"date": "2026-12-08", "name": "Inventory"}])
    at = datetime.datetime.fromisoformat
    assert timeprofile.state(profile, at("2026-12-01T08:59")) == "closed"
    assert timeprofile.state(profile, at("2026-12-01T09:00")) == "open"
    assert timeprofile.state(profile, at("2026-12-01T12:30")) == "break"
    assert timeprofile.state(profile, at("2026-12-01T18:00")) == "closed"
    assert timeprofile.state(profile, at("2026-12-02T10:00")) == "closed"  # Wednesday: no hours
    assert timeprofile.state(profile, at("2026-12-08T10:00")) == "holiday"  # the company's date
    assert timeprofile.state(profile, at("2026-05-01T10:00")) == "holiday"  # Fête du Travail (a Friday)
    assert timeprofile.holiday_name(profile, datetime.date(2026, 7, 14)) == "National Day"
    assert timeprofile.state(profile.model_copy(update={"public_holidays": False}), at("2026-12-08T10:00")) \
        == "holiday"
    assert timeprofile.state(profile.model_copy(update={"night_service": True}), at("2026-12-01T10:00")) == "closed"
    assert timeprofile.state(None, at("2026-12-25T03:00")) == "open"


ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20261224\r
DTEND;VALUE=DATE:20261227\r
SUMMARY:Christmas\\, closed\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART:20260814T080000Z\r
SUMMARY:Summer\r
 day\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_ics_import_reads_days_and_ranges():
    assert ics.parse(ICS) == [
        {"date": datetime.date(2026, 12, 24), "end": datetime.date(2026, 12, 26), "name": "Christmas, closed"},
        {"date": datetime.date(2026, 8, 14), "end": None, "name": "Summerday"}]


@pytest.mark.parametrize("data, words", [
    (b"hello", "not an iCalendar"),
    (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:2026\nEND:VEVENT\n", "line 3"),
    (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260231\nEND:VEVENT\n", "not a real date"),
    (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\n", "without DTSTART"),
    (b"BEGIN:VCALENDAR\n" + b"BEGIN:VEVENT\nDTSTART:20260101\nEND:VEVENT\n" * 501, "more than 500"),
    (b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101\nDTEND:20280101\nEND:VEVENT\n", "longer than a year"),
    (b"\xff\xfe", "not UTF-8"),
    (b"BEGIN:VCALENDAR\n" + b"X" * ics.MAX_BYTES, "larger than"),
])
def test_ics_import_refuses_bad_files(data, words):
    with pytest.raises(ics.IcsError, match=words):
        ics.parse(data)


def test_keypad_matches_surname_or_first_name():
    people = [schema.User(**u) for u in (ALICE, BOB, user("eve", "205", "evesecret123", "Éve Dupont"),
                                         user("zed", "206", "zedsecret123", "Zed Durand", enabled=False))]
    assert keypad("Éve") == "383" and keypad("Durand") == "387263"
    assert [u.login for u in matches(people, "387")] == ["eve", "bob"]  # Dupont before Durand
    assert [u.login for u in matches(people, "3872")] == ["bob"]
    assert [u.login for u in matches(people, "383")] == ["eve"]  # her first name, accent ignored
    assert matches(people, "9") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the web admin's case)")
def test_what_the_web_admin_writes_becomes_the_pbx_users(tmp_path):
    """The web admin runs as root, the PBX as its own user (appliance/serviceusers.py): a text spoken for
    the listen button and an uploaded greeting are handed to the owner of the PBX's folders at once."""
    from services.pbx.attendant.greetings import Greetings
    from services.pbx.prompts import audio
    store = Greetings(tmp_path)
    for folder in (tmp_path / "state" / "pbx", tmp_path / "cache" / "pbx"):
        folder.mkdir(parents=True)
        os.chown(folder, 54321, 54322)
    spoken = store.spoken("Welcome to Acme.", "en")
    stem = store.menu_stem("main", "day")
    stem.parent.mkdir(parents=True)
    upload = tmp_path / "up.wav"
    audio.run_sox("-n", "-r", "8000", "-c", "1", upload, "synth", "2", "sine", "440")
    store.store_upload(stem, upload)
    for path in (spoken, spoken.parent, Greetings.recorded(stem), stem.parent, stem.parent.parent):
        assert (path.stat().st_uid, path.stat().st_gid) == (54321, 54322), path
