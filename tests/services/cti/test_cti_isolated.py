"""The CTI server in its own process (`officebox run --lab`, as on the box): it runs as officebox-cti,
reads the PBX process's call events and drives its calls over the appliance bus between processes."""
import json
import pwd
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from appliance.users import hash_password
from tests.appliance.test_isolation import configure, service_pids, until
from tests.appliance.test_runtime import reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns
from tests.services.pbx.baresip import Baresip, have_baresip
from tests.services.pbx.conftest import BOB, CAROL

from .conftest import APP_PASSWORD
from .cstaclient import CstaClient, conn

pytestmark = [needs_netns, pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")]


@pytest.fixture
def data():
    """Outside pytest's tmp root, as tests/appliance's `data`: each pytest session chmods that root 0700,
    which masks the ACL entries the service users need on the way to their folders."""
    top = Path(tempfile.mkdtemp(prefix="ob-cti-"))
    yield top / "var"
    shutil.rmtree(top, ignore_errors=True)


def test_cti_process_follows_and_drives_the_pbx_process(data):
    with Lab() as lab, ExitStack() as stack:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            configure(data, ("users", json.dumps([BOB, CAROL])), ("cti", json.dumps({
                "enabled": True, "accounts": [{"name": "crm", "password_hash": hash_password(APP_PASSWORD),
                                               "scope": ["*"]}]})))
            [pid] = until(lambda: service_pids(data, "cti"), 30, "no CTI process")
            uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:\t")[1].split()[0])
            assert pwd.getpwuid(uid).pw_name == "officebox-cti"
            bob = stack.enter_context(Baresip("bob", user="202", password=BOB["sip_secret"],
                                              registrar="127.0.0.1:5070", host=box))
            carol = stack.enter_context(Baresip("carol", user="203", password=CAROL["sip_secret"],
                                                registrar="127.0.0.1:5070", host=box))
            bob.register()
            carol.register()
            with box.enter():
                c = stack.enter_context(CstaClient(until(lambda: _listening(), 30, "no CSTA listener")))
            assert c.start_session("crm", APP_PASSWORD).name == "StartApplicationSessionPosResponse"
            ref = c.monitor("203")
            bob.dial("203")
            call = c.wait_event("DeliveredEvent", monitorCrossRefID=ref).value("connection", "callID")
            carol.answer()
            c.wait_event("EstablishedEvent", monitorCrossRefID=ref, callID=call)
            assert c.csta("HoldCall", conn("callToBeHeld", call, "203")).name == "HoldCallResponse"
            assert c.wait_event("HeldEvent", monitorCrossRefID=ref).value("holdingDevice", "deviceIdentifier") == "203"
            assert c.csta("ClearConnection", conn("connectionToBeCleared", call, "203")).name == \
                "ClearConnectionResponse"
            bob.wait_for("CALL_CLOSED")
            c.wait_event("ConnectionClearedEvent", monitorCrossRefID=ref, callID=call)
            stop(proc)
        finally:
            reap(proc)


def _listening() -> int:
    import socket
    try:
        socket.create_connection(("127.0.0.1", 12555), timeout=1).close()
    except OSError:
        return 0
    return 12555
