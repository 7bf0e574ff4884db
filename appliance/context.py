"""Where the appliance keeps its data and how services should bind, on the box and in lab mode."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BOX_DATA_DIR = Path("/var/lib/officebox")


@dataclass
class Context:
    """Runtime facts a service needs; one per running appliance.

    lab: run on this machine without touching the host's networking; every service binds to
    loopback on unprivileged ports (each section has a lab_* port or the service picks one).
    """

    data_dir: Path
    lab: bool = False

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        for sub in ("etc", "state", "run", "log"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        if self.data_dir.stat().st_uid == os.geteuid():  # a service's own process passes, owns nothing
            # 0700; with service users' traverse-only ACL entries (appliance/acl.py), a mask that keeps them
            try:
                keep = 0o010 if "system.posix_acl_access" in os.listxattr(self.data_dir) else 0
            except OSError:  # a file system without extended attributes
                keep = 0
            self.data_dir.chmod(0o700 | keep)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "officebox.db"

    @property
    def etc_root(self) -> Path:
        return self.data_dir / "etc"

    def etc_dir(self, service: str) -> Path:
        """Stable path of a service's rendered files (follows the applied generation)."""
        return self.etc_root / "current" / service

    def state_dir(self, service: str) -> Path:
        """A service's own persistent data (leases, call records, mailboxes...)."""
        path = self.data_dir / "state" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run_dir(self, service: str) -> Path:
        """Sockets and pid files; may be wiped at boot."""
        path = self.data_dir / "run" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_dir(self, service: str) -> Path:
        path = self.data_dir / "log" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bind_host(self, box_address: str) -> str:
        """The address to listen on: the box's own address, or loopback in lab mode."""
        return "127.0.0.1" if self.lab else box_address
