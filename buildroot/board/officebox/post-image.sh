#!/bin/sh
# Buildroot post-image script; $1 is the images folder (bzImage, rootfs.ext4, efi-part/ from GRUB).
# Writes $1/officebox.img, the disk image the installer flashes.
set -eu
BINARIES=$1
BOARD=$(dirname "$0")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$BINARIES/efi-part/EFI/BOOT" "$TMP/root"
cp "$BOARD/grub.cfg" "$BINARIES/efi-part/EFI/BOOT/grub.cfg"
genimage --config "$BOARD/genimage.cfg" --rootpath "$TMP/root" --tmppath "$TMP/work" \
    --inputpath "$BINARIES" --outputpath "$BINARIES"
