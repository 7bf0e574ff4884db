"""No lost updates: a change is built on a base revision; a writer that saved meanwhile is never
silently overwritten (two store connections as two processes would have, two engines, the CLI)."""
import argparse
import threading

import pytest

from appliance import cli, control
from appliance.apply import ApplyEngine
from appliance.store import ChangedMeanwhile, ConfigStore
from tests.appliance.conftest import set_company
from tests.appliance.probe_service import ProbeService


def test_store_compare_and_swap_between_two_connections(engine, ctx):
    other = ConfigStore(ctx.db_path)  # a second process on the same database
    try:
        doc = engine.store.current().document
        first = engine.store.begin({**doc, "x": 1}, "alice", "a", base=1)
        second = other.begin({**doc, "x": 2}, "bob", "b", base=1)  # both built on #1
        engine.store.commit(first.id, base=1)
        with pytest.raises(ChangedMeanwhile) as err:
            other.commit(second.id, base=1)
        assert other.current_id() == first.id and err.value.current.id == first.id
        assert '+  "x": 1' in err.value.diff and err.value.base == 1
        with pytest.raises(ChangedMeanwhile):
            other.begin(doc, "bob", "c", base=1)  # a stale base is refused before anything is written
        assert [r.id for r in other.pending()] == [second.id]
    finally:
        other.close()


def two_engines(ctx):
    return [ApplyEngine(ctx, ConfigStore(ctx.db_path), {"probe": ProbeService(ctx)}) for _ in range(2)]


def race(engines, changes):
    """Both engines apply their change, built on the same base, at the same moment."""
    base = engines[0].store.current_id()
    barrier = threading.Barrier(len(engines))
    results: list = [None] * len(engines)

    def run(i):
        barrier.wait(timeout=10)
        try:
            results[i] = engines[i].update(f"admin{i}", f"change {i}", changes[i], base=base)
        except ChangedMeanwhile as exc:
            results[i] = exc
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


def test_two_writers_of_the_same_setting_one_wins_the_other_sees_the_difference(engine, ctx):
    engines = two_engines(ctx)
    try:
        results = race(engines, [set_company("Written by 0"), set_company("Written by 1")])
        lost = [r for r in results if isinstance(r, ChangedMeanwhile)]
        won = [r for r in results if not isinstance(r, ChangedMeanwhile)]
        assert len(lost) == 1 and len(won) == 1
        winner = won[0]
        assert engine.store.current_id() == winner.id
        assert engine.current_config().system.company_name == winner.config.system.company_name
        assert lost[0].paths == ["system.company_name"] and lost[0].current.id == winner.id
        assert f'"company_name": "{winner.config.system.company_name}"' in lost[0].diff
        assert "changed meanwhile" in str(lost[0]) and "nothing was saved" in str(lost[0])
        assert len(engine.store.history()) == 2  # the refused change left no revision
    finally:
        for e in engines:
            e.store.close()


def test_two_writers_of_different_settings_both_land(engine, ctx):
    engines = two_engines(ctx)
    try:
        results = race(engines, [set_company("Acme"), lambda doc: doc["system"].update(hostname="box2")])
        assert not any(isinstance(r, ChangedMeanwhile) for r in results)
        config = engine.current_config()
        assert config.system.company_name == "Acme" and config.system.hostname == "box2"
    finally:
        for e in engines:
            e.store.close()


def test_a_list_changed_by_both_is_never_merged_by_position(engine):
    def add(login):
        return lambda doc: doc["users"].append({"login": login, "full_name": login.title()})
    engine.update("alice", "ann", add("ann"))
    base = engine.store.current_id()
    engine.update("bob", "bob", add("bob"), base=base)
    with pytest.raises(ChangedMeanwhile) as err:
        engine.update("alice", "cid", add("cid"), base=base)
    assert err.value.paths == ["users"]
    with pytest.raises(ChangedMeanwhile):  # a rollback decided on an old view is refused too
        engine.rollback(1, "alice", base=base)
    assert [u.login for u in engine.current_config().users] == ["ann", "bob"]


def test_the_cli_is_refused_with_the_difference(engine, ctx, capsys):
    stale = engine.store.current()
    engine.update("alice", "meanwhile", set_company("Meanwhile Ltd"))
    doc = stale.document
    doc["system"]["company_name"] = "Mine"
    runtime = argparse.Namespace(engine=engine, ctx=ctx)
    answer = control._handle(runtime, {"op": "apply", "document": doc, "summary": "set", "base": stale.id})
    assert not answer["ok"] and "changed meanwhile" in answer["error"]
    assert '+    "company_name": "Meanwhile Ltd"' in answer["error"]
    assert engine.current_config().system.company_name == "Meanwhile Ltd"
    args = argparse.Namespace(author="console", data_dir=str(ctx.data_dir), lab=True)
    assert cli.submit(args, {"op": "apply", "document": doc, "summary": "set", "base": stale.id}) == 1
    err = capsys.readouterr().err
    assert "error: the configuration was changed meanwhile: revision #2 by alice (meanwhile)" in err
    assert '-    "company_name": "My Company"' in err
