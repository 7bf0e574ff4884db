"""The configuration of the call features: park slots, paging groups, pickup groups and feature codes
(distinct numbers, prefix codes that would hide others), and the checks that name their field."""
import pytest
from pydantic import ValidationError

from appliance.context import Context
from services.pbx import SERVICE
from services.pbx.config import FeatureCodes, PbxConfig
from services.pbx.dialplan import Destination, classify
from services.pbx.features.pickup import pickup_groups

from .conftest import ALICE, BOB, CAROL
from .pbxrunner import config


def test_park_slots_and_paging_numbers_are_dialled_as_applications():
    cfg = PbxConfig(park={"first_slot": "0701", "slots": 3}, paging_groups=[{"number": "650", "members": ["201"]}])
    assert cfg.park.numbers() == ["0701", "0702", "0703"]
    assert cfg.application_for("0702") == "app:park-0702"
    assert cfg.application_for("*70") == "app:park"
    assert cfg.application_for("0704") is None
    with pytest.raises(ValidationError, match="numbers of their own"):
        PbxConfig(park={"first_slot": "650"}, paging_groups=[{"number": "650"}])


def test_an_existing_extension_or_group_keeps_a_number_that_is_now_a_park_slot():
    """A box upgraded with extension 701 or ring group 702 keeps reaching them (the slots yield)."""
    cfg = PbxConfig(groups=[{"number": "702", "members": []}])
    assert classify("701", cfg, {"701"}).kind == "extension"
    assert classify("702", cfg, set()).kind == "group"
    assert classify("703", cfg, {"701"}) == Destination("application", "app:park-703")


def test_feature_codes_must_differ_and_prefixes_must_not_hide_codes():
    assert FeatureCodes().duplicates() == {}
    with pytest.raises(ValidationError, match="pickup: \\*97 is also the code of voicemail"):
        FeatureCodes(pickup="*97")
    with pytest.raises(ValidationError, match="park: \\*\\*7 starts with the code of directed_pickup"):
        FeatureCodes(park="**7")


def test_pickup_groups_from_ring_groups_and_extension_settings():
    cfg = PbxConfig(groups=[{"number": "600", "members": ["201", "202"]},
                            {"number": "601", "members": ["201", "204"], "pickup": False}],
                    extensions={"201": {"pickup_group": "front"}, "203": {"pickup_group": "front"},
                                "205": {"pickup_group": "back"}})
    assert pickup_groups(cfg, "201") == {"202", "203"}
    assert pickup_groups(cfg, "203") == {"201"}
    assert pickup_groups(cfg, "204") == set()


def test_paging_and_park_checks_name_their_field(tmp_path):
    doc = config([ALICE, BOB, CAROL], park={"first_slot": "202", "slots": 2},
                 paging_groups=[{"number": "201", "members": ["202", "299"]}])
    errors = {e.path: e.message for e in SERVICE(Context(tmp_path, lab=True)).validate(doc)}
    assert errors["pbx.paging_groups.0.number"] == "paging group 201 uses an extension number"
    assert errors["pbx.paging_groups.0.members"] == "paging group 201: 299 is not an extension"
    assert errors["pbx.park.first_slot"] == "park slots 202, 203 are also extension or ring group numbers"
