"""The VPN in its own process, as the appliance runs it (appliance.servicehost): the web admin's live rows,
the remote-access CA, a branch's peer bundle and the disconnect action come through the typed client
(appliance.clients.VpnClient) from the child; while the child is down the action is refused, and it
answers again once restarted."""
import os
import signal

import pytest

from appliance.clients import ServiceRestarting, client_for
from appliance.context import Context
from services.vpn import bundle
from services.vpn.service import VpnService, tunnel_rows
from tests.isolated import isolated, until

pytestmark = pytest.mark.slow
DOC = {"system": {"hostname": "box", "domain": "office.test"},
       "users": [{"login": "ann", "full_name": "Ann", "vpn_enabled": True}],
       "vpn": {"enabled": True, "tunnels": [{"name": "branch", "peer": "198.51.100.7", "psk": "Branch2Head-9xQp-41zz",
                                             "local_subnets": ["192.168.1.0/24"], "remote_subnets": ["10.2.0.0/24"]},
                                            {"name": "lyon", "peer": "198.51.100.8", "auth": "certificate",
                                             "local_subnets": ["192.168.1.0/24"], "remote_subnets": ["10.3.0.0/24"]}],
               "remote_access": {"enabled": True, "server_name": "vpn.office.test",
                                 "accounts": [{"user": "ann", "password_secret": "Ann-vpn-secret-42"}]}}}


def test_vpn_in_its_own_process_answers_the_web_admin_through_its_client(tmp_path):
    ctx = Context(tmp_path, lab=True)
    with isolated(ctx, VpnService(ctx), DOC) as run:
        service = run.service
        child = service.proc.pid
        assert child != os.getpid()

        client = client_for(service)
        assert client.isolated
        live = client.live()
        assert live == {"sas": [], "sas_at": live["sas_at"], "peers": {}, "issued": {}, "pptp": [],
                        "pptp_at": live["pptp_at"]}
        assert live["sas_at"] > 0  # the child listed
        assert [(t["name"], t["state"]) for t in tunnel_rows(run.engine.current_config(), live["sas"])] == [
            ("branch", "down"), ("lyon", "down")]
        ca = client.ca_pem()  # made by the appliance's check, read by the child
        assert ca.startswith("-----BEGIN CERTIFICATE-----") and ca == VpnService(ctx).pki.ca.read_text()
        assert client.disconnect("7") == ""  # not connected: nothing ended
        assert bundle.parse(client.issue_bundle("lyon")).identity == "lyon.box.office.test"

        os.kill(child, signal.SIGKILL)
        assert until(lambda: not service.alive, 10)
        with pytest.raises(ServiceRestarting):  # the appliance's own copy must not take the action
            client.disconnect("7")
        assert run.restarted(child), "the VPN process was not restarted"
        assert until(lambda: client.live()["sas_at"] > 0, 30)  # the new child answers
