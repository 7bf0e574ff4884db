"""The web admin's time server page: changes are real revisions (checked by chronyd -p), bad names
show a field error."""
from __future__ import annotations

import re

from tests.webadmin.conftest import runtime  # noqa: F401  (fixture: the real Runtime, lab data dir)
from tests.webadmin.helpers import admin_client_for, post


def test_time_server_page(runtime):  # noqa: F811
    client = admin_client_for(runtime)
    page = client.get("/ntp/").get_data(as_text=True)
    assert 'href="/ntp/"' in page and "2.debian.pool.ntp.org" in page and "option 42" in page
    saved = post(client, "/ntp/", {"enabled": "on", "pools": "", "servers": "192.0.2.123, Time.Example.NET"})
    assert saved.status_code == 302
    ntp = runtime.store.current().config.ntp
    assert ntp.enabled and ntp.pools == [] and ntp.servers == ["192.0.2.123", "time.example.net"]
    bad = post(client, "/ntp/", {"enabled": "on", "pools": "", "servers": "time example"})
    assert bad.status_code == 400
    assert re.search(r'id="e-servers">[^<]*is not a host name or IPv4 address', bad.get_data(as_text=True))
    off = post(client, "/ntp/", {"pools": "", "servers": ""})
    assert off.status_code == 302 and runtime.store.current().config.ntp.enabled is False
