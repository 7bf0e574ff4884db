"""Signed firmware bundles: build, verify, install into an A/B slot, roll back.

A bundle is a tar with exactly three members:
  manifest.json   format, version, creation time, payload name, size and SHA-256, signing key id
  manifest.sig    Ed25519 signature of manifest.json by a trusted key
  payload.tar.gz  the software tree (appliance/, services/, webadmin/, pyproject.toml...)
The box refuses, before writing anything, a bundle that is truncated, not signed by a trusted key,
altered after signing, or older than the running firmware (unless a downgrade is asked for).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.fsutil import atomic_symlink, atomic_write, fsync_dir

FORMAT = "officebox-firmware"
FORMAT_VERSION = 1
MEMBERS = ("manifest.json", "manifest.sig", "payload.tar.gz")
MAX_BUNDLE = 512 * 1024 * 1024
BUILTIN_KEYS = Path(__file__).with_name("trusted-keys")
SYSTEM_KEYS = Path("/etc/officebox/trusted-keys")  # put there by the OS image (buildroot/package/officebox)
BOOT_ATTEMPTS = "boot-attempts"  # counted by the box's launcher (officebox-boot), cleared once up
ROLLED_BACK = "rolled-back"  # the launcher rolled a firmware back after it failed to start
WEB_ADMIN_UP = Path("/run/officebox/web-admin-up")  # on the OS image: its root slot is marked good then
RAUC_CONFIG = Path("/etc/rauc/system.conf")  # the OS image's whole-system updates (images/os)
SYSTEM_UPDATE_TIMEOUT = 1800


class FirmwareError(Exception):
    """The bundle is refused; the message says why, for the admin."""


def parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        raise FirmwareError(f"bad version number {text!r}") from None


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_signing_key(private_path: Path) -> Path:
    """Create an Ed25519 signing key (0600) and its public key beside it (.pub, base64 raw)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(private_path, pem, mode=0o600)
    public_path = private_path.with_suffix(".pub")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    atomic_write(public_path, base64.b64encode(raw).decode() + "\n")
    return public_path


def read_public_key(path: Path) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(Path(path).read_text().strip()))
    except (ValueError, TypeError, OSError):
        return None


def public_key_files(*folders: Path) -> dict[str, Path]:
    """{key id: file} of the readable *.pub keys in these folders."""
    found = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.pub")) if Path(folder).is_dir() else []:
            public = read_public_key(path)
            if public is not None:
                found[key_id(public)] = path
    return found


def load_public_keys(*folders: Path) -> dict[str, Ed25519PublicKey]:
    return {kid: read_public_key(path) for kid, path in public_key_files(*folders).items()}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def build_bundle(files: dict[str, Path], version: str, signing_key: Path, target: Path) -> dict:
    """Pack `files` ({path in payload: source file}) into a signed bundle at `target`."""
    parse_version(version)
    key = serialization.load_pem_private_key(Path(signing_key).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise FirmwareError("the signing key must be an Ed25519 key")
    created = time.time()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        for name, source in sorted(files.items()):
            _add(tar, name, Path(source).read_bytes(), created)
    data = payload.getvalue()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": version, "created": created,
        "payload": "payload.tar.gz", "payload_size": len(data),
        "payload_sha256": hashlib.sha256(data).hexdigest(), "key_id": key_id(key.public_key()),
    }
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with tarfile.open(target, "w") as tar:
        _add(tar, "manifest.json", manifest_bytes, created)
        _add(tar, "manifest.sig", key.sign(manifest_bytes), created)
        _add(tar, "payload.tar.gz", data, created)
    return manifest


