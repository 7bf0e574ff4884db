"""The PBX in a process of its own (`officebox run --lab` in a namespace, SIP on port 5060, real baresip
phones): it runs as officebox-pbx with only CAP_NET_BIND_SERVICE, its media engine (a child of that
process) relays the call's audio, its pbx.call events reach the appliance's bus (the Live calls page),
and registrations, status and call records cross the RPC as JSON through the typed client's methods."""
import contextlib
import csv
import io
import json
import os
import pwd
import socket
import sys
from pathlib import Path

import pytest

from appliance import rpc
from appliance.clients import PbxClient
from services.pbx import PbxService
from services.pbx.cdr import CallRecord
from tests.appliance.test_isolation import configure, service_pids, until
from tests.appliance.test_privileges import as_user, proc_status
from tests.appliance.test_runtime import officebox, reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns
from tests.services.pbx.baresip import Baresip, have_baresip

PEOPLE = [
    {"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1"},
    {"login": "bob", "full_name": "Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
]


def retained_calls(bus: Path) -> dict[str, dict]:
    """The pbx.call events the appliance's bus holds (what the web admin's Live calls page shows)."""
    calls: dict[str, dict] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(bus))
        sock.sendall(json.dumps({"sub": "pbx.call"}).encode() + b"\n")
        reader = sock.makefile("rb")
        with contextlib.suppress(TimeoutError):
            while line := reader.readline():
                event = json.loads(line)
                calls[event["key"]] = event["data"]
    return calls


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@needs_netns
@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_pbx_in_its_own_process_as_its_own_user(data):
    with Lab() as lab:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            users = json.loads(officebox(data, "config", "show", "--show-secrets").stdout)["users"]
            configure(data, ("users", json.dumps(users + PEOPLE)), ("pbx.lab_sip_port", "5060"))
            sock = data / "run" / "pbx" / "service.sock"

            def call(method: str, *args):
                return rpc.call_sync(sock, {"op": "call", "method": method, "args": list(args)}, 10)

            with Baresip("alice", user="201", password="alicesecret1", registrar="127.0.0.1:5060", host=box) as alice, \
                    Baresip("bob", user="202", password="bobsecret12", registrar="127.0.0.1:5060", host=box) as bob:
                alice.register()
                bob.register()
                assert sorted(r["extension"] for r in call("registrations")) == ["201", "202"]
                alice.dial("202")
                bob.answer()
                alice.wait_for("CALL_ESTABLISHED")
                alice.wait_rtp(tx=25, rx=25)  # through the media engine of the PBX process
                [live] = call("active_calls")
                assert live["state"] == "connected"
                on_the_bus = retained_calls(data / "run" / "core" / "bus.sock")
                assert on_the_bus.get(live["id"], {}).get("state") == "connected", on_the_bus
                assert until(lambda: rpc.call_sync(sock, {"op": "status"}, 10)["figures"]["connected_calls"] == 1,
                             10, "the status never showed the call")

                [pid] = service_pids(data, "pbx")
                status = proc_status(pid)
                uid = pwd.getpwnam("officebox-pbx").pw_uid
                assert status["Uid"].split() == [str(uid)] * 4
                assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 1 << 10 | 1 << 23  # bind, nice
                [engine] = children(pid)
                assert proc_status(engine)["Uid"].split() == [str(uid)] * 4
                assert os.sched_getscheduler(engine) == os.SCHED_RR  # its media engine runs real-time
                attempt = as_user(status, sys.executable, "-c", f"open({str(data / 'officebox.db')!r}, 'rb')")
                assert "PermissionError" in attempt.stderr, attempt
                alice.hangup()
                bob.wait_for("CALL_CLOSED")
            [record] = until(lambda: call("cdr_page", {"party": "201"}), 10, "no call record")
            assert (record["caller"], record["callee"], record["disposition"]) == ("201", "202", "answered")
            page = call("cdr_csv_page", {"party": "201"}, True)
            assert page["rows"] == 1 and next(csv.DictReader(io.StringIO(page["csv"])))["callee"] == "202"
            stop(proc)
        finally:
            reap(proc)


def test_the_client_exports_call_records_in_pages(ctx, monkeypatch):
    """The CSV export asks for CSV_PAGE rows at a time and gives the same file as one query would."""
    svc = PbxService(ctx)
    store = svc._cdr()
    for n in range(23):
        store.add(CallRecord(f"c{n}", "internal", "201", caller_name=f"=x{n}" if n % 5 == 0 else "Al",
                             dialled="202", start=1000.0 + n, end=1010.0 + n))
    store.flush()
    monkeypatch.setattr("appliance.clients.CSV_PAGE", 5)
    client = PbxClient(svc)
    pieces = list(client.cdr_csv(party="201"))
    assert len(pieces) == 5 and "".join(pieces) == store.csv(party="201")
    assert len(list(csv.reader(io.StringIO("".join(pieces))))) == 24
    assert [r["call_id"] for r in client.cdr_query(party="201", limit=3)] == ["c22", "c21", "c20"]
    assert "".join(client.cdr_csv(party="201", limit=7)).count("\n") == 8
