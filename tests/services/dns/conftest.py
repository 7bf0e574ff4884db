import pytest

from services.dns import SERVICE
from tests.services.dhcp.helpers import LoopThread, lan_config
from tests.services.dns.upstream import Upstream


@pytest.fixture
def dns(ctx):
    """Our DNS in lab mode on a free loopback port, forwarding to a test upstream: (service, port,
    upstream, loop runner). Local records: nas A, files CNAME nas, MX at the apex."""
    upstream = Upstream()
    host, port = upstream.address
    config = lan_config("lan0", dns={"lab_port": 0, "upstreams": [f"{host}:{port}"],
                                     "records": [{"name": "nas", "value": "10.77.0.5"},
                                                 {"name": "files", "type": "CNAME", "value": "nas"},
                                                 {"name": "@", "type": "MX", "value": "10 nas"}]})
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(config))
    yield svc, svc.addresses[0][1], upstream, runner
    runner.call(svc.stop())
    runner.close()
    upstream.close()