def verify_bundle(path: Path, trusted: dict[str, Ed25519PublicKey], running_version: str,
                  allow_downgrade: bool = False) -> tuple[dict, bytes]:
    """Return (manifest, payload) of a bundle that passes every check, or raise FirmwareError."""
    if Path(path).stat().st_size > MAX_BUNDLE:
        raise FirmwareError("the file is too large to be an OfficeBox firmware")
    try:
        with tarfile.open(path, "r:") as tar:
            members = {}
            for info in tar:
                if info.name not in MEMBERS or not info.isfile() or info.name in members:
                    raise FirmwareError(f"unexpected entry {info.name!r}: not an OfficeBox firmware")
                members[info.name] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FirmwareError(f"the file is not a readable OfficeBox firmware (corrupt or truncated): {exc}") from None
    if set(members) != set(MEMBERS):
        raise FirmwareError("the firmware is incomplete (corrupt or truncated)")
    manifest_bytes = members["manifest.json"]
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise FirmwareError("the firmware manifest is unreadable") from None
    public = trusted.get(str(manifest.get("key_id")))
    if public is None:
        raise FirmwareError("the firmware is not signed by a trusted key: refused")
    try:
        public.verify(members["manifest.sig"], manifest_bytes)
    except InvalidSignature:
        raise FirmwareError("the firmware signature is invalid: the file was altered after signing") from None
    if manifest.get("format") != FORMAT or int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise FirmwareError("this firmware format is not supported by the running firmware")
    payload = members["payload.tar.gz"]
    if len(payload) != manifest["payload_size"] or hashlib.sha256(payload).hexdigest() != manifest["payload_sha256"]:
        raise FirmwareError("the firmware payload is corrupt or was altered (checksum mismatch)")
    if not allow_downgrade and parse_version(manifest["version"]) < parse_version(running_version):
        raise FirmwareError(f"firmware {manifest['version']} is older than the running {running_version}; "
                            "a downgrade must be asked for explicitly")
    return manifest, payload


def _readable(tree: Path) -> None:
    """The code is signed, not secret: the service processes (their own users) must import it, whatever
    umask the appliance runs under (officebox.service: 0077)."""
    for folder, _dirs, files in os.walk(tree):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


class Slots:
    """Installed firmware trees under <root>/slots/<version>; <root>/current points at the active one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "slots").mkdir(parents=True, exist_ok=True)

    def active(self) -> str | None:
        link = self.root / "current"
        return link.readlink().name if link.is_symlink() else None

    def previous(self) -> str | None:
        path = self.root / "previous"
        return path.read_text().strip() if path.exists() else None

    def install(self, manifest: dict, payload: bytes) -> Path:
        version = manifest["version"]
        staging = self.root / "slots" / f".{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
            for info in tar:
                name = PurePosixPath(info.name)
                if not info.isfile() or name.is_absolute() or ".." in name.parts:
                    raise FirmwareError(f"the firmware payload has an unsafe entry {info.name!r}")
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(info).read())
        atomic_write(staging / "MANIFEST.json", json.dumps(manifest, indent=1))
        _readable(staging)
        fsync_dir(staging)
        final = self.root / "slots" / version
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        self._switch(version)
        return final

    def _switch(self, version: str) -> None:
        old = self.active()
        if old and old != version:
            atomic_write(self.root / "previous", old)
        atomic_symlink(f"slots/{version}", self.root / "current")
        for slot in (self.root / "slots").iterdir():  # keep the active and the previous tree only
            if slot.name not in (version, old):
                shutil.rmtree(slot, ignore_errors=True)

    def rollback(self) -> str:
        previous = self.previous()
        if not previous or not (self.root / "slots" / previous).is_dir():
            raise FirmwareError("there is no previous firmware to go back to")
        self._switch(previous)
        return previous


class BoxFirmware:
    """The firmware of one box (its data directory): what runs, what is trusted, install and roll back.
    Shared by `officebox firmware` and the web admin."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.slots = Slots(self.data_dir / "firmware")

    def running(self) -> str:
        from appliance import __version__
        return self.slots.active() or __version__

    def verify(self, path: Path, allow_downgrade: bool = False) -> tuple[dict, bytes]:
        trusted = load_public_keys(BUILTIN_KEYS, SYSTEM_KEYS, self.data_dir / "trusted-keys")
        return verify_bundle(Path(path), trusted, self.running(), allow_downgrade)

    def install(self, path: Path, allow_downgrade: bool = False) -> dict:
        manifest, payload = self.verify(path, allow_downgrade)
        self.slots.install(manifest, payload)
        for name in (BOOT_ATTEMPTS, ROLLED_BACK):  # a new firmware gets its own tries
            (self.slots.root / name).unlink(missing_ok=True)
        return manifest

    def mark_good(self) -> None:
        """The running firmware came up: the launcher's failed-start count starts again from zero."""
        (self.slots.root / BOOT_ATTEMPTS).unlink(missing_ok=True)
        if WEB_ADMIN_UP.parent.is_dir():  # the OS image (images/os): officebox-slot-good.path takes it
            atomic_write(WEB_ADMIN_UP, f"{time.time():.0f}\n")


