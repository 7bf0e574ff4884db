"""Find the running Dovecot master of this mail service (by the master.pid in its base_dir)."""
from __future__ import annotations

from pathlib import Path


def running_master(base_dir: Path, conf: str) -> int | None:
    """The pid of the Dovecot master started with `conf` whose master.pid is in base_dir, if it runs."""
    try:
        pid = int((base_dir / "master.pid").read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not argv or not argv[0].endswith(b"dovecot") or conf.encode() not in argv:
        return None
    return pid
