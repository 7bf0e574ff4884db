"""Recording in the PBX's own process (`officebox run --lab` in a namespace, the PBX as officebox-pbx):
its media engine writes the recording into the PBX's state, and the typed client's RPC methods hand it
out as JSON (base64 pieces) to the appliance, which never reads the PBX's files itself."""
import base64
import io
import json
import wave

import pytest

from appliance import rpc
from tests.appliance.conftest import data  # noqa: F401 (the fixture)
from tests.appliance.test_isolation import configure, until
from tests.appliance.test_pbx_process import PEOPLE
from tests.appliance.test_runtime import officebox, reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns

from .baresip import Baresip, have_baresip


@needs_netns
@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_a_call_recorded_by_the_isolated_pbx_reaches_the_client(data):  # noqa: F811
    with Lab() as lab:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            users = json.loads(officebox(data, "config", "show", "--show-secrets").stdout)["users"]
            configure(data, ("users", json.dumps(users + PEOPLE)), ("pbx.lab_sip_port", "5060"),
                      ("pbx.recording", json.dumps({"extensions": ["201"], "notice": "none"})))
            sock = data / "run" / "pbx" / "service.sock"

            def call(method: str, *args):
                return rpc.call_sync(sock, {"op": "call", "method": method, "args": list(args)}, 10)

            with Baresip("alice", user="201", password="alicesecret1", registrar="127.0.0.1:5060", host=box) as alice, \
                    Baresip("bob", user="202", password="bobsecret12", registrar="127.0.0.1:5060", host=box) as bob:
                alice.register()
                bob.register()
                alice.dial("202")
                bob.answer()
                alice.wait_for("CALL_ESTABLISHED")
                alice.wait_rtp(tx=100, rx=100)
                alice.hangup()
                bob.wait_for("CALL_CLOSED")
            [row] = until(lambda: call("recordings", "202", 10, 0), 10, "no recorded call of 202")
            assert call("recording_row", row["recording"], "203") is None
            chunk = call("recording_chunk", row["recording"], 0, 1 << 20, "201")
            audio = base64.b64decode(chunk["data"])
            assert len(audio) == chunk["total"]
            with wave.open(io.BytesIO(audio)) as w:
                assert w.getnchannels() == 2 and w.getnframes() / w.getframerate() >= 1.5
            stop(proc)
        finally:
            reap(proc)
