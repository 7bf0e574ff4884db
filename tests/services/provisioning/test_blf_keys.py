"""BLF keys in the phones' files (curl as the phone): one per ring-group colleague of the phone's user,
read from the configuration document, with the directed pickup code; a colleague who lets nobody watch
them gets no key; a phone whose user is in no group gets none."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance import schema
from services.provisioning import SERVICE
from tests.services.dhcp.helpers import LoopThread

from .test_provisioning import curl, make_config


def config_with_groups():
    config = make_config()
    doc = config.model_dump(mode="json")
    doc["users"].append({"login": "erin", "full_name": "Erin Blanc", "extension": "205",
                         "sip_secret": "ErinSecret2024"})
    doc["provisioning"]["phones"].append({"mac": "00:04:f2:aa:bb:07", "model": "polycom", "user": "erin"})
    doc["pbx"] = {"groups": [{"number": "600", "members": ["201", "202", "203"]},
                             {"number": "601", "members": ["205", "201"]}],
                  "extensions": {"203": {"blf_watchers": "nobody"}},
                  "feature_codes": {"directed_pickup": "*6", "pickup": "*8"}}
    return schema.parse(doc)


@pytest.fixture
def prov(ctx):
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(config_with_groups()))
    yield f"http://127.0.0.1:{svc.ports['http']}"
    runner.call(svc.stop())
    runner.close()


def test_yealink_gets_blf_line_keys_for_ring_group_colleagues(prov):
    code, body = curl(f"{prov}/001565aabb01.cfg")  # alice, in groups 600 and 601
    assert code == 200
    lines = dict(line.split(" = ", 1) for line in body.splitlines() if " = " in line)
    assert [lines[f"linekey.{n}.value"] for n in (1, 2)] == ["202", "205"]  # not 203: nobody may watch carol
    assert "linekey.3.type" not in lines
    assert lines["linekey.1.type"] == "16" and lines["linekey.1.line"] == "1"
    assert lines["linekey.1.label"] == "Bob <Stone> & Co" and lines["linekey.1.extension"] == "*6"
    assert lines["features.pickup.direct_pickup_code"] == "*6" and lines["features.pickup.group_pickup_code"] == "*8"


def test_snom_and_grandstream_keys(prov):
    code, body = curl(f"{prov}/000413aabb02.xml")  # bob, in group 600 only
    assert code == 200
    fkeys = ET.fromstring(body).findall("functionKeys/fkey")
    assert [(k.get("label"), k.text) for k in fkeys] == [("Alice Martin", "blf sip:201@127.0.0.1|*6")]
    code, body = curl(f"{prov}/cfg000b82aabb03.xml")  # alice on a Grandstream
    config = ET.fromstring(body).find("config")
    assert code == 200
    assert [config.findtext(p) for p in ("P323", "P302", "P303", "P324", "P305", "P306")] == [
        "1", "Bob <Stone> & Co", "202", "1", "Erin Blanc", "205"]
    assert config.findtext("P1347") == "*6" and config.find("P325") is None


def test_dect_base_and_phones_without_colleagues_get_no_keys(prov):
    code, body = curl(f"{prov}/001565aabb04.cfg")
    assert code == 200 and "linekey." not in body


def test_polycom_master_file_then_settings_with_the_blf_list(prov):
    code, body = curl(f"{prov}/0004f2aabb07.cfg")  # erin, in group 601 with alice
    assert code == 200
    assert ET.fromstring(body).get("CONFIG_FILES") == "0004f2aabb07-officebox.cfg" and "Erin" not in body
    code, body = curl(f"{prov}/0004f2aabb07-officebox.cfg")
    assert code == 200
    values = ET.fromstring(body).find("officebox").attrib
    assert values["reg.1.address"] == values["reg.1.auth.userId"] == "205"
    assert values["reg.1.auth.password"] == "ErinSecret2024" and values["reg.1.server.1.address"] == "127.0.0.1"
    assert values["attendant.reg"] == "1"
    assert [values[f"attendant.resourceList.1.{k}"] for k in ("address", "label", "type")] == [
        "201@127.0.0.1", "Alice Martin", "normal"]
    assert "attendant.resourceList.2.address" not in values
    assert values["call.directedCallPickupString"] == "*6" and values["call.directedCallPickupMethod"] == "legacy"
    assert curl(f"{prov}/001565aabb01-officebox.cfg")[0] == 404  # a Yealink has no such file
