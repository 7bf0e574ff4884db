"""Schema evolution: older documents are migrated (and the migration recorded), a newer firmware's
unknown sections and fields survive this one untouched, input stays strict about unknown keys."""
import pytest

from appliance import migrations, schema
from appliance.apply import ConfigError


def written_by_a_newer_firmware(engine, versions_ahead):
    """Store the current document as a newer firmware would have written it: new sections and fields
    (with a new schema version, or with the same one: fields added with defaults need no step)."""
    doc = engine.store.current().document
    doc["schema_version"] = schema.SCHEMA_VERSION + versions_ahead
    doc["intercom"] = {"enabled": True, "door_code": "4711"}  # a section this firmware has no service for
    doc["system"]["motto"] = "we answer"  # a field of a known section
    doc["network"]["lan"]["mtu"] = 9000  # nested one level deeper
    doc["users"] = [
        {"login": "ann", "full_name": "Ann", "extension": "201", "mobile": "+33611"},
        {"login": "bob", "full_name": "Bob", "extension": "202", "mobile": "+33622"},
        {"login": "cid", "full_name": "Cid", "extension": "203"},
    ]
    base = engine.store.current_id()
    rev = engine.store.begin(doc, "newer", "written by the next firmware", base=base)
    engine.store.commit(rev.id, base=base)
    engine.recover()  # this firmware starts on it
    return rev


def test_a_new_field_or_section_with_defaults_needs_no_step(engine):
    doc = engine.store.current().document
    del doc["system"]["lab_admin_port"], doc["dhcp"]  # as a firmware before they were added wrote it
    rev = engine.store.begin(doc, "older", "written before those settings existed", base=1)
    engine.store.commit(rev.id, base=1)
    config = engine.current_config()
    assert config.system.lab_admin_port == 8443 and config.dhcp.lease_time == 86400
    assert config.schema_version == schema.SCHEMA_VERSION and not migrations.STEPS.get(schema.SCHEMA_VERSION)

    def edit(doc):  # a page or the CLI edits them as if they had always been stored
        doc["system"]["lab_admin_port"] += 1
        doc["dhcp"]["lease_time"] = 600
    saved = engine.update("alice", "new settings", edit).config
    assert saved.system.lab_admin_port == 8444 and saved.dhcp.lease_time == 600


def test_older_documents_are_migrated_step_by_step_and_recorded(engine, monkeypatch):
    engine.update("alice", "name", lambda doc: doc["system"].update(company_name="acme"))
    written_by = engine.store.current()
    v = schema.SCHEMA_VERSION
    monkeypatch.setattr(migrations, "STEPS", {})
    migrations.step(v)(lambda doc: doc["system"].update(company_name=doc["system"]["company_name"].title()))
    migrations.step(v + 1)(lambda doc: doc["system"].update(company_name=doc["system"]["company_name"] + " Ltd"))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", v + 2)
    assert written_by.config.system.company_name == "Acme Ltd"  # migrated on load, the stored row untouched
    assert engine.store.revision(written_by.id).document["schema_version"] == v
    engine.recover()  # what every start does
    rev = engine.store.current()
    assert rev.id == written_by.id + 1 and rev.author == "system"
    assert rev.summary == f"schema migration from version {v} to {v + 2}"
    assert rev.document["schema_version"] == v + 2 and rev.document["system"]["company_name"] == "Acme Ltd"
    engine.recover()  # nothing more to migrate
    assert engine.store.current_id() == rev.id
    back = engine.rollback(1, "alice")  # an old revision is migrated as it is applied again
    assert back.document["schema_version"] == v + 2 and back.config.system.company_name == "My Company Ltd"


def test_a_missing_step_or_a_bad_version_is_a_clear_error(engine, monkeypatch):
    v = schema.SCHEMA_VERSION
    monkeypatch.setattr(migrations, "STEPS", {})
    monkeypatch.setattr(schema, "SCHEMA_VERSION", v + 1)
    with pytest.raises(ConfigError, match=f"cannot migrate a configuration of schema version {v}"):
        engine.validate(engine.store.current().document)
    with pytest.raises(ConfigError) as err:
        engine.validate({"schema_version": "two"})
    assert "schema_version" in err.value.errors
    with pytest.raises(ValueError, match="two migrations"):
        migrations.step(1)(lambda doc: None)
        migrations.step(1)(lambda doc: None)


