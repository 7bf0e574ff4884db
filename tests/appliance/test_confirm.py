"""Commit-confirm as a property of a configuration transaction (appliance/confirm.py) with the real
apply engine and store: a risky change comes back unless confirmed, also across a restart."""
from __future__ import annotations

import json
import time

import pytest

from appliance.apply import ApplyEngine
from appliance.store import ConfigStore
from appliance.users import hash_password
from tests.appliance.conftest import set_company
from tests.appliance.probe_service import ProbeService


class RiskyProbe(ProbeService):
    """Asks for confirmation when the company name starts with "risky"."""

    window = 0.6

    def confirm_window(self, old, new):
        return self.window if new.system.company_name.startswith("risky") else None


@pytest.fixture
def engine(ctx):
    store = ConfigStore(ctx.db_path)
    engine = ApplyEngine(ctx, store, {"probe": RiskyProbe(ctx)})
    engine.apply({}, "system", "factory configuration")
    assert engine.update("wizard", "risky first boot", set_company("risky at first boot")) \
        and engine.confirmation.pending() is None  # nobody to lock out before the wizard, nothing to undo
    engine.update("wizard", "first boot", lambda d: (d["system"].update(initialized=True), d["users"].append(
        {"login": "admin", "full_name": "Admin", "role": "admin", "password_hash": hash_password("admin password")})))
    yield engine
    engine.confirmation.close()
    store.close()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def company(engine) -> str:
    return engine.current_config().system.company_name


def test_an_unconfirmed_change_comes_back_by_itself(engine, ctx):
    good = engine.update("admin", "safe", set_company("Acme")).id
    engine.update("admin", "risky", set_company("risky one"))
    pending = engine.confirmation.pending()
    assert pending["previous_revision"] == good and pending["seconds_left"] <= 0.6
    assert (ctx.etc_root / "confirm.json").stat().st_mode & 0o777 == 0o600
    assert wait_for(lambda: engine.confirmation.last_rollback is not None)
    assert company(engine) == "Acme" and engine.confirmation.pending() is None
    rev = engine.store.current()
    assert rev.author == "commit-confirm" and rev.summary == f"roll back to revision #{good}"
    assert engine.confirmation.last_rollback["reverted"] == rev.id
    assert not (ctx.etc_root / "confirm.json").exists()


def test_a_confirmed_change_stays_and_a_safe_one_needs_nothing(engine):
    engine.update("admin", "safe", set_company("Acme"))
    assert engine.confirmation.pending() is None
    engine.update("admin", "risky", set_company("risky one"))
    assert engine.confirmation.confirm() and not engine.confirmation.confirm()
    time.sleep(1.0)
    assert company(engine) == "risky one" and engine.confirmation.last_rollback is None


def test_further_changes_keep_the_revision_to_go_back_to(engine):
    good = engine.update("admin", "safe", set_company("Acme")).id
    engine.update("admin", "risky", set_company("risky one"))
    engine.update("admin", "riskier", set_company("risky two"))
    assert engine.confirmation.pending()["previous_revision"] == good
    engine.rollback(good, "admin")  # going back by hand ends the wait
    assert engine.confirmation.pending() is None


def test_the_wait_survives_a_restart_and_a_deadline_passed_meanwhile_acts_at_once(ctx, engine):
    good = engine.update("admin", "safe", set_company("Acme")).id
    RiskyProbe.window = 30
    try:
        engine.update("admin", "risky", set_company("risky one"))
    finally:
        RiskyProbe.window = 0.6
    engine.confirmation.close()  # the box stops before anyone confirmed
    path = ctx.etc_root / "confirm.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "deadline": time.time() - 1}))  # down a while
    again = ApplyEngine(ctx, engine.store, {"probe": RiskyProbe(ctx)})
    again.confirmation.resume()
    assert wait_for(lambda: again.confirmation.last_rollback is not None)
    assert again.current_config().system.company_name == "Acme"
    assert again.store.current().document == again.store.revision(good).document


def test_the_console_is_told_of_the_wait_and_can_confirm(engine):
    """`officebox config set` of a change that could cut the admin off: the console gets the deadline and
    `officebox config confirm` keeps it (before, the console had no way to confirm, so the change came back)."""
    from types import SimpleNamespace

    from appliance import control, schema
    runtime = SimpleNamespace(engine=engine)
    document = schema.to_document(engine.current_config())
    document["system"]["company_name"] = "risky from the console"
    answer = control._handle(runtime, {"op": "apply", "document": document, "author": "console"})
    assert answer["ok"] and answer["confirm_seconds"] == 1  # the probe's 0.6 s, rounded
    assert control._handle(runtime, {"op": "confirm"}) == {"ok": True, "confirmed": True}
    time.sleep(1.0)  # past the window: nothing comes back
    assert company(engine) == "risky from the console" and engine.confirmation.last_rollback is None
    assert control._handle(runtime, {"op": "confirm"}) == {"ok": True, "confirmed": False}
    document["system"]["company_name"] = "Safe Ltd"
    assert "confirm_seconds" not in control._handle(runtime, {"op": "apply", "document": document})
