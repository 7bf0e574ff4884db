"""The OS image's disk: GPT with an EFI system partition (GRUB), root slots A and B, the data partition.

    1  esp     64 MiB   FAT: EFI/BOOT/BOOTX64.EFI (GRUB), grub.cfg (slot choice), grubenv (boot counts)
    2  rootA   1 GiB    the root filesystem (squashfs, read-only), kernel and initramfs inside
    3  rootB   1 GiB    the other slot: RAUC writes updates into the slot that is not running
    4  obdata  128 MiB  ext4, /var/lib/officebox; grows over the rest of the disk at first boot

The partition UUIDs are fixed: fstab, RAUC's system.conf, grub.cfg and the growth service name them.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

MIB = 1024 * 1024
PARTUUIDS = {
    "ESP": "0b0c0e5f-0000-4e5f-8000-0ff1ceb0e501",
    "A": "0b0c0e5f-0000-4a00-8000-0ff1ceb0e502",
    "B": "0b0c0e5f-0000-4b00-8000-0ff1ceb0e503",
    "DATA": "0b0c0e5f-0000-4da7-8000-0ff1ceb0e504",
}
TYPES = {"esp": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "root": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
         "linux": "0FC63DAF-8483-4772-8E79-3D69D8477DE4"}
PARTITIONS = [  # (name, PARTUUIDS key, type, size in MiB)
    ("esp", "ESP", "esp", 64), ("rootA", "A", "root", 1024), ("rootB", "B", "root", 1024),
    ("obdata", "DATA", "linux", 128),
]
SLOT_BYTES = 1024 * MIB
GRUB_MODULES = ["part_gpt", "fat", "squash4", "normal", "linux", "echo", "test", "regexp", "loadenv",
                "configfile", "gzio", "xzio", "all_video", "efi_gop", "serial", "terminal", "sleep",
                "reboot", "halt", "search"]
FIRST_GRUBENV = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}


def fill(text: str) -> str:
    """@PARTUUID_<name>@ in a configuration file -> the partition's UUID."""
    for name, uuid in PARTUUIDS.items():
        text = text.replace(f"@PARTUUID_{name}@", uuid)
    return text


def run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


def offsets() -> dict[str, tuple[int, int]]:
    """{partition name: (first byte, size in bytes)}: 1 MiB aligned, in table order."""
    start, found = MIB, {}
    for name, _, _, size in PARTITIONS:
        found[name] = (start, size * MIB)
        start += size * MIB
    return found


def esp_image(target: Path) -> Path:
    """The FAT file system of the EFI system partition: GRUB, its menu and its environment block."""
    here = Path(__file__).resolve().parent
    work = target.parent
    grub = work / "BOOTX64.EFI"
    run("grub-mkimage", "-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o", grub, *GRUB_MODULES)
    cfg = work / "grub.cfg"
    cfg.write_text(fill((here / "grub.cfg").read_text()))
    env = work / "grubenv"
    env.unlink(missing_ok=True)
    run("grub-editenv", env, "create")
    run("grub-editenv", env, "set", *(f"{k}={v}" for k, v in FIRST_GRUBENV.items()))
    target.unlink(missing_ok=True)
    size_kib = dict((n, s) for n, _, _, s in PARTITIONS)["esp"] * 1024
    run("mkfs.vfat", "-F", "32", "-n", "OBESP", "-C", target, size_kib)
    run("mmd", "-i", target, "::EFI", "::EFI/BOOT")
    for name in (grub, cfg, env):
        run("mcopy", "-i", target, name, f"::EFI/BOOT/{name.name}")
    return target


def data_image(target: Path) -> Path:
    target.unlink(missing_ok=True)
    size = dict((n, s) for n, _, _, s in PARTITIONS)["obdata"]
    run("mkfs.ext4", "-q", "-L", "obdata", target, f"{size}M")
    return target


def partition_table(disk: Path) -> None:
    lines = ["label: gpt", "unit: sectors", "first-lba: 2048"]
    for name, (start, size) in offsets().items():
        _, key, kind, _ = next(p for p in PARTITIONS if p[0] == name)
        lines.append(f"start={start // 512}, size={size // 512}, type={TYPES[kind]}, "
                     f"uuid={PARTUUIDS[key]}, name={name}")
    run("sfdisk", "--no-reread", "--no-tell-kernel", "-q", disk, input="\n".join(lines) + "\n")


def write_at(disk: Path, offset: int, source: Path) -> None:
    run("dd", f"if={source}", f"of={disk}", "bs=4M", f"seek={offset}", "oflag=seek_bytes", "conv=notrunc,sparse",
        "status=none")


def disk_image(rootfs: Path, target: Path, work: Path) -> Path:
    """The flashable disk: partition table, ESP, rootfs in slot A (B empty), an empty data partition."""
    if rootfs.stat().st_size > SLOT_BYTES:
        raise SystemExit(f"the root filesystem ({rootfs.stat().st_size} bytes) does not fit a {SLOT_BYTES}-byte slot")
    parts = offsets()
    last_start, last_size = list(parts.values())[-1]
    partial = target.parent / f"{target.name}.partial"
    partial.unlink(missing_ok=True)
    with open(partial, "wb") as out:
        out.truncate(last_start + last_size + MIB)  # + the backup GPT
    partition_table(partial)
    write_at(partial, parts["esp"][0], esp_image(work / "esp.img"))
    write_at(partial, parts["rootA"][0], rootfs)
    write_at(partial, parts["obdata"][0], data_image(work / "data.img"))
    partial.rename(target)
    return target
