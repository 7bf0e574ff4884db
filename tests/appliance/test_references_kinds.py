"""The reference finder for music on hold classes and attendant menus, and the referencing objects' titles."""
from __future__ import annotations

from appliance import schema
from appliance.references import blocking, used_by


def _doc() -> dict:
    doc = {"users": [{"login": "alice", "full_name": "Alice Example", "extension": "201"},
                     {"login": "bob", "full_name": "Bob", "extension": "202"}],
           "pbx": {
               "moh_classes": [{"name": "default"}, {"name": "jazz"}],
               "extensions": {"201": {"moh_class": "jazz"}, "202": {"moh_class": "default"}},
               "groups": [{"number": "600", "name": "Sales", "members": ["201"]}],
               "queues": [{"number": "610", "name": "support", "title": "Support line", "moh_class": "jazz"},
                          {"number": "611", "name": "other"}],
               "attendants": [
                   {"name": "main", "entry": {"closed": "night", "holiday": "night"}, "menus": [
                       {"name": "main", "options": [{"key": "1", "action": "menu", "target": "sales"},
                                                    {"key": "2", "action": "menu", "target": "night"}]},
                       {"name": "sales", "options": [{"key": "0", "action": "menu", "target": "main"}]},
                       {"name": "night"}]},
                   {"name": "other", "menus": [{"name": "main", "options": [
                       {"key": "1", "action": "menu", "target": "sales"}]}, {"name": "sales"}]}]}}
    schema.parse(doc)  # a document the schema accepts
    return doc


def _found(kind: str, key: str) -> set[tuple[str, str, str, bool]]:
    return {(u.section, u.name, u.field, u.blocking) for u in used_by(_doc(), kind, key)}


def test_a_hold_music_class_is_used_by_extensions_and_queues_without_blocking():
    assert _found("moh_class", "jazz") == {("pbx.extensions", "201", "moh_class", False),
                                          ("pbx.queues", "support", "moh_class", False)}
    assert _found("moh_class", "classical") == set()
    assert not blocking(used_by(_doc(), "moh_class", "jazz"))


def test_a_menu_is_used_by_the_options_and_entries_of_its_own_attendant_only():
    assert _found("menu", "main/sales") == {("pbx.attendants", "main/main", "options.1", True)}
    assert _found("menu", "main/night") == {("pbx.attendants", "main/main", "options.2", True),
                                           ("pbx.attendants", "main", "entry.closed", True),
                                           ("pbx.attendants", "main", "entry.holiday", True)}
    assert _found("menu", "other/sales") == {("pbx.attendants", "other/main", "options.1", True)}
    assert _found("menu", "main/main") == {("pbx.attendants", "main/sales", "options.0", True)}
    entry = next(u for u in used_by(_doc(), "menu", "main/night") if u.field == "entry.closed")
    assert entry.endpoint == "attendant.edit" and entry.args == {"name": "main"}


def test_entries_carry_the_title_of_what_uses_the_object():
    titles = {(u.section, u.name): u.title for u in used_by(_doc(), "moh_class", "jazz")}
    assert titles == {("pbx.extensions", "201"): "Alice Example", ("pbx.queues", "support"): "Support line"}
    (group,) = [u for u in used_by(_doc(), "extension", "201") if u.section == "pbx.groups"]
    assert group.title == "Sales" and group.name == "600"


def test_a_login_is_used_by_its_phones_mail_aliases_and_proxy_groups():
    doc = _doc()
    doc["provisioning"] = {"phones": [{"mac": "00:15:65:aa:bb:cc", "user": "bob", "label": "Desk"},
                                      {"mac": "00:15:65:aa:bb:cd", "model": "yealink-w70b",
                                       "handsets": [{"number": 1, "user": "bob"}, {"number": 2, "user": "alice"}]}]}
    doc["mail"] = {"aliases": [{"name": "team", "targets": ["bob", "it@example.com"]}]}
    doc["proxy"] = {"sign_in": True, "groups": [{"name": "staff", "users": ["bob"]}]}
    schema.parse(doc)
    found = {(u.section, u.name, u.field, u.blocking, u.title) for u in used_by(doc, "user", "bob")}
    assert found == {("provisioning.phones", "00:15:65:aa:bb:cc", "user", True, "Desk"),
                     ("provisioning.phones", "00:15:65:aa:bb:cd", "handsets", True, ""),
                     ("mail.aliases", "team", "targets", True, ""), ("proxy.groups", "staff", "users", True, "")}
    assert {u.section for u in used_by(doc, "user", "alice")} == {"provisioning.phones"}
