"""Signed firmware bundles: a good one installs into a slot; every kind of bad one is refused."""
import io
import json
import os
import tarfile

import pytest

from appliance import firmware
from appliance.firmware import FirmwareError


@pytest.fixture
def signer(tmp_path):
    key = tmp_path / "keys" / "signing.key"
    firmware.new_signing_key(key)
    return key, firmware.load_public_keys(key.parent)


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "appliance").mkdir(parents=True)
    (src / "appliance" / "__init__.py").write_text("VERSION = 'new'\n")
    (src / "pyproject.toml").write_text("[project]\nname='officebox'\n")
    return {"appliance/__init__.py": src / "appliance" / "__init__.py", "pyproject.toml": src / "pyproject.toml"}


def build(tmp_path, tree, signer, version="1.2.0", name="fw.obfw"):
    target = tmp_path / name
    firmware.build_bundle(tree, version, signer[0], target)
    return target


def members(path):
    with tarfile.open(path) as tar:
        return {i.name: tar.extractfile(i).read() for i in tar}


def repack(path, target, changed):
    with tarfile.open(target, "w") as tar:
        for name, data in {**members(path), **changed}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def test_good_bundle_verifies_and_installs_into_a_slot(tmp_path, tree, signer):
    bundle = build(tmp_path, tree, signer)
    manifest, payload = firmware.verify_bundle(bundle, signer[1], running_version="1.1.0")
    slots = firmware.Slots(tmp_path / "fw")
    slots.install(manifest, payload)
    assert slots.active() == "1.2.0"
    assert (tmp_path / "fw" / "current" / "appliance" / "__init__.py").read_text() == "VERSION = 'new'\n"
    newer = build(tmp_path, tree, signer, version="1.3.0", name="fw2.obfw")
    slots.install(*firmware.verify_bundle(newer, signer[1], running_version="1.2.0"))
    assert (slots.active(), slots.previous()) == ("1.3.0", "1.2.0")
    assert slots.rollback() == "1.2.0" and slots.active() == "1.2.0"


def test_altered_payload_is_refused(tmp_path, tree, signer):
    bundle = build(tmp_path, tree, signer)
    payload = bytearray(members(bundle)["payload.tar.gz"])
    payload[len(payload) // 2] ^= 0xFF
    bad = repack(bundle, tmp_path / "bad.obfw", {"payload.tar.gz": bytes(payload)})
    with pytest.raises(FirmwareError, match="checksum mismatch"):
        firmware.verify_bundle(bad, signer[1], "1.0.0")


def test_altered_manifest_breaks_the_signature(tmp_path, tree, signer):
    bundle = build(tmp_path, tree, signer)
    manifest = json.loads(members(bundle)["manifest.json"])
    manifest["version"] = "9.9.9"
    bad = repack(bundle, tmp_path / "bad.obfw", {"manifest.json": json.dumps(manifest, indent=1).encode()})
    with pytest.raises(FirmwareError, match="signature is invalid"):
        firmware.verify_bundle(bad, signer[1], "1.0.0")


def test_untrusted_key_is_refused(tmp_path, tree, signer):
    other = tmp_path / "other" / "signing.key"
    firmware.new_signing_key(other)
    bundle = build(tmp_path, tree, (other, None))
    with pytest.raises(FirmwareError, match="not signed by a trusted key"):
        firmware.verify_bundle(bundle, signer[1], "1.0.0")


def test_truncated_and_foreign_files_are_refused(tmp_path, tree, signer):
    bundle = build(tmp_path, tree, signer)
    truncated = tmp_path / "short.obfw"
    truncated.write_bytes(bundle.read_bytes()[:1500])
    with pytest.raises(FirmwareError, match="corrupt or truncated|incomplete"):
        firmware.verify_bundle(truncated, signer[1], "1.0.0")
    extra = repack(bundle, tmp_path / "extra.obfw", {"evil.sh": b"rm -rf /"})
    with pytest.raises(FirmwareError, match="unexpected entry"):
        firmware.verify_bundle(extra, signer[1], "1.0.0")


def test_downgrade_needs_to_be_asked_for(tmp_path, tree, signer):
    bundle = build(tmp_path, tree, signer, version="1.0.0")
    with pytest.raises(FirmwareError, match="older than the running"):
        firmware.verify_bundle(bundle, signer[1], "1.1.0")
    assert firmware.verify_bundle(bundle, signer[1], "1.1.0", allow_downgrade=True)[0]["version"] == "1.0.0"


def test_payload_with_unsafe_paths_is_never_unpacked(tmp_path, signer):
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    bundle = build(tmp_path, {"../escape.txt": evil}, signer)
    manifest, payload = firmware.verify_bundle(bundle, signer[1], "1.0.0")
    with pytest.raises(FirmwareError, match="unsafe entry"):
        firmware.Slots(tmp_path / "fw").install(manifest, payload)
    assert not (tmp_path / "fw" / "escape.txt").exists() and firmware.Slots(tmp_path / "fw").active() is None


def test_an_installed_tree_is_readable_by_the_service_users_under_the_units_umask(tmp_path, tree, signer):
    """officebox.service runs with UMask=0077, and the service processes (their own users) import the
    code from the active slot: an application update must leave it readable (it is signed, not secret)."""
    bundle = build(tmp_path, tree, signer)
    old = os.umask(0o077)
    try:
        firmware.Slots(tmp_path / "fw").install(*firmware.verify_bundle(bundle, signer[1], running_version="1.1.0"))
    finally:
        os.umask(old)
    slot = (tmp_path / "fw" / "current").resolve()
    for path in [slot, *slot.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path.relative_to(slot)}: {oct(mode)}"
