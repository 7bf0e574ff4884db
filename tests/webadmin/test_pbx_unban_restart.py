"""Unbanning a SIP source from the Live registrations page while the PBX's own process restarts.

The real PBX runs in its own process (appliance.servicehost) under the supervisor; 127.0.0.2 floods it with
OPTIONS until its abuse guard bans it. An unban must reach the live process (the source is answered again)
or say "restarting, try again": never a success message for a request that went to a process that had not
started its service yet (it did nothing), never a server error while the new process comes up."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from appliance.supervisor import Supervisor
from tests.isolated import until
from tests.runtimes import reachable_runtime, service_process
from tests.webadmin.helpers import post
from tests.webadmin.test_service_restart import free_udp_port

pytestmark = pytest.mark.slow
FLOODER = "127.0.0.2"
RESTARTING = "The telephony service is restarting; try again in a moment."
UNBANNED = f"{FLOODER} may send requests again."


@pytest.fixture
def runtime():
    """Its data outside pytest's 0700 tmp root, which the PBX's user cannot cross."""
    with reachable_runtime("ob-unban-") as rt:
        yield rt


@pytest.fixture
def pbx(admin_client, runtime):
    """The runtime's PBX in its own process on a loop thread (not started yet), a low flood limit, its port."""
    port = free_udp_port()
    runtime.engine.update("admin", "sip port, flood limit", lambda doc: doc.setdefault("pbx", {}).update(
        lab_sip_port=port, abuse={"max_requests": 10, "request_window": 5, "ban_seconds": 600}))
    with service_process(runtime, "pbx") as (service, run):
        supervisor = Supervisor(runtime.ctx, {"pbx": service})
        try:
            yield service, supervisor, run, port
        finally:
            run(supervisor.stop())


def options(port: int, count: int) -> int:
    """Send `count` OPTIONS from FLOODER; how many were answered (within 0.5 s of the last)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((FLOODER, 0))
        mine = sock.getsockname()[1]
        for n in range(count):
            sock.sendto((f"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {FLOODER}:{mine};branch=z9hG4bKfl{n}"
                         f"{time.monotonic_ns()}\r\nFrom: <sip:flood@{FLOODER}>;tag=f{n}\r\nTo: <sip:127.0.0.1>\r\n"
                         f"Call-ID: flood{n}-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                         "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        sock.settimeout(0.5)
        answered = 0
        try:
            while answered < count:
                sock.recvfrom(65536)
                answered += 1
        except TimeoutError:
            pass
        return answered


def banned(runtime) -> bool:
    return FLOODER in [b["source"] for b in runtime.client("pbx").bans()]


def unban(admin_client) -> tuple[int, str]:
    """The page's unban button: (status of the POST, the page it leads to)."""
    done = post(admin_client, f"/pbx/bans/{FLOODER}/delete", {}, form_path="/pbx/registrations")
    if done.status_code != 302:
        return done.status_code, ""
    page = admin_client.get(done.headers["Location"])
    return page.status_code, page.get_data(as_text=True)


def test_an_unban_before_the_new_process_started_its_service_is_refused_not_dropped(admin_client, runtime, pbx):
    """Before the fix, the process was up (its RPC answered) but its PBX not started: the unban went to that
    idle service, did nothing, and the page said the source may send again."""
    service, _, run, port = pbx
    run(service._spawn())  # the new process answers, the supervisor has not started its service yet
    assert service.alive
    code, page = unban(admin_client)
    assert code == 200 and RESTARTING in page and UNBANNED not in page

    run(service.start(runtime.config))
    assert options(port, 40) < 40 and until(lambda: banned(runtime), 10)
    code, page = unban(admin_client)
    assert code == 200 and UNBANNED in page and not banned(runtime)
    assert options(port, 1) == 1  # the live process answers the source again


def test_unban_while_the_supervisor_restarts_the_pbx_process(admin_client, runtime, pbx):
    service, supervisor, run, port = pbx
    run(supervisor.start(runtime.config))
    assert supervisor.units["pbx"].state == "running"
    assert options(port, 40) < 40 and until(lambda: banned(runtime), 10)
    old = service.proc.pid
    os.kill(old, signal.SIGKILL)

    answers: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # click unban again and again until the new process serves
        code, page = unban(admin_client)
        answers.append((code, UNBANNED if UNBANNED in page else RESTARTING if RESTARTING in page else page[:300]))
        if answers[-1][1] == UNBANNED and service.proc.pid != old:
            break
        time.sleep(0.05)
    assert all(code == 200 for code, _ in answers), [a for a in answers if a[0] != 200][:3]
    assert {what for _, what in answers} <= {UNBANNED, RESTARTING}, answers[:5]
    assert answers[0][1] == RESTARTING, answers[:5]  # the first clicks fall in the supervisor's 1 s backoff
    assert answers[-1][1] == UNBANNED and supervisor.units["pbx"].state == "running", answers[-5:]

    assert options(port, 40) < 40 and until(lambda: banned(runtime), 10)  # the live process bans and unbans
    assert unban(admin_client)[0] == 200 and not banned(runtime) and options(port, 1) == 1
