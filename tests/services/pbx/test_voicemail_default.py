"""Voicemail on by default: the 3 -> 4 migration keeps boxes in service as they were (an extension whose
user had no PIN and no setting had no voicemail, and keeps none). Call routing to the box of a user
without PIN: test_voicemail.py test_a_user_without_pin_gets_messages."""
from __future__ import annotations

from appliance import migration_steps, schema  # noqa: F401 (registers the steps)
from appliance.migrations import migrate
from services.pbx.voicemail.pin import hash_pin

from .conftest import ALICE, BOB, CAROL


def test_migration_keeps_pinless_extensions_without_voicemail():
    pin = hash_pin("4321")
    doc = {"schema_version": 3,
           "users": [dict(ALICE, voicemail_pin_hash=pin), dict(BOB), dict(CAROL), {"login": "xav", "full_name": "X"}],
           "pbx": {"extensions": {"203": {"voicemail": True, "dnd": True}}}}
    migrated, steps = migrate(doc, 4)
    assert steps == [4] and migrated["schema_version"] == 4
    exts = migrated["pbx"]["extensions"]
    assert exts == {"202": {"voicemail": False}, "203": {"voicemail": True, "dnd": True}}  # alice: has a PIN
    cfg = schema.parse(migrated)
    assert cfg.pbx.extensions["202"].voicemail is False and "201" not in cfg.pbx.extensions
    alone = migrate({"schema_version": 3, "users": [dict(BOB)]}, 4)[0]
    assert alone["pbx"] == {"extensions": {"202": {"voicemail": False}}}

