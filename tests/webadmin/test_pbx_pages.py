"""Telephony pages: configuration through the real apply engine, live views and call records of the real PBX."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime
import io
import re
import threading
import time
from zoneinfo import ZoneInfo

import pytest

from services.pbx.cdr import CallRecord, CdrStore
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.webadmin.helpers import ALICE_AND_BOB, page, post

PEOPLE = ALICE_AND_BOB


@pytest.fixture
def pbx_client(admin_client, runtime):
    def mutate(doc):
        doc["users"] += PEOPLE
        doc.setdefault("pbx", {})["lab_sip_port"] = 0
    runtime.engine.update("admin", "test users", mutate)
    return admin_client


def pbx_config(runtime):
    return runtime.config.pbx


def test_navigation_and_empty_pages(pbx_client):
    home = page(pbx_client, "/pbx/")
    for title in ("Extensions", "Ring groups", "Trunks", "Outbound routes", "Live calls", "Call records"):
        assert title in home
    assert 'id="ext-201"' in home and "Alice Martin" in home and "not registered" in home
    for path in ("/pbx/groups/", "/pbx/trunks/", "/pbx/routes/", "/pbx/dids/", "/pbx/dialplan",
                 "/pbx/registrations", "/pbx/calls", "/pbx/cdr"):
        page(pbx_client, path)
    page(pbx_client, "/pbx/nothing/", 404)
    page(pbx_client, "/pbx/nothing/new", 404)
    page(pbx_client, "/pbx/groups/999/edit", 404)


def test_ring_group_create_edit_delete_with_errors(pbx_client, runtime):
    bad = post(pbx_client, "/pbx/groups/new", {"number": "12a", "members": "201", "timeout": "abc"})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert re.search(r'id="e-number"', text) and re.search(r'id="e-timeout"', text)
    assert "not valid: 2 to 6 digits" in text and "enter a whole number" in text
    assert re.search(r'class="active"[^>]*>Ring groups<', text) or 'href="/pbx/groups/" class="active"' in text
    assert pbx_config(runtime).groups == []

    not_ext = post(pbx_client, "/pbx/groups/new", {"number": "600", "members": "201 299"})
    assert not_ext.status_code == 400 and "299 is not an extension" in not_ext.get_data(as_text=True)
    assert 'id="e-members"' in not_ext.get_data(as_text=True)  # by its field (the PBX names the exact path)

    ok = post(pbx_client, "/pbx/groups/new", {"number": "600", "name": "Sales", "strategy": "in_order",
                                              "members": "201, 202", "member_timeout": "10", "timeout": "40"})
    assert ok.status_code == 302
    group = pbx_config(runtime).groups[0]
    assert (group.number, group.strategy, group.members, group.member_timeout, group.timeout) == \
        ("600", "in_order", ["201", "202"], 10, 40)
    listing = page(pbx_client, "/pbx/groups/")
    assert 'id="groups-600"' in listing and "201, 202" in listing

    form = page(pbx_client, "/pbx/groups/600/edit")
    assert 'value="201, 202"' in form
    edited = post(pbx_client, "/pbx/groups/600/edit", {"number": "600", "name": "Sales", "strategy": "round_robin",
                                                       "members": "202", "overflow": "201"},
                  form_path="/pbx/groups/600/edit")
    assert edited.status_code == 302
    group = pbx_config(runtime).groups[0]
    assert group.strategy == "round_robin" and group.members == ["202"] and group.overflow == "201"
    assert group.timeout == 30   # left empty: the default

    deleted = post(pbx_client, "/pbx/groups/600/delete", {"confirm": "1"}, form_path="/pbx/groups/")
    assert deleted.status_code == 302 and pbx_config(runtime).groups == []


def test_trunk_password_never_shown_and_kept(pbx_client, runtime):
    created = post(pbx_client, "/pbx/trunks/new", {
        "name": "carrier1", "host": "192.0.2.50", "port": "5060", "transport": "udp", "username": "acme",
        "auth_password": "TopSecret99", "registration": "on", "max_channels": "4"})
    assert created.status_code == 302
    trunk = pbx_config(runtime).trunks[0]
    assert trunk.auth_password == "TopSecret99" and trunk.registration and trunk.max_channels == 4
    for path in ("/pbx/trunks/", "/pbx/trunks/carrier1/edit"):
        assert "TopSecret99" not in page(pbx_client, path)
    assert "not running" in page(pbx_client, "/pbx/trunks/")

    edited = post(pbx_client, "/pbx/trunks/carrier1/edit", {
        "name": "carrier1", "host": "192.0.2.51", "username": "acme", "auth_password": "", "transport": "tcp"},
        form_path="/pbx/trunks/carrier1/edit")
    assert edited.status_code == 302
    trunk = pbx_config(runtime).trunks[0]
    assert trunk.host == "192.0.2.51" and trunk.auth_password == "TopSecret99" and trunk.transport == "tcp"
    assert trunk.registration is False and trunk.port == 5060

    bad_port = post(pbx_client, "/pbx/trunks/new", {"name": "x", "host": "h", "port": "70000"},
                    form_path="/pbx/trunks/new")
    assert bad_port.status_code == 400 and 'id="e-port"' in bad_port.get_data(as_text=True)

    route = post(pbx_client, "/pbx/routes/new", {"name": "national", "prefix": "0", "trunks": "carrier1"})
    assert route.status_code == 302 and pbx_config(runtime).routes[0].trunks == ["carrier1"]
    unknown = post(pbx_client, "/pbx/routes/new", {"name": "intl", "prefix": "00", "trunks": "nope"},
                   form_path="/pbx/routes/new")
    assert unknown.status_code == 400 and "unknown trunk" in unknown.get_data(as_text=True)

    asked = page(pbx_client, "/pbx/trunks/carrier1/delete")
    assert 'href="/pbx/routes/national/edit"' in asked and "cannot be deleted" in asked
    assert 'name="confirm"' not in asked   # no button for a delete the configuration refuses
    refused = post(pbx_client, "/pbx/trunks/carrier1/delete", {"confirm": "1"}, form_path="/pbx/trunks/")
    assert refused.status_code == 302
    assert [t.name for t in pbx_config(runtime).trunks] == ["carrier1"]
    assert "was not deleted" in page(pbx_client, "/pbx/trunks/")


def test_dids(pbx_client, runtime):
    bad = post(pbx_client, "/pbx/dids/new", {"number": "0142000000", "destination": "999"})
    assert bad.status_code == 400 and "neither an extension nor a group" in bad.get_data(as_text=True)
    ok = post(pbx_client, "/pbx/dids/new", {"number": "0142000000", "destination": "201"}, form_path="/pbx/dids/new")
    assert ok.status_code == 302
    assert [(d.number, d.destination) for d in pbx_config(runtime).dids] == [("0142000000", "201")]
    assert 'id="dids-0142000000"' in page(pbx_client, "/pbx/dids/")


def test_extension_call_handling_and_permission(pbx_client, runtime):
    bad = post(pbx_client, "/pbx/extensions/201", {"forward_busy": "abc", "no_answer_timeout": "2"})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'id="e-forward_busy"' in text and 'id="e-no_answer_timeout"' in text
    itself = post(pbx_client, "/pbx/extensions/201", {"forward_always": "201", "no_answer_timeout": "15"})
    assert itself.status_code == 400 and re.search(r'id="e-forward_always"[^<]*>[^<]*forwards to itself',
                                                   itself.get_data(as_text=True))
    ok = post(pbx_client, "/pbx/extensions/201", {"dnd": "on", "forward_no_answer": "202",
                                                  "no_answer_timeout": "15", "permission": "internal",
                                                  "blf_watchers": "same_groups"})
    assert ok.status_code == 302
    cfg = pbx_config(runtime)
    assert cfg.extensions["201"].dnd and cfg.extensions["201"].forward_no_answer == "202"
    assert cfg.extensions["201"].blf_watchers == "same_groups"
    assert '<option value="same_groups" selected>' in page(pbx_client, "/pbx/extensions/201")
    bad = post(pbx_client, "/pbx/extensions/201", {"blf_watchers": "my friends"})
    assert bad.status_code == 400 and 'id="e-blf_watchers"' in bad.get_data(as_text=True)
    assert cfg.permissions == {"alice": "internal"}
    listing = page(pbx_client, "/pbx/")
    assert "do not disturb" in listing and "no answer (15 s) → 202" in listing
    page(pbx_client, "/pbx/extensions/999", 404)


def test_dial_plan_and_permission_classes(pbx_client, runtime):
    bad = post(pbx_client, "/pbx/dialplan", {"country_code": "+33", "national_prefix": "0",
                                             "international_prefix": "00", "default_permission": "national",
                                             "emergency_numbers": "112 1x"})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'id="e-country_code"' in text and "1x" in text
    ok = post(pbx_client, "/pbx/dialplan", {"country_code": "49", "national_prefix": "0",
                                            "international_prefix": "00", "default_permission": "local",
                                            "local_prefixes": "030, 033", "emergency_numbers": "112 110"})
    assert ok.status_code == 302
    cfg = pbx_config(runtime)
    assert (cfg.country_code, cfg.default_permission, cfg.local_prefixes, cfg.emergency_numbers) == \
        ("49", "local", ["030", "033"], ["112", "110"])
    assert cfg.public_address is None
    plan = {"country_code": "49", "national_prefix": "0", "international_prefix": "00", "default_permission": "local"}
    bad = post(pbx_client, "/pbx/dialplan", {**plan, "public_address": "my.router"})
    assert bad.status_code == 400 and 'id="e-public_address"' in bad.get_data(as_text=True)
    assert post(pbx_client, "/pbx/dialplan", {**plan, "public_address": "203.0.113.7"}).status_code == 302
    assert str(pbx_config(runtime).public_address) == "203.0.113.7"
    assert 'value="203.0.113.7"' in page(pbx_client, "/pbx/dialplan")

    assert post(pbx_client, "/pbx/permissions", {"login": "bob", "permission": "international"},
                form_path="/pbx/dialplan").status_code == 302
    assert pbx_config(runtime).permissions == {"bob": "international"}
    assert 'id="perm-bob"' in page(pbx_client, "/pbx/dialplan")
    post(pbx_client, "/pbx/permissions", {"login": "bob", "permission": "galactic"}, form_path="/pbx/dialplan")
    assert pbx_config(runtime).permissions == {"bob": "international"}
    assert post(pbx_client, "/pbx/permissions/bob/delete", {}, form_path="/pbx/dialplan").status_code == 302
    assert pbx_config(runtime).permissions == {}


def _seed_records(runtime) -> float:
    store = CdrStore(runtime.services["pbx"].cdr_path)
    day = 86400
    base = time.time() - 3 * day
    store.add(CallRecord(call_id="c1", direction="internal", caller="201", caller_name="=HYPERLINK(1)",
                         dialled="202", callee="202", start=base, answer=base + 2, end=base + 62,
                         disposition="answered", status=200))
    store.add(CallRecord(call_id="c2", direction="internal", caller="202", dialled="201", start=base + day,
                         end=base + day + 20, disposition="missed", status=487))
    store.add(CallRecord(call_id="c3", direction="outbound", caller="201", dialled="0612345678",
                         start=base + 2 * day, end=base + 2 * day + 5, disposition="busy", status=486))
    store.flush()   # this store's writer thread, not the service's, holds the rows until written
    return base


def test_call_records_filters_and_csv(pbx_client, runtime):
    base = _seed_records(runtime)
    everything = page(pbx_client, "/pbx/cdr")
    assert everything.count("<tr>") == 4   # header + 3
    only_missed = page(pbx_client, "/pbx/cdr?disposition=missed")
    assert only_missed.count("<tr>") == 2 and "missed" in only_missed
    party = page(pbx_client, "/pbx/cdr?party=0612345678")
    assert party.count("<tr>") == 2 and "outbound" in party
    zone = ZoneInfo(runtime.config.system.timezone)  # "since" is a day in the box's zone
    c3_day = datetime.datetime.fromtimestamp(base + 2 * 86400, zone).strftime("%Y-%m-%d")
    recent = page(pbx_client, f"/pbx/cdr?since={c3_day}")
    assert recent.count("<tr>") == 2   # c3 alone: c2 is a day earlier
    bad = page(pbx_client, "/pbx/cdr?since=yesterday&disposition=lost", 400)
    assert "YYYY-MM-DD" in bad and "choose a value from the list" in bad
    assert pbx_client.get("/pbx/cdr.csv?since=nope").status_code == 400

    resp = pbx_client.get("/pbx/cdr.csv?direction=internal")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert sorted(r["call_id"] for r in rows) == ["c1", "c2"]
    assert next(r for r in rows if r["call_id"] == "c1")["caller_name"].startswith("'=")
    assert 'href="/pbx/cdr.csv?disposition=busy"' in page(pbx_client, "/pbx/cdr?disposition=busy")


def test_pages_need_an_admin(client):
    assert client.get("/pbx/").status_code == 302
    assert client.get("/pbx/cdr.csv").status_code == 302


class _LivePbx:
    """The runtime's own pbx service instance, started on an event loop thread (no supervisor in tests)."""

    def __init__(self, runtime) -> None:
        self.svc = runtime.services["pbx"]
        self.config = runtime.config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.svc.start(self.config), self.loop).result(20)
        return self

    def __exit__(self, *exc) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.svc.stop(), self.loop).result(20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@contextlib.contextmanager
def _alice_and_bob(live):
    """Two baresip phones registered to the live PBX: 201 (Alice) and 202 (Bob)."""
    registrar = f"127.0.0.1:{live.svc.sip_port}"
    with Baresip("alice", user="201", password="alicesecret1", registrar=registrar) as alice, \
            Baresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
        alice.register()
        bob.register()
        yield alice, bob


def _until(predicate, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_live_registrations_calls_and_records_with_baresip(pbx_client, runtime):
    with _LivePbx(runtime) as live:
        with _alice_and_bob(live) as (alice, bob):
            regs = page(pbx_client, "/pbx/registrations")
            assert regs.count("<code>sip:20") == 2 and "Alice Martin" in regs
            assert page(pbx_client, "/pbx/").count("badge-ok\">registered") == 2

            alice.dial("202")
            bob.answer()
            alice.wait_for("CALL_ESTABLISHED")
            alice.wait_rtp(tx=25, rx=25)
            calls = page(pbx_client, "/pbx/calls")
            assert "connected" in calls and "Alice Martin" in calls and "202" in calls
            alice.hold()
            _until(lambda: "on hold" in page(pbx_client, "/pbx/calls"))
            alice.resume()
            _until(lambda: "on hold" not in page(pbx_client, "/pbx/calls"))
            alice.hangup()
            bob.wait_for("CALL_CLOSED")
            _until(lambda: "No call in progress" in page(pbx_client, "/pbx/calls"))
        records = _until(lambda: list(csv.DictReader(io.StringIO(
            pbx_client.get("/pbx/cdr.csv?party=201").get_data(as_text=True)))))
        assert records[0]["caller"] == "201" and records[0]["callee"] == "202"
        assert records[0]["disposition"] == "answered"
        assert "answered" in page(pbx_client, "/pbx/cdr?disposition=answered")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_the_admin_ends_a_call_in_progress_from_the_live_calls_page(pbx_client, runtime):
    with _LivePbx(runtime) as live:
        with _alice_and_bob(live) as (alice, bob):
            alice.dial("202")
            bob.answer()
            alice.wait_for("CALL_ESTABLISHED")
            calls = _until(lambda: (text := page(pbx_client, "/pbx/calls")) and "/end" in text and text)
            action = re.search(r'action="(/pbx/calls/[^"/]+/end)"', calls).group(1)
            done = post(pbx_client, action, {})
            assert done.status_code == 302
            alice.wait_for("CALL_CLOSED")   # both phones are hung up by the box
            bob.wait_for("CALL_CLOSED")
            assert "The call was ended." in page(pbx_client, "/pbx/calls")
            _until(lambda: "No call in progress" in page(pbx_client, "/pbx/calls"))
            post(pbx_client, action, {})
            assert "That call has ended already." in page(pbx_client, "/pbx/calls")
        records = _until(lambda: list(csv.DictReader(io.StringIO(
            pbx_client.get("/pbx/cdr.csv?party=201").get_data(as_text=True)))))
        assert records[0]["end_reason"] == "ended_by_admin", records[0]


def test_extension_voicemail_pin_is_hashed_and_never_shown(pbx_client, runtime):
    from appliance.users import verify_password

    bad = post(pbx_client, "/pbx/extensions/201", {"voicemail_pin": "12a", "no_answer_timeout": "20"})
    assert bad.status_code == 400 and 'id="e-voicemail_pin"' in bad.get_data(as_text=True)
    assert next(u for u in runtime.config.users if u.login == "alice").voicemail_pin_hash is None
    ok = post(pbx_client, "/pbx/extensions/201", {"voicemail_pin": "4711", "voicemail": "on",
                                                  "voicemail_no_pin_from_own": "on", "no_answer_timeout": "20"})
    assert ok.status_code == 302
    alice = next(u for u in runtime.config.users if u.login == "alice")
    assert alice.voicemail_pin_hash.startswith("$argon2") and verify_password(alice.voicemail_pin_hash, "4711")
    settings = runtime.config.pbx.extensions["201"]
    assert settings.voicemail is True and settings.voicemail_pin_from_own is False
    form = page(pbx_client, "/pbx/extensions/201")
    assert "4711" not in form and alice.voicemail_pin_hash not in form and "a PIN is set" in form
    # saving the form again without a PIN keeps it; "remove" clears it
    post(pbx_client, "/pbx/extensions/201", {"voicemail": "", "no_answer_timeout": "20"})
    assert next(u for u in runtime.config.users if u.login == "alice").voicemail_pin_hash == alice.voicemail_pin_hash
    assert runtime.config.pbx.extensions["201"].voicemail is None
    post(pbx_client, "/pbx/extensions/201", {"voicemail_pin_clear": "on", "no_answer_timeout": "20"})
    assert next(u for u in runtime.config.users if u.login == "alice").voicemail_pin_hash is None
