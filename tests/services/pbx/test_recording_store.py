"""Retention and the disk limit of call recordings: real files and a real call record store."""
from __future__ import annotations

import os
import time

from services.pbx.cdr import CallRecord, CdrStore
from services.pbx.recording.store import MB, RecordingStore


def _setup(tmp_path, ages_days: list[float], size: int = 400 * 1024):
    cdr = CdrStore(tmp_path / "cdr.sqlite")
    store = RecordingStore(tmp_path / "recordings", cdr)
    store.root.mkdir()
    names = []
    for i, age in enumerate(ages_days):
        name = f"20261201-1200{i:02d}-call{i}.wav"
        path = store.path(name)
        path.write_bytes(b"\0" * size)
        when = time.time() - age * 86400
        os.utime(path, (when, when))
        cdr.add(CallRecord(call_id=f"call{i}", direction="internal", caller="201", callee="202",
                           disposition="answered", recording=name))
        names.append(name)
    cdr.flush()
    return cdr, store, names


def _removed(cdr: CdrStore) -> dict[str, str]:
    return {r["recording"]: r["recording_removed"] for r in cdr.query()}


def test_recordings_older_than_the_retention_are_deleted_and_their_records_say_so(tmp_path):
    cdr, store, names = _setup(tmp_path, [40, 10, 0])
    store.sweep(retention_days=30, max_disk_mb=100)
    assert not store.path(names[0]).exists() and store.path(names[1]).exists() and store.path(names[2]).exists()
    assert _removed(cdr) == {names[0]: "retention", names[1]: "", names[2]: ""}
    assert [r["recording"] for r in cdr.recordings()] == [names[2], names[1]]  # kept ones only, newest first


def test_the_oldest_recordings_go_beyond_the_disk_limit(tmp_path):
    cdr, store, names = _setup(tmp_path, [3, 2, 1, 0], size=MB // 2)  # 2 MB in all
    room = store.room(retention_days=30, max_disk_mb=2)  # a new recording needs 1 MB free
    assert room == MB
    assert [store.path(n).exists() for n in names] == [False, False, True, True]
    assert _removed(cdr) == {names[0]: "disk_limit", names[1]: "disk_limit", names[2]: "", names[3]: ""}


def test_only_recording_names_reach_the_disk(tmp_path):
    store = RecordingStore(tmp_path, None)
    for bad in ("../cdr.sqlite", "x.wav", "20261201-120000-a/../b.wav", ""):
        try:
            store.path(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_a_recording_being_written_is_never_deleted(tmp_path):
    cdr, store, names = _setup(tmp_path, [40, 3, 2], size=MB // 2)
    store.sweep(retention_days=30, max_disk_mb=10, keep_free=int(9.6 * MB), busy=frozenset({names[0], names[1]}))
    assert [store.path(n).exists() for n in names] == [True, True, False]  # only the idle one went
    assert _removed(cdr)[names[2]] == "disk_limit"


def test_the_client_gives_a_recording_in_pieces_and_only_to_its_parties(tmp_path, monkeypatch):
    from appliance.clients import PbxClient
    from appliance.context import Context
    from services.pbx import PbxService

    svc = PbxService(Context(tmp_path / "box", lab=True))
    store = svc._cdr()
    folder = svc.ctx.state_dir("pbx") / "recordings"
    folder.mkdir()
    name = "20261201-120000-abc.wav"
    (folder / name).write_bytes(data := os.urandom(10000))
    store.add(CallRecord(call_id="abc", direction="inbound", caller="0611223344", dialled="300", callee="202",
                         recording=name))
    store.flush()
    monkeypatch.setattr("appliance.clients.RECORDING_PIECE", 3000)
    client = PbxClient(svc)
    size, pieces = client.recording_audio(name)
    pieces = list(pieces)
    assert size == 10000 and len(pieces) == 4 and b"".join(pieces) == data
    assert b"".join(client.recording_audio(name, "202")[1]) == data  # the one who answered
    assert client.recording_audio(name, "201") is None and client.recording_audio("../cdr.sqlite", None) is None
    assert [r["call_id"] for r in client.recordings("202")] == ["abc"] and client.recordings("201") == []
