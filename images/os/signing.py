"""RAUC update bundles of the OS image: the signing key and certificate, and `rauc bundle`.

The release certificate and key come from $OFFICEBOX_RAUC_CERT / $OFFICEBOX_RAUC_KEY and the CA the
box trusts from $OFFICEBOX_RAUC_KEYRING (kept off this repository). Without them a lab CA and a
signing certificate are made once in images/out/rauc/ (like the application bundle's lab key).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

LAB = Path(__file__).resolve().parents[1] / "out" / "rauc"
COMPATIBLE = "officebox-x86_64"  # etc/rauc/system.conf: a bundle for another kind of box is refused


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def lab_keys() -> dict[str, Path]:
    keys = {"ca": LAB / "ca.cert.pem", "cert": LAB / "signing.cert.pem", "key": LAB / "signing.key.pem"}
    if all(p.exists() for p in keys.values()):
        return keys
    LAB.mkdir(parents=True, exist_ok=True)
    ca_key = LAB / "ca.key.pem"
    for key in (ca_key, keys["key"]):
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        key.chmod(0o600)
    run("openssl", "req", "-x509", "-new", "-key", ca_key, "-days", "3650", "-subj", "/CN=OfficeBox lab update CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", keys["ca"])
    csr = LAB / "signing.csr"
    run("openssl", "req", "-new", "-key", keys["key"], "-subj", "/CN=OfficeBox lab update signing", "-out", csr)
    ext = LAB / "signing.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", keys["ca"], "-CAkey", ca_key, "-CAcreateserial",
        "-days", "3650", "-extfile", ext, "-out", keys["cert"])
    return keys


def keyring() -> Path:
    return Path(os.environ["OFFICEBOX_RAUC_KEYRING"]) if os.environ.get("OFFICEBOX_RAUC_KEYRING") else lab_keys()["ca"]


def signer() -> tuple[Path, Path]:
    if os.environ.get("OFFICEBOX_RAUC_CERT"):
        return Path(os.environ["OFFICEBOX_RAUC_CERT"]), Path(os.environ["OFFICEBOX_RAUC_KEY"])
    keys = lab_keys()
    return keys["cert"], keys["key"]


def rauc_bundle(rootfs: Path, version: str, build_id: str, target: Path) -> Path:
    """A signed RAUC bundle carrying `rootfs` for the rootfs slot class (raw copy into the slot)."""
    stamp = target.parent / f"{target.name}.build"
    if target.exists() and stamp.exists() and stamp.read_text() == build_id:
        return target
    content = target.parent / f"{target.name}.content"
    subprocess.run(["rm", "-rf", str(content)], check=True)
    content.mkdir(parents=True)
    os.link(rootfs, content / "rootfs.img")
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={COMPATIBLE}\nversion={version}\nbuild={build_id}\n\n"
        "[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n")
    cert, key = signer()
    target.unlink(missing_ok=True)
    # the root filesystem is compressed already: the bundle's squashfs only carries it
    run("rauc", "bundle", "--cert", cert, "--key", key, "--mksquashfs-args=-noI -noId -noD -noF -noX", content, target)
    subprocess.run(["rm", "-rf", str(content)], check=True)
    stamp.write_text(build_id)
    return target
