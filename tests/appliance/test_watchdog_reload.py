"""The supervisor's watchdog leaves a service alone while it is being reconfigured: a reload of the
provisioning service (its stop, then its start, inside its own process) reports "down" meanwhile, and the
watchdog restarting the process then cut the reload's call off ("provisioning: the service process closed
the connection without answering", seen on the OS image after `officebox config set network.wan ...`)."""
import logging
import time

import pytest

from appliance import schema
from appliance.certs import box_certificate
from appliance.context import Context
from appliance.defaults import default_document
from appliance.supervisor import WATCH_INTERVAL
from services.provisioning import ProvisioningService
from tests.isolated import isolated
from tests.runtimes import reachable_dir

pytestmark = pytest.mark.slow


def test_reloads_are_not_cut_off_by_the_watchdog(caplog):
    caplog.set_level(logging.ERROR, "officebox")
    with reachable_dir("ob-watch-") as top:
        ctx = Context(top / "var", lab=True)
        document = default_document(True)
        document.setdefault("provisioning", {})["https"] = True  # its reload loads the TLS key in a thread
        box_certificate(ctx.data_dir, schema.parse(document).system.hostname)  # the appliance's, at its start
        with isolated(ctx, ProvisioningService(ctx), document) as run:
            run.supervisor.watch_interval = 0.01  # it looks all the time, so also in the middle of reloads
            run.engine.live = run.supervisor
            first = run.service.proc.pid
            started = time.monotonic()  # its first look comes after the interval it started with (5 s)
            for turn in range(400):  # provisioning depends on `system`: each change reloads it
                if time.monotonic() - started > WATCH_INTERVAL + 5:
                    break
                run.engine.update("admin", f"name {turn}",
                                  lambda doc, turn=turn: doc["system"].update(company_name=f"Acme {turn}"))
                assert run.supervisor.units["provisioning"].state == "running"
            assert run.service.proc.pid == first, "the watchdog restarted the process during a reload"
            assert "reports itself down" not in caplog.text
