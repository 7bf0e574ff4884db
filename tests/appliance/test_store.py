import os
import stat

import pytest

from appliance.apply import ConfigError
from appliance.service import ApplyError
from appliance.store import ConfigStore
from tests.appliance.conftest import set_company


def company_file(ctx):
    return (ctx.etc_dir("probe") / "company.txt").read_text().strip()


def test_every_change_is_a_numbered_revision(engine, ctx):
    rev = engine.update("alice", "rename", set_company("Acme"))
    assert rev.id == 2 and rev.state == "applied" and rev.author == "alice"
    assert engine.current_config().system.company_name == "Acme"
    assert '+    "company_name": "Acme"' in rev.diff
    assert company_file(ctx) == "Acme"
    assert [r.id for r in engine.store.history()] == [2, 1]


def test_database_is_private(engine, ctx):
    assert stat.S_IMODE(os.stat(ctx.db_path).st_mode) == 0o600


def test_unchanged_document_makes_no_revision(engine):
    before = engine.store.current_id()
    engine.update("alice", "nothing", lambda doc: None)
    assert engine.store.current_id() == before


def test_validation_errors_name_the_field_and_change_nothing(engine, ctx):
    def bad(doc):
        doc["system"]["hostname"] = "Not A Host"
        doc["network"]["lan"]["address"] = "300.1.1.1/24"
    with pytest.raises(ConfigError) as err:
        engine.update("alice", "bad", bad)
    assert set(err.value.errors) == {"system.hostname", "network.lan.address"}
    assert engine.store.current_id() == 1 and len(engine.store.history()) == 1
    assert company_file(ctx) == "My Company"


def test_duplicate_extension_is_refused(engine):
    def two_users(doc):
        doc["users"] = [{"login": "ann", "full_name": "Ann", "extension": "201"},
                        {"login": "bob", "full_name": "Bob", "extension": "201"}]
    with pytest.raises(ConfigError) as err:
        engine.update("alice", "users", two_users)
    assert err.value.errors == {f"users.{i}.extension": "extension number '201' is already used by another user"
                                for i in (0, 1)}


def test_unknown_keys_are_refused(engine):
    with pytest.raises(ConfigError) as err:
        engine.update("alice", "typo", lambda doc: doc["system"].update(compnay="x"))
    assert "system.compnay" in err.value.errors


def test_rollback_is_a_new_revision_with_the_old_document(engine, ctx):
    engine.update("alice", "a", set_company("Acme"))
    engine.update("alice", "b", set_company("Bolt"))
    rev = engine.rollback(2, "bob")
    assert rev.id == 4 and rev.summary == "roll back to revision #2"
    assert engine.current_config().system.company_name == "Acme"
    assert company_file(ctx) == "Acme"
    with pytest.raises(ApplyError, match="no revision #99"):
        engine.rollback(99, "bob")


def test_check_failure_keeps_the_previous_revision(engine, ctx):
    with pytest.raises(ApplyError, match="refused its configuration"):
        engine.update("alice", "bad", set_company("BADCHECK"))
    assert engine.store.current_id() == 1
    assert engine.store.history()[0].state == "failed"
    assert company_file(ctx) == "My Company"


def test_rendered_files_are_private_and_old_generations_pruned(engine, ctx):
    for i in range(8):
        engine.update("alice", f"n{i}", set_company(f"Name {i}"))
    gens = sorted(p.name for p in ctx.etc_root.glob("gen-*"))
    assert len(gens) == 5 and (ctx.etc_root / "current").readlink().name == gens[-1]
    mode = stat.S_IMODE(os.stat(ctx.etc_dir("probe") / "company.txt").st_mode)
    assert mode == 0o600


def test_store_reopens_with_the_same_history(engine, ctx):
    engine.update("alice", "a", set_company("Acme"))
    again = ConfigStore(ctx.db_path)
    assert again.current().config.system.company_name == "Acme"
    assert [r.summary for r in again.history()] == ["a", "factory configuration"]
    again.close()
