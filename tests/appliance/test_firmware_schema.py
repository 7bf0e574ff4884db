"""A firmware update that changes the schema, through the real A/B firmware path: the next firmware
(schema version + 1: a migration step, a new section, new fields with defaults) migrates the store of
this one; rolled back, this firmware runs on the newer store and keeps what it does not know; rolled
forward again, nothing is lost. The same with a next firmware that only adds fields with defaults
(no new version). Each firmware runs from its own slot, as the box's launcher runs it."""
import json
import os
import subprocess
import sys

import pytest

from appliance import firmware, schema
from images.build import ROOT, payload_files

NEW_SERVICE = '''from appliance.service import Service, ServiceConfig


class IntercomConfig(ServiceConfig):
    door_code: str = "0000"


class Intercom(Service):
    name, title, Config = "intercom", "Door intercom", IntercomConfig


SERVICE = Intercom
'''
NEW_STEP = '''

@step({old})
def _motto_from_company(doc: dict) -> None:
    doc["system"]["motto"] = doc["system"]["company_name"] + " at your service"
'''


def patched(path, old, new):
    text = (ROOT / path).read_text()
    assert old in text, f"{path} changed: update this test's patch"
    return text.replace(old, new, 1)


def next_firmware_files(tmp_path, with_step):
    """This tree as the next firmware: a new service and new fields with defaults; `with_step`: also
    schema version + 1 with a migration step that fills the new system.motto."""
    version = schema.SCHEMA_VERSION
    schema_text = patched("appliance/schema.py", "    lab_admin_port: int",
                          '    motto: str = ""\n    lab_admin_port: int')
    changed = {
        "appliance/users.py": patched("appliance/users.py", "    vpn_enabled: bool = False\n",
                                      '    vpn_enabled: bool = False\n    mobile: str = ""\n'),
        "appliance/schema.py": schema_text,
        "services/intercom/__init__.py": NEW_SERVICE,
    }
    if with_step:
        changed["appliance/schema.py"] = schema_text.replace(f"SCHEMA_VERSION = {version}\n",
                                                             f"SCHEMA_VERSION = {version + 1}\n", 1)
        changed["appliance/migrations.py"] = (ROOT / "appliance/migrations.py").read_text() + \
            NEW_STEP.format(old=version)
    files = payload_files()
    for name, text in changed.items():
        path = tmp_path / "next-src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[name] = path
    return files


@pytest.mark.parametrize("with_step", [True, False], ids=["new-schema-version", "fields-with-defaults"])
def test_previous_firmware_runs_on_the_next_ones_store_and_back(tmp_path, with_step):
    key = tmp_path / "keys" / "signing.key"
    public = firmware.new_signing_key(key)
    data = tmp_path / "var"
    (data / "trusted-keys").mkdir(parents=True)
    (data / "trusted-keys" / public.name).write_text(public.read_text())
    this_fw, next_fw = tmp_path / "this.obfw", tmp_path / "next.obfw"
    firmware.build_bundle(payload_files(), "0.1.0", key, this_fw)
    firmware.build_bundle(next_firmware_files(tmp_path, with_step), "0.2.0", key, next_fw)
    box = firmware.BoxFirmware(data)

    def run(*args):
        """The active slot's `officebox` on the box's data (the launcher runs the slot like this)."""
        slot = data / "firmware" / "current"
        result = subprocess.run([sys.executable, "-m", "appliance.cli", "--data-dir", str(data), *args],
                                cwd=slot, env={**os.environ, "PYTHONPATH": str(slot)}, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def stored():
        return json.loads(run("config", "show", "--show-secrets"))

    box.install(this_fw)
    run("config", "set", "system.company_name", "Acme")
    run("config", "set", "users", json.dumps([{"login": "ann", "full_name": "Ann", "extension": "201"},
                                              {"login": "bob", "full_name": "Bob", "extension": "202"}]))
    assert stored()["schema_version"] == schema.SCHEMA_VERSION

    box.install(next_fw)  # update: the next firmware migrates the store at its first start
    version = schema.SCHEMA_VERSION + with_step
    doc = stored()
    assert doc["schema_version"] == version
    if with_step:
        assert doc["system"]["motto"] == "Acme at your service"
        assert f"schema migration from version {schema.SCHEMA_VERSION} to {schema.SCHEMA_VERSION + 1}" in run(
            "config", "history")
    else:  # a field with a default: no step, the store stays as it was (the default applies)
        assert "motto" not in doc["system"] and "schema migration" not in run("config", "history")
        run("config", "set", "system.motto", "Acme at your service")
    run("config", "set", "intercom.door_code", json.dumps("4711"))
    run("config", "set", "users.0.mobile", "+33611")
    run("config", "set", "users.1.mobile", "+33622")

    assert "0.1.0 is active again" in run("firmware", "rollback")
    assert box.running() == "0.1.0"
    run("config", "set", "system.company_name", "Acme Ltd")  # this firmware edits the newer store
    run("config", "set", "users.0.full_name", "Ann Example")
    run("config", "set", "users", json.dumps([u for u in stored()["users"] if u["login"] != "bob"]))
    doc = stored()
    assert doc["intercom"]["door_code"] == "4711" and doc["system"]["motto"] == "Acme at your service"
    assert doc["users"][0]["mobile"] == "+33611" and doc["schema_version"] == version

    assert "firmware 0.2.0 installed" in run("firmware", "install", str(next_fw))  # roll forward
    doc = stored()
    assert doc["system"]["company_name"] == "Acme Ltd" and doc["system"]["motto"] == "Acme at your service"
    assert doc["intercom"] == {"enabled": True, "door_code": "4711"}
    assert [(u["login"], u["full_name"], u["mobile"]) for u in doc["users"]] == [("ann", "Ann Example", "+33611")]
    assert run("config", "history").count("schema migration") == with_step  # migrated once, not again
