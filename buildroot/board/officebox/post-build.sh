#!/bin/sh
# Buildroot post-build script; $1 is the target root filesystem. Idempotent (rebuilds run it again).
set -eu
TARGET=$1
mkdir -p "$TARGET/var/lib/officebox" "$TARGET/usr/lib/systemd/system-preset"
grep -qs ' /var/lib/officebox ' "$TARGET/etc/fstab" ||
    echo "PARTLABEL=obdata /var/lib/officebox ext4 defaults,noatime,x-systemd.growfs 0 2" >> "$TARGET/etc/fstab"
# the box resolves through its own DNS forwarder (which follows the WAN's resolvers): squid, mail, NTP
rm -f "$TARGET/etc/resolv.conf"
printf 'nameserver 127.0.0.1\noptions edns0\n' > "$TARGET/etc/resolv.conf"
cat > "$TARGET/usr/lib/systemd/system-preset/80-officebox.preset" <<PRESET
enable officebox.service
enable systemd-repart.service
enable systemd-timesyncd.service
PRESET