def rauc_reason(output: str) -> str:
    """RAUC's own reason from its output: its progress messages and OpenSSL's code lines left out."""
    import re

    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("rauc-Message:")
             and not re.match(r"^[0-9A-F]{8,}:error:", ln)]
    failed = [ln for ln in lines if "fail" in ln.lower() or "error" in ln.lower()]
    return (failed or lines or ["rauc failed"])[0]


class SystemUpdate:
    """Whole-system updates on the OS image: RAUC checks the signed update file (.raucb) and writes its
    root filesystem into the root slot that is not running; the box starts it at the next restart and
    falls back to the running one if it does not bring the web admin up (images/os/grub.cfg)."""

    def __init__(self, config: Path = RAUC_CONFIG) -> None:
        self.config = Path(config)

    def available(self) -> bool:
        return self.config.exists() and shutil.which("rauc") is not None

    def _rauc(self, *args: str, timeout: float = 60) -> str:
        if not self.available():
            raise FirmwareError("whole-system updates need the OfficeBox OS image (RAUC is not set up here)")
        try:
            done = subprocess.run(["rauc", f"--conf={self.config}", *args], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FirmwareError(f"rauc {args[0]} did not finish in {timeout:.0f} s") from None
        if done.returncode != 0:
            raise FirmwareError(f"the update was refused: {rauc_reason(done.stderr + done.stdout)}")
        return done.stdout

    def status(self) -> dict:
        """{"booted": "A", "slots": {"A": {"state": "booted", "good": True, "version": ...}, ...}}"""
        raw = json.loads(self._rauc("status", "--detailed", "--output-format=json"))
        slots = {}
        for entry in raw.get("slots", []):
            for info in entry.values():
                if info.get("bootname"):
                    bundle = (info.get("slot_status") or {}).get("bundle") or {}
                    slots[info["bootname"]] = {"state": info.get("state"), "good": info.get("boot_status") == "good",
                                               "version": bundle.get("version")}
        return {"booted": raw.get("booted"), "primary": raw.get("boot_primary"), "slots": slots}

    def verify(self, path: Path) -> dict:
        """The update's manifest once its signature checked out (`rauc info` verifies it) and it is
        made for this kind of box."""
        import configparser

        info = json.loads(self._rauc("info", "--output-format=json", str(Path(path).resolve())))
        system = configparser.ConfigParser()
        system.read(self.config)
        ours = system.get("system", "compatible", fallback=None)
        if info.get("compatible") != ours:
            raise FirmwareError(f"the update is for {info.get('compatible')!r} boxes, this one is {ours!r}: refused")
        return {"version": info.get("version"), "compatible": info.get("compatible")}

    def install(self, path: Path) -> str:
        """Check and write the update into the other slot; RAUC refuses a bad one before writing."""
        path = Path(path).resolve()
        if not path.is_file():
            raise FirmwareError(f"{path}: no such update file")
        self._rauc("install", str(path), timeout=SYSTEM_UPDATE_TIMEOUT)
        return path.name
