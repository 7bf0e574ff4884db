"""SafeText: free text that reaches a phone configuration file or a SIP header has no control
characters; the `officebox` command refuses them with the field's path and nothing is stored."""
import json
import os
import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from appliance.store import ConfigStore
from appliance.text import SafeText
from services.pbx.auth import authorization
from services.provisioning.files import Provisioner

PHONE_MAC = "80:5e:c0:11:22:33"
INJECTED_NAME = "Ann\r\naccount.1.sip_server.1.address = 203.0.113.66"
INJECTED_USER = "carrier\r\nX-Injected: 1"


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "a\tb", "a\x1bb", "a\x7fb", "a\x85b", "a\x9fb",
                                 "a\u2028b", "a\u2029b"])
def test_control_characters_are_refused(bad):
    with pytest.raises(ValidationError, match="must not contain line breaks"):
        TypeAdapter(SafeText).validate_python(bad)


def test_ordinary_text_of_any_language_passes():
    for good in ("Zoë Ünal-Ødegård", "Société Générale & Fils", "王小明", "O'Brien (sales) #2", ""):
        assert TypeAdapter(SafeText).validate_python(good) == good


def officebox(data, *args):
    return subprocess.run([sys.executable, "-m", "appliance.cli", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_cli_refuses_line_breaks_and_nothing_reaches_a_phone_file_or_a_sip_header(tmp_path):
    data = tmp_path / "var"
    ann = {"login": "ann", "full_name": "Ann", "extension": "201"}
    assert officebox(data, "config", "set", "users", json.dumps([ann])).returncode == 0
    phones = [{"mac": PHONE_MAC, "model": "yealink", "user": "ann", "label": "desk"}]
    assert officebox(data, "config", "set", "provisioning.phones", json.dumps(phones)).returncode == 0
    trunk = {"name": "carrier", "host": "192.0.2.10", "username": "carrier", "auth_password": "secret99"}
    assert officebox(data, "config", "set", "pbx.trunks", json.dumps([trunk])).returncode == 0
    attempts = [
        ("users", [{**ann, "full_name": INJECTED_NAME}], "users.0.full_name"),
        ("pbx.trunks", [{**trunk, "username": INJECTED_USER}], "pbx.trunks.0.username"),
        ("provisioning.phones", [{**phones[0], "label": "desk\nX"}], "provisioning.phones.0.label"),
        ("system.company_name", "Acme\r\nLtd", "system.company_name"),
    ]
    for key, value, path in attempts:
        refused = officebox(data, "config", "set", key, json.dumps(value))
        assert refused.returncode == 1, key
        assert f"{path}: must not contain line breaks, tabs or other control characters" in refused.stderr
    store = ConfigStore(data / "officebox.db")
    try:
        assert len(store.history()) == 4  # factory + the three good changes, none of the refused ones
        config = store.current().config
    finally:
        store.close()
    import ipaddress
    leases = {config.provisioning.phones[0].mac: ipaddress.IPv4Address("192.168.1.50")}  # its DHCP lease
    status, _, body = Provisioner(config, "192.168.1.1", 5060, lambda: leases).fetch(
        f"{PHONE_MAC.replace(':', '')}.cfg", "192.168.1.50")
    lines = body.decode().splitlines()
    assert status == 200 and "account.1.display_name = Ann" in lines
    assert not any("203.0.113.66" in line for line in lines)
    header = authorization('Digest realm="carrier", nonce="abc"', "REGISTER", "sip:192.0.2.10",
                           config.pbx.trunks[0].username, config.pbx.trunks[0].auth_password)
    assert header.startswith('Digest username="carrier"') and "\r" not in header and "\n" not in header
