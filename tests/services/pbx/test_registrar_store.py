"""The registrations on disk (services/pbx/registrar.py BindingStore): 0600, expired bindings dropped at
load, TCP ones reached by a new connection to their contact, and the 200 to a REGISTER only once its
binding is written."""
import stat
import time

from services.pbx.registrar import Binding, BindingStore

from .conftest import ALICE, run
from .sipclient import SipClient
from .test_registrar import stored_rows


def test_store_keeps_live_bindings_and_repoints_tcp_ones_at_their_contact(tmp_path):
    path = tmp_path / "registrations.sqlite"
    store = BindingStore(path)
    now = time.time()
    live = Binding("201", "sip:201@192.0.2.20:5060", ("udp", "192.0.2.20", 5060), now + 300, "c1", 4, "ua", now)
    gone = Binding("202", "sip:202@192.0.2.21:5060", ("udp", "192.0.2.21", 5060), now - 1, "c2", 1, "", now)
    tcp = Binding("203", "sip:203@192.0.2.22;transport=tcp", ("tcp", "192.0.2.22", 40000), now + 300, "c3", 1, "", now)
    named = Binding("204", "sip:204@phone.lan;transport=tcp", ("tcp", "192.0.2.23", 40001), now + 300, "c4", 1, "",
                    now)
    store.replace({b.extension: [(b.extension, b.contact, b.flow, b.expires_at, b.call_id, b.cseq, b.user_agent,
                                  b.registered_at)] for b in (live, gone, tcp, named)})
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = BindingStore(path)
    reached = Binding("203", tcp.contact, ("tcp", "192.0.2.22", 5060), now + 300, "c3", 1, "", now)
    assert again.load() == [live, reached]  # the dead connection's port is gone; a name cannot be dialled
    again.replace({"201": [], "203": []})
    assert again.load() == []
    again.close()


def test_register_answered_once_on_disk(pbx):
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as phone:
            assert (await phone.register("201", ALICE["sip_secret"])).status == 200
            assert stored_rows(pbx.ctx.data_dir) == [("201", f"sip:201@127.0.0.1:{phone.port}", "udp", "127.0.0.1",
                                                      phone.port)]
            assert (await phone.register("201", ALICE["sip_secret"], expires=0)).status == 200
            assert stored_rows(pbx.ctx.data_dir) == []
    run(main())


CHILD = """
import sys, threading
from tests.services.pbx.pbxrunner import PbxRunner, config
from tests.services.pbx.conftest import ALICE
runner = PbxRunner(sys.argv[1], config([ALICE])).__enter__()
print(runner.port, flush=True)
threading.Event().wait(60)
"""


def test_bindings_survive_a_killed_process(tmp_path):
    """SIGKILL right after the 200: the next start still has the phone."""
    import os
    import subprocess
    import sys

    from .pbxrunner import PbxRunner, config
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "p")], stdout=subprocess.PIPE, text=True,
                             cwd=root, env={**os.environ, "PYTHONPATH": root})
    try:
        port = int(child.stdout.readline())

        async def main():
            async with SipClient(("127.0.0.1", port)) as phone:
                assert (await phone.register("201", ALICE["sip_secret"])).status == 200
                return phone.port
        phone_port = run(main())
        child.kill()
    finally:
        child.kill()
        child.wait(10)
    with PbxRunner(tmp_path / "p", config([ALICE])) as again:
        assert [r["source"] for r in again.svc.registrations()] == [f"udp:127.0.0.1:{phone_port}"]
