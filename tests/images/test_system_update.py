"""The whole-system update path without a VM: real RAUC bundles (images.os.signing) checked by the real
`rauc info` against a keyring, the CLI's answer off the OS image, and the web-admin-up mark."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import firmware
from images.os import signing
from tests.rauclab import rauc_lab

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (shutil.which("rauc") and shutil.which("mksquashfs") and shutil.which("openssl")),
                                reason="needs rauc, squashfs-tools and openssl")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, monkeypatch_module):
    """A lab CA of its own, a system.conf trusting it, a small signed bundle."""
    work = tmp_path_factory.mktemp("rauc")
    bundle, conf = rauc_lab(work, monkeypatch_module)
    return work, bundle, conf


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_a_signed_bundle_verifies(lab):
    _, bundle, conf = lab
    assert firmware.SystemUpdate(conf).verify(bundle) == {"version": "9.8.7", "compatible": signing.COMPATIBLE}


def test_a_tampered_bundle_is_refused(lab):
    work, bundle, conf = lab
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 0xFF
    tampered = work / "tampered.raucb"
    tampered.write_bytes(data)
    with pytest.raises(firmware.FirmwareError, match="refused: signature verification failed"):
        firmware.SystemUpdate(conf).verify(tampered)


def test_a_bundle_signed_by_another_ca_is_refused(lab, tmp_path):
    work, bundle, conf = lab
    other = tmp_path / "other.conf"
    stranger = tmp_path / "stranger-ca.pem"
    key = tmp_path / "stranger.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-subj", "/CN=stranger", "-days", "1", "-out", stranger],
                   check=True, capture_output=True)
    other.write_text(conf.read_text().replace(str(signing.keyring()), str(stranger)))
    with pytest.raises(firmware.FirmwareError, match="refused"):
        firmware.SystemUpdate(other).verify(bundle)


def test_off_the_os_image_the_cli_says_so(tmp_path, lab):
    _, bundle, _ = lab
    done = subprocess.run([sys.executable, "-m", "appliance.cli", "--data-dir", str(tmp_path), "firmware", "install",
                           str(bundle)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if firmware.SystemUpdate().available():
        pytest.skip("this machine is an OfficeBox OS image")
    assert done.returncode == 1
    assert "whole-system updates need the OfficeBox OS image" in done.stderr


def test_mark_good_tells_the_os_image_when_it_runs_on_one(tmp_path, monkeypatch):
    marker = tmp_path / "run-officebox" / "web-admin-up"
    monkeypatch.setattr(firmware, "WEB_ADMIN_UP", marker)
    firmware.BoxFirmware(tmp_path / "data").mark_good()
    assert not marker.exists()  # not on the OS image: nothing to tell
    marker.parent.mkdir()
    firmware.BoxFirmware(tmp_path / "data").mark_good()
    assert marker.exists()


def test_a_bundle_for_another_kind_of_box_is_refused(lab, tmp_path):
    _, bundle, conf = lab
    other = tmp_path / "other.conf"
    other.write_text(conf.read_text().replace(f"compatible={signing.COMPATIBLE}", "compatible=another-box"))
    with pytest.raises(firmware.FirmwareError, match="is for 'officebox-x86_64' boxes, this one is 'another-box'"):
        firmware.SystemUpdate(other).verify(bundle)


def test_the_refusal_gives_rauc_s_reason_not_openssl_codes():
    output = ("rauc-Message: 10:13:41.731: Verifying bundle signature... \n"
              "signature verification failed: error:1700009E:CMS routines::verification failure\n"
              "802FE8A8937F0000:error:1700006D:CMS routines:CMS_verify:content verify error:cms_smime.c:455:\n")
    reason = firmware.rauc_reason(output)
    assert reason == "signature verification failed: error:1700009E:CMS routines::verification failure"
