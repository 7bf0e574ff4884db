"""Start Dovecot in the foreground for the supervisor: end a Dovecot left running by an appliance that
died (its master.pid in our base_dir), then exec `dovecot -F -c <dovecot.conf>`.

    python -m services.mail.launch <dovecot.conf> <base_dir>
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from services.mail.dovecotmaster import running_master

STALE_WAIT = 10.0


def end_stale(base_dir: Path, conf: str) -> None:
    pid = running_master(base_dir, conf)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STALE_WAIT
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> None:
    conf, base_dir = argv[0], Path(argv[1])
    end_stale(base_dir, conf)
    sys.stdout.flush()
    os.execvp("dovecot", ["dovecot", "-F", "-c", conf])


if __name__ == "__main__":
    main(sys.argv[1:])
