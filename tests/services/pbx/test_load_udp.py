"""Load on the SIP UDP socket: the configured receive buffer is what the kernel gives the socket (and a
reload changes it), a burst that arrives while the PBX is busy is kept whole and answered, and a size
above net.core.rmem_max without CAP_NET_ADMIN is capped and logged rather than silently short."""
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ALICE
from .pbxrunner import PbxRunner, config

ROOT = Path(__file__).resolve().parents[3]
BURST = 600  # the kernel's default buffer (208 KB) holds about 100-150 of these on loopback
OPTIONS = ("OPTIONS sip:201@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKload{n};rport\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:load@127.0.0.1>;tag=l{n}\r\nTo: <sip:201@127.0.0.1>\r\n"
           "Call-ID: load-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def _kernel_rcvbuf(port: int) -> int:
    """The socket's receive buffer as the kernel books it (ss skmem rb: twice the size asked for)."""
    out = subprocess.run(["ss", "-u", "-a", "-n", "-m", "sport", "=", f":{port}"], capture_output=True,
                         text=True, timeout=5, check=True).stdout
    sizes = re.findall(r"skmem:\(r\d+,rb(\d+)", out)
    assert sizes, out
    return int(sizes[0])


def _cfg(**pbx):
    return config([ALICE], abuse={"trusted": ["127.0.0.1"], "max_requests": 100000}, **pbx)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_configured_receive_buffer_is_applied_and_follows_a_reload(tmp_path):
    with PbxRunner(tmp_path / "pbx", _cfg(sip_receive_buffer=1024 * 1024)) as pbx:
        assert _kernel_rcvbuf(pbx.port) == 2 * 1024 * 1024
        assert pbx.sync(lambda: pbx.svc.core.stack.transports.udp.receive_buffer) == 1024 * 1024
        pbx.reload(_cfg(sip_receive_buffer=3 * 1024 * 1024))
        assert _kernel_rcvbuf(pbx.port) == 6 * 1024 * 1024


@pytest.mark.blocks_the_loop
def test_a_burst_while_the_pbx_is_busy_gets_every_answer(tmp_path):
    with PbxRunner(tmp_path / "pbx", _cfg()) as pbx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        phone.bind(("127.0.0.1", 0))
        port = phone.getsockname()[1]
        burst = [OPTIONS.format(port=port, n=n).encode() for n in range(BURST)]

        def send_while_busy() -> None:  # runs on the PBX loop: nothing reads its socket meanwhile
            for data in burst:
                phone.sendto(data, ("127.0.0.1", pbx.port))

        pbx.sync(send_while_busy)
        answered: set[str] = set()
        phone.settimeout(5)
        deadline = time.monotonic() + 30
        while len(answered) < BURST and time.monotonic() < deadline:
            try:
                text = phone.recv(65535).decode()
            except TimeoutError:
                break
            assert text.startswith("SIP/2.0 200 "), text[:80]
            answered.add(re.search(r"Call-ID: (load-\d+)", text).group(1))
        assert len(answered) == BURST, f"{BURST - len(answered)} requests of the burst got no answer"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_a_size_above_rmem_max_without_cap_net_admin_is_capped_and_logged():
    from services.pbx.sip.transport import rmem_max
    limit = rmem_max()
    assert limit
    script = ("import logging, socket, sys\n"
              "from services.pbx.sip.transport import set_receive_buffer\n"
              "logging.basicConfig(stream=sys.stdout, format='%(message)s')\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"print('granted', set_receive_buffer(s, {2 * limit}))\n")
    out = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", sys.executable, "-c", script],
                         cwd=ROOT, capture_output=True, text=True, timeout=30, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert f"granted {limit}" in out.stdout
    assert f"net.core.rmem_max is {limit}" in out.stdout and "sysctl -w net.core.rmem_max=" in out.stdout
