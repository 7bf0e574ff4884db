"""The reference finder: every kind of reference it knows, in a document the schema accepts."""
from __future__ import annotations

import pytest

from appliance import schema
from appliance.references import blocking, used_by


def _doc() -> dict:
    menu = {"name": "main", "options": [
        {"key": "1", "action": "extension", "target": "201"}, {"key": "2", "action": "group", "target": "600"},
        {"key": "3", "action": "voicemail", "target": "201"}, {"key": "4", "action": "attendant", "target": "night"}]}
    doc = {"users": [{"login": "alice", "full_name": "Alice", "extension": "201"},
                     {"login": "bob", "full_name": "Bob", "extension": "202"}],
           "pbx": {
               "groups": [{"number": "600", "members": ["201", "202"], "overflow": "voicemail:201"},
                          {"number": "601", "members": ["202"], "overflow": "600"}],
               "paging_groups": [{"number": "650", "members": ["201"]}],
               "trunks": [{"name": "carrier", "host": "sip.example.com"}, {"name": "backup", "host": "b.example.com"}],
               "routes": [{"name": "out", "prefix": "0", "trunks": ["carrier", "backup"]}],
               "dids": [{"number": "0140000000", "destination": "attendant:main"},
                        {"number": "0140000001", "destination": "201"},
                        {"number": "0140000002", "destination": "queue:sales"},
                        {"number": "0140000003", "destination": "610"},
                        {"number": "0140000004", "destination": "conference:board"}],
               "queues": [{"number": "610", "name": "sales", "members": [{"agent": "201"}], "supervisors": ["202"],
                           "overflow": "600"}],
               "conference_rooms": [{"number": "620", "name": "board", "leaders": ["201"]}],
               "extensions": {"202": {"forward_busy": "201", "forward_no_answer": "queue:sales",
                                      "assistant": {"choices": [{"kind": "colleague", "number": "201"}]}},
                              "201": {"forward_always": "201"}},
               "time_profiles": [{"name": "office"}],
               "attendants": [{"name": "main", "profile": "office", "operator": "201", "fallback": "conference:board",
                               "menus": [menu]},
                              {"name": "night", "menus": [{"name": "main"}], "fallback": "601"}],
               "recording": {"extensions": ["201"], "groups": ["600"], "trunks": ["carrier"]},
               "secretaries": [{"manager": "202", "secretary": "201"}],
               "accounting": {"tariffs": [{"prefix": "06", "name": "Mobiles", "trunk": "backup"}]},
               "application_numbers": {"*44": "voicemail:201"},
               "park": {"fallback": "201"},
               "operator": "201", "voicemail": {"operator": "201"}}}
    schema.parse(doc)  # a document the schema accepts: every reference is a real one
    return doc


def _found(kind: str, key: str) -> set[tuple[str, str, str, bool]]:
    return {(u.section, u.name, u.field, u.blocking) for u in used_by(_doc(), kind, key)}


def test_extension_every_reference():
    assert _found("extension", "201") == {
        ("pbx.groups", "600", "members", True), ("pbx.groups", "600", "overflow", False),
        ("pbx.paging_groups", "650", "members", True), ("pbx.queues", "sales", "members", True),
        ("pbx.dids", "0140000001", "destination", True),
        ("pbx.extensions", "202", "forward_busy", False), ("pbx.extensions", "202", "assistant.choices", False),
        ("pbx.attendants", "main/main", "options.1", True), ("pbx.attendants", "main/main", "options.3", True),
        ("pbx.attendants", "main", "operator", True), ("pbx.conference_rooms", "board", "leaders", False),
        ("pbx.secretaries", "202/201", "secretary", True), ("pbx.recording", "recording", "extensions", True),
        ("pbx.application_numbers", "*44", "destination", False), ("pbx.park", "park", "fallback", False),
        ("pbx", "pbx", "operator", False), ("pbx.voicemail", "voicemail", "operator", False)}


def test_extension_as_supervisor_and_manager():
    assert _found("extension", "202") == {
        ("pbx.groups", "600", "members", True), ("pbx.groups", "601", "members", True),
        ("pbx.queues", "sales", "supervisors", False), ("pbx.secretaries", "202/201", "manager", True)}


def test_group_references_and_blocking():
    assert _found("group", "600") == {
        ("pbx.groups", "601", "overflow", False), ("pbx.queues", "sales", "overflow", False),
        ("pbx.attendants", "main/main", "options.2", True), ("pbx.recording", "recording", "groups", True)}
    assert _found("group", "601") == {("pbx.attendants", "night", "fallback", False)}


def test_trunk_references():
    assert _found("trunk", "carrier") == {("pbx.routes", "out", "trunks", True),
                                          ("pbx.recording", "recording", "trunks", True)}
    assert _found("trunk", "backup") == {("pbx.routes", "out", "trunks", True),
                                         ("pbx.accounting", "Mobiles", "trunk", False)}


def test_queue_by_name_and_number():
    assert _found("queue", "sales") == {("pbx.dids", "0140000002", "destination", False),
                                        ("pbx.dids", "0140000003", "destination", False),
                                        ("pbx.extensions", "202", "forward_no_answer", False)}


def test_attendant_conference_time_profile():
    assert _found("attendant", "main") == {("pbx.dids", "0140000000", "destination", False)}
    assert _found("attendant", "night") == {("pbx.attendants", "main/main", "options.4", True)}
    assert _found("conference", "board") == {("pbx.dids", "0140000004", "destination", False),
                                             ("pbx.attendants", "main", "fallback", False)}
    assert _found("time_profile", "office") == {("pbx.attendants", "main", "profile", True)}


def test_blocking_matches_the_schema():
    """Removing the object without its blocking references is refused by the schema; the others are not."""
    doc = _doc()
    doc["pbx"]["trunks"] = [t for t in doc["pbx"]["trunks"] if t["name"] != "carrier"]
    with pytest.raises(Exception, match="carrier"):
        schema.parse(doc)
    doc = _doc()
    assert not blocking(used_by(doc, "queue", "sales"))
    doc["pbx"]["queues"] = []  # a queue has no blocking references: deleting it leaves a valid document
    schema.parse(doc)


def test_unused_and_unknown():
    assert used_by(_doc(), "trunk", "nosuch") == []
    assert used_by({}, "extension", "201") == []
    with pytest.raises(ValueError):
        used_by(_doc(), "firewall", "x")
