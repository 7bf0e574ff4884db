"""The flashable disk: a root filesystem with the factory firmware (images.factory + post-build.sh),
assembled by post-image.sh with genimage into a GPT disk, then grown at "first boot" by
systemd-repart with the image's own definition. Real tools on image files; the kernel and GRUB
binaries are the only inputs Buildroot would make that are stand-ins here."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from images.factory import install_factory

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "buildroot/board/officebox"
pytestmark = pytest.mark.skipif(not shutil.which("genimage"), reason="genimage is installed by make setup")


def run(*argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, **kw)


def partitions(image: Path) -> dict[str, dict]:
    table = json.loads(run("sfdisk", "--json", image).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    return {p["name"]: p for p in table["partitions"]}


def extract(image: Path, part: dict, dest: Path) -> Path:
    with open(image, "rb") as src, open(dest, "wb") as out:
        src.seek(part["start"] * 512)
        out.write(src.read(part["size"] * 512))
    return dest


@pytest.fixture(scope="module")
def disk(tmp_path_factory, signing):
    keys, bundle = signing
    work = tmp_path_factory.mktemp("disk")
    target, binaries = work / "target", work / "images"
    (target / "etc").mkdir(parents=True)
    (target / "etc/fstab").write_text("/dev/root / ext2 rw,noauto 0 1\n")
    (target / "etc/resolv.conf").symlink_to("../tmp/resolv.conf")  # as Buildroot's skeleton has it
    install_factory(bundle("0.1.0"), target, [keys])
    for _ in range(2):  # Buildroot runs post-build on every rebuild
        assert run(BOARD / "post-build.sh", target).returncode == 0
    (binaries / "efi-part/EFI/BOOT").mkdir(parents=True)
    (binaries / "efi-part/EFI/BOOT/bootx64.efi").write_bytes(b"stand-in for GRUB's EFI binary")
    (binaries / "bzImage").write_bytes(b"stand-in for the kernel")
    made = run("mkfs.ext4", "-q", "-L", "root", "-d", target, binaries / "rootfs.ext4", "96M")
    assert made.returncode == 0, made.stderr
    done = run(BOARD / "post-image.sh", binaries)
    assert done.returncode == 0, done.stderr
    return work, binaries / "officebox.img"


def test_disk_has_boot_root_and_data_partitions(disk):
    work, image = disk
    parts = partitions(image)
    assert list(parts) == ["boot", "root", "obdata"]
    assert parts["boot"]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI system partition
    boot = extract(image, parts["boot"], work / "boot.vfat")
    listing = run("mdir", "-i", boot, "-/", "::", env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    assert "bzImage" in listing.stdout and "BOOTX64" in listing.stdout.upper()
    grub = run("mtype", "-i", boot, "::EFI/BOOT/grub.cfg", env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    assert "root=PARTLABEL=root" in grub.stdout


def test_root_filesystem_carries_the_factory_firmware_and_mounts_the_data_partition(disk):
    work, image = disk
    root = extract(image, partitions(image)["root"], work / "root.ext4")
    cli = run("debugfs", "-R", "cat /usr/lib/officebox/current/appliance/cli.py", root)
    assert "def main" in cli.stdout
    manifest = json.loads(run("debugfs", "-R", "cat /usr/lib/officebox/current/MANIFEST.json", root).stdout)
    assert manifest["version"] == "0.1.0"
    assert run("debugfs", "-R", f"stat /etc/officebox/trusted-keys/{manifest['key_id']}.pub", root).returncode == 0
    fstab = run("debugfs", "-R", "cat /etc/fstab", root).stdout
    assert fstab.count("/var/lib/officebox") == 1 and "PARTLABEL=obdata" in fstab
    assert run("debugfs", "-R", "cat /etc/resolv.conf", root).stdout.startswith("nameserver 127.0.0.1\n")
    preset = run("debugfs", "-R", "cat /usr/lib/systemd/system-preset/80-officebox.preset", root).stdout
    assert "enable officebox.service" in preset
    data = extract(image, partitions(image)["obdata"], work / "data.ext4")
    assert "obdata" in run("dumpe2fs", "-h", data).stdout


def test_first_boot_grows_the_data_partition_over_the_disk(disk):
    work, image = disk
    grown = work / "grown.img"
    shutil.copyfile(image, grown)
    before = partitions(grown)
    os_size = 2 * 1024 ** 3
    with open(grown, "r+b") as f:
        f.truncate(os_size)  # the installer flashed it onto a bigger disk
    definitions = work / "repart.d"
    definitions.mkdir()
    shutil.copy(ROOT / "buildroot/package/officebox/50-officebox-data.conf", definitions)
    done = run("systemd-repart", "--dry-run=no", "--no-pager", f"--definitions={definitions}", grown)
    assert done.returncode == 0, done.stderr
    after = partitions(grown)
    for name in ("boot", "root"):
        assert after[name]["start"] == before[name]["start"] and after[name]["size"] == before[name]["size"]
    assert after["obdata"]["start"] == before["obdata"]["start"]
    assert after["obdata"]["size"] * 512 > os_size - (before["obdata"]["start"] + 64) * 512 - 2 * 1024 ** 2
