"""The PBX builds its call record store and adds records on its event loop, so neither may wait on
SQLite. A store locked by another connection (a backup reading it, a long query) held the loop in the
constructor for the 10 s busy timeout, then failed the PBX start with "database is locked"."""
import asyncio
import sqlite3

from services.pbx.cdr import CallRecord, CdrStore


def test_a_locked_store_holds_neither_the_constructor_nor_add(tmp_path):
    path = tmp_path / "cdr.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")

    async def on_the_loop() -> CdrStore:  # the asyncio guard fails a step that holds the loop
        store = CdrStore(path)
        store.add(CallRecord("c1", "internal", "201", dialled="202"))
        return store
    try:
        store = asyncio.run(on_the_loop())
    finally:
        other.rollback()
        other.close()
    store.flush()  # the writer thread waited for the lock, then wrote
    [row] = store.query()
    assert (row["call_id"], row["caller"], row["dialled"]) == ("c1", "201", "202")
    assert path.stat().st_mode & 0o777 == 0o600


def test_queries_open_a_store_no_record_was_written_to(tmp_path):
    store = CdrStore(tmp_path / "cdr.sqlite")
    assert not store.path.exists()  # nothing done before a thread needs it
    assert store.query() == [] and store.csv().startswith("id,call_id,")
