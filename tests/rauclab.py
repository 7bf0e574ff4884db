"""A RAUC lab for tests without a VM: a CA of its own (images/os/signing.py), a system.conf trusting it and a
small signed bundle, as the OS image has them."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from images.os import signing


def rauc_lab(work: Path, patch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(bundle, system.conf) under `work`; skips where rauc, squashfs-tools or openssl are missing."""
    if not (shutil.which("rauc") and shutil.which("mksquashfs") and shutil.which("openssl")):
        pytest.skip("needs rauc, squashfs-tools and openssl")
    patch.setattr(signing, "LAB", work / "keys")
    for name in ("OFFICEBOX_RAUC_CERT", "OFFICEBOX_RAUC_KEY", "OFFICEBOX_RAUC_KEYRING"):
        patch.delenv(name, raising=False)
    rootfs = work / "rootfs.img"
    rootfs.write_bytes(b"OfficeBox root filesystem stand-in\n" * 1000)
    bundle = signing.rauc_bundle(rootfs, "9.8.7", "test-build", work / "update.raucb")
    conf = work / "system.conf"
    conf.write_text(f"[system]\ncompatible={signing.COMPATIBLE}\nbootloader=noop\n\n"
                    f"[keyring]\npath={signing.keyring()}\n\n"
                    f"[slot.rootfs.0]\ndevice={work / 'slotA'}\ntype=raw\nbootname=A\n")
    return bundle, conf
