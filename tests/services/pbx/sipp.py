"""Run a SIPp scenario (Debian `sip-tester`) as one authenticated caller against the PBX."""
from __future__ import annotations

import itertools
import random
import shutil
import socket
import subprocess
from pathlib import Path

from .baresip import _free_port

SCENARIOS = Path(__file__).parent / "sipp"


# SIPp's -mp N binds N (audio) and N+2 (video), each with its RTCP port: one block of four per caller, handed
# out in turn from 30000-32767, below the ephemeral ports (32768+) and above the PBX tests' RTP blocks
# (pbxrunner: 21000-29999) and baresip's (10000-20000), so callers started together never collide
_MEDIA_BLOCKS = itertools.cycle(random.Random().sample(range(30000, 32764, 4), 691))


def free_media_port(host: str = "127.0.0.1") -> int:
    """The base of four consecutive free UDP ports for SIPp's -mp (at most 50 tries)."""
    for _ in range(50):
        base = next(_MEDIA_BLOCKS)
        socks = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four consecutive free UDP ports for SIPp's media")


def have_sipp() -> bool:
    return shutil.which("sipp") is not None


def run_sipp(scenario: str, registrar: str, service: str, user: str, password: str, workdir: Path,
             timeout: float = 30.0) -> subprocess.CompletedProcess:
    """One call of `scenario` (a file in sipp/) to `service`; SIPp exits 0 when every step went as written."""
    # -auth_uri: the digest uri must be the Request-URI (SIPp's default leaves the user part out)
    argv = ["sipp", registrar, "-sf", str(SCENARIOS / scenario), "-s", service, "-au", user, "-ap", password,
            "-auth_uri", f"{service}@{registrar}",
            "-i", "127.0.0.1", "-p", str(_free_port("127.0.0.1")), "-mp", str(free_media_port()),
            "-m", "1", "-l", "1", "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(workdir / "sipp-errors.log"), "-trace_msg",
            "-message_file", str(workdir / "sipp-messages.log")]
    out = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=timeout + 10,
                         stdin=subprocess.DEVNULL)
    errors = workdir / "sipp-errors.log"
    out.errors = errors.read_text(errors="replace") if errors.exists() else ""  # type: ignore[attr-defined]
    return out
