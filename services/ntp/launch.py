"""Start chronyd in the foreground for the supervisor.

    python -m services.ntp.launch <chrony.conf> <digest> [--no-clock]

chronyd cannot re-read its configuration, so the digest of the rendered file is in the argv: the
supervisor restarts chronyd when it changes. A pid file left by a chronyd that died is removed first
(chronyd refuses to start while its pid file names a live process). --no-clock: serve time only,
never set this machine's clock (lab mode, tests).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path


def stale_pidfile(conf: Path) -> Path | None:
    match = re.search(r"^pidfile (\S+)$", conf.read_text(), re.MULTILINE)
    if match is None:
        return None
    pidfile = Path(match.group(1))
    try:
        pid = int(pidfile.read_text().strip())
        alive = Path(f"/proc/{pid}/comm").read_text().strip() == "chronyd"
    except (OSError, ValueError):
        alive = False
    return None if alive else pidfile


def main(argv: list[str]) -> None:
    conf = Path(argv[0])
    pidfile = stale_pidfile(conf)
    if pidfile is not None:
        pidfile.unlink(missing_ok=True)
    command = ["chronyd", "-d", "-4", "-F", "1", "-f", str(conf)]
    if "--no-clock" in argv[2:]:
        command.insert(1, "-x")
    sys.stdout.flush()
    os.execvp("chronyd", command)


if __name__ == "__main__":
    main(sys.argv[1:])