@pytest.mark.parametrize("versions_ahead", [0, 1])
def test_a_newer_firmwares_keys_survive_changes_made_here(engine, versions_ahead):
    written_by_a_newer_firmware(engine, versions_ahead)
    assert engine.current_config().user("ann").full_name == "Ann"

    def edit(doc):  # what this (older) firmware's admin does: rename, edit, delete, add
        doc["system"]["company_name"] = "Renamed"
        ann = next(u for u in doc["users"] if u["login"] == "ann")
        ann["full_name"] = "Ann Example"
        doc["users"] = [u for u in doc["users"] if u["login"] != "bob"]
        doc["users"].insert(0, {"login": "dan", "full_name": "Dan", "extension": "204"})
    saved = engine.update("alice", "edits here", edit).document
    assert saved["schema_version"] == schema.SCHEMA_VERSION + versions_ahead  # still the newer firmware's
    assert saved["intercom"] == {"enabled": True, "door_code": "4711"}
    assert saved["system"]["motto"] == "we answer" and saved["system"]["company_name"] == "Renamed"
    assert saved["network"]["lan"]["mtu"] == 9000
    users = {u["login"]: u for u in saved["users"]}
    assert users["ann"]["mobile"] == "+33611" and users["ann"]["full_name"] == "Ann Example"
    assert "bob" not in users and "mobile" not in users["dan"] and "mobile" not in users["cid"]
    assert engine.current_config().user("ann").full_name == "Ann Example"
    assert not hasattr(engine.current_config().system, "motto")  # opaque here: kept, never interpreted


def test_input_refuses_unknown_keys_but_those_a_newer_firmware_stored(engine):
    doc = engine.store.current().document
    doc["system"]["motto"] = "typo or not, unknown here"
    with pytest.raises(ConfigError) as err:
        engine.apply(doc, "alice", "unknown key")
    assert err.value.errors == {"system.motto": "Extra inputs are not permitted"}
    written_by_a_newer_firmware(engine, 0)
    doc = engine.store.current().document
    doc["system"]["motto"] = "edited here"  # a key the stored configuration holds may be edited
    doc["users"][2]["mobile"] = "+33633"  # ... and set on another item of the same list
    doc["system"]["motot"] = "typo"
    doc["users"][0]["mobiel"] = "typo"
    with pytest.raises(ConfigError) as err:
        engine.apply(doc, "alice", "typos")
    assert set(err.value.errors) == {"system.motot", "users.0.mobiel"}
    del doc["system"]["motot"], doc["users"][0]["mobiel"]
    saved = engine.apply(doc, "alice", "edits").document
    assert saved["system"]["motto"] == "edited here" and saved["users"][2]["mobile"] == "+33633"


def test_version_1_documents_keep_working_boxes_working(engine):
    """The step to version 2: proxy sign-in keeps the main password where it was in use, the firewall's
    own SIP/RTP ports go (the PBX contributes them), the product-naming User-Agent goes, and a box
    whose phones lease from it binds their files to the lease."""
    doc = engine.store.current().document
    doc["schema_version"] = 1
    doc["proxy"]["sign_in"] = True
    del doc["proxy"]["sign_in_password"]
    doc["firewall"].update(sip_port=5060, rtp_port_min=10000, rtp_port_max=10999)
    doc["pbx"]["user_agent"] = "OfficeBox PBX"
    doc["provisioning"]["require_dhcp_lease"] = False
    doc["dhcp"]["enabled"] = True
    base = engine.store.current_id()
    rev = engine.store.begin(doc, "older", "written by version 1", base=base)
    engine.store.commit(rev.id, base=base)
    engine.recover()
    now = engine.store.current()
    latest = schema.SCHEMA_VERSION  # later steps run too
    assert now.summary == f"schema migration from version 1 to {latest}" and now.document["schema_version"] == latest
    config = now.config
    assert config.proxy.sign_in_password == "login" and config.pbx.user_agent == ""
    assert config.provisioning.require_dhcp_lease
    assert not {"sip_port", "rtp_port_min", "rtp_port_max"} & set(now.document["firewall"])
    fresh = schema.parse({"proxy": {"sign_in": True}})
    assert fresh.proxy.sign_in_password == "proxy"  # a new box: separate proxy passwords


