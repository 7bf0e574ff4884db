"""Run a SIPp scenario (Debian `sip-tester`) as one authenticated caller against the PBX."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .baresip import _free_port

SCENARIOS = Path(__file__).parent / "sipp"


def have_sipp() -> bool:
    return shutil.which("sipp") is not None


def run_sipp(scenario: str, registrar: str, service: str, user: str, password: str, workdir: Path,
             timeout: float = 30.0) -> subprocess.CompletedProcess:
    """One call of `scenario` (a file in sipp/) to `service`; SIPp exits 0 when every step went as written."""
    # -auth_uri: the digest uri must be the Request-URI (SIPp's default leaves the user part out)
    argv = ["sipp", registrar, "-sf", str(SCENARIOS / scenario), "-s", service, "-au", user, "-ap", password,
            "-auth_uri", f"{service}@{registrar}",
            "-i", "127.0.0.1", "-p", str(_free_port("127.0.0.1")), "-mp", str(_free_port("127.0.0.1")),
            "-m", "1", "-l", "1", "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin",
            "-trace_err", "-error_file", str(workdir / "sipp-errors.log"), "-trace_msg",
            "-message_file", str(workdir / "sipp-messages.log")]
    out = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=timeout + 10,
                         stdin=subprocess.DEVNULL)
    errors = workdir / "sipp-errors.log"
    out.errors = errors.read_text(errors="replace") if errors.exists() else ""  # type: ignore[attr-defined]
    return out
