"""A phone's boot, end to end in namespaces: DHCP (option 66 from the provisioning section) then
HTTP and TFTP fetches from the box; by default only the leased address gets the file."""
from __future__ import annotations

import pytest

from appliance.context import Context
from services.dhcp import SERVICE as DHCP
from services.provisioning import SERVICE as PROV
from tests.netns import Lab, needs_netns
from tests.services.dhcp.clients import dhclient
from tests.services.dhcp.helpers import LoopThread, lan_config

pytestmark = [needs_netns, pytest.mark.slow]
MAC = "00:15:65:12:34:56"


def test_phone_gets_url_by_dhcp_then_its_config(tmp_path):
    ctx = Context(tmp_path / "var", lab=False)
    with Lab() as lab:
        box, phone = lab.host("box"), lab.host("phone")
        box_if, phone_if = lab.link(box, "10.77.0.1/24", phone, None)
        phone.run("ip", "link", "set", phone_if, "address", MAC)
        config = lan_config(box_if, dhcp={"conflict_probe": False},
                            provisioning={"phones": [{"mac": MAC, "model": "yealink", "user": "alice"}],
                                          "tftp_port": 69})  # lease binding by default
        document = config.model_dump(mode="json")
        document["users"] = [{"login": "alice", "full_name": "Alice", "extension": "201",
                              "sip_secret": "AliceSecret2024"}]
        config = type(config).model_validate(document)
        runner = LoopThread(box)
        dhcp, prov = DHCP(ctx), PROV(ctx)
        runner.call(dhcp.start(config))
        runner.call(prov.start(config))
        try:
            env = dhclient(phone, phone_if, tmp_path / "phone", hostname="t46u", vendor="yealink")
            url = env["new_tftp_server_name"]
            assert url == "http://10.77.0.1:8081/"
            phone.run("ip", "addr", "add", f"{env['new_ip_address']}/24", "dev", phone_if)
            got = phone.run("curl", "-s", "-m", "5", f"{url}{MAC.replace(':', '')}.cfg").stdout
            assert "account.1.password = AliceSecret2024" in got
            assert "account.1.sip_server.1.address = 10.77.0.1" in got
            tftp = phone.run("curl", "-s", "-m", "5", f"tftp://10.77.0.1/{MAC.replace(':', '')}.cfg").stdout
            assert tftp == got
            phone.run("ip", "addr", "add", "10.77.0.250/24", "dev", phone_if)  # someone else on the LAN
            other = phone.run("curl", "-s", "-m", "5", "--interface", "10.77.0.250", "-w", "%{http_code}",
                              f"{url}{MAC.replace(':', '')}.cfg").stdout
            assert other.endswith("403") and "Secret" not in other
        finally:
            runner.call(prov.stop())
            runner.call(dhcp.stop())
            runner.close()