def test_new_feature_codes_move_off_the_numbers_a_box_already_uses(engine):
    """A box whose admin made *8 and *801 application numbers (and *3 the own-voicemail code) would not load
    its configuration after the update: the new pickup (*8), intercom (*80 + extension) and conference (*3)
    codes clashed with them."""
    doc = {"schema_version": 4, "pbx": {"application_numbers": {"*8": "app:echo", "*801": "app:silence"},
                                        "feature_codes": {"voicemail": "*3"}}}
    migrated, steps = migrations.migrate(doc, schema.SCHEMA_VERSION)
    assert steps[:2] == [5, 6]
    config = engine.validate(migrated)
    codes = config.pbx.feature_codes
    assert config.pbx.application_numbers == {"*8": "app:echo", "*801": "app:silence"}
    assert codes.voicemail == "*3" and codes.pickup.startswith("*6") and codes.intercom.startswith("*6")
    assert codes.conference.startswith("*6") and len({codes.pickup, codes.intercom, codes.conference}) == 3
    assert codes.park == "*70" and codes.directed_pickup == "**"  # nothing in their way: the defaults
    plain, _ = migrations.migrate({"schema_version": 4, "pbx": {"application_numbers": {"*43": "app:echo"}}},
                                  schema.SCHEMA_VERSION)
    assert "feature_codes" not in plain["pbx"]


def test_the_prompt_and_supervisor_codes_move_off_the_numbers_a_version_5_box_uses(engine):
    """A version 5 box with *39 and *55 as application numbers and *56 as its own pickup code would not load
    after the update that brought prompt recording by phone (*39) and the supervisors' codes (*55-*57)."""
    doc = {"schema_version": 5, "pbx": {"application_numbers": {"*39": "app:echo", "*55": "app:silence"},
                                        "feature_codes": {"pickup": "*56"}}}
    with pytest.raises(ConfigError):
        engine.validate({k: v for k, v in doc.items() if k != "schema_version"})  # as it is: refused
    migrated, steps = migrations.migrate(doc, schema.SCHEMA_VERSION)
    assert steps[0] == 6
    codes = engine.validate(migrated).pbx.feature_codes
    assert codes.pickup == "*56" and codes.supervisor_barge == "*57"  # nothing in its way: the default
    moved = {codes.prompt_record, codes.supervisor_monitor, codes.supervisor_whisper}
    assert all(c.startswith("*6") for c in moved) and len(moved) == 3


def test_version_6_documents_load_as_they_are_and_smb_needs_version_7(engine):
    """Backups to an SMB share widened `backups.destination.kind`: version 6 documents need no change, but
    the new version marks the documents a version-6 firmware (which refuses kind "smb") cannot read."""
    doc = {"schema_version": 6, "backups": {"destination": {"kind": "sftp", "host": "nas", "user": "box"}}}
    migrated, steps = migrations.migrate(doc, schema.SCHEMA_VERSION)
    assert steps[0] == 7 and migrated["backups"] == doc["backups"]
    smb = {"kind": "smb", "host": "nas", "share": "Backups", "user": "box", "password_secret": "pw"}
    config = engine.validate({"backups": {"destination": smb}})
    assert config.backups.destination.kind == "smb" and config.backups.destination.share == "Backups"
    assert schema.SCHEMA_VERSION >= 7


def test_version_7_documents_load_as_they_are_and_pppoe_needs_version_8(engine):
    """A PPPoE WAN widened `network.wan.mode`: version 7 documents need no change, but the new version marks
    the documents a version-7 firmware (which refuses mode "pppoe") cannot read."""
    doc = {"schema_version": 7, "network": {"wan": {"interface": "wan0", "mode": "dhcp"}}}
    migrated, steps = migrations.migrate(doc, schema.SCHEMA_VERSION)
    assert steps[0] == 8 and migrated["network"] == doc["network"]
    config = engine.validate({"network": {"wan": {"mode": "pppoe", "pppoe_user": "box@isp", "pppoe_password": "pw"}}})
    assert config.network.wan.mode == "pppoe" and config.network.wan.mtu == 1492
    assert schema.SCHEMA_VERSION >= 8
