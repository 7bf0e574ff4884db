"""The OS image tests: the image is built once (cached under /var/cache/officebox-image by a hash of its
inputs), with two more root filesystems as signed updates: 0.2.0 (a good one) and 0.3.0 (its appliance
fails to start)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.firmware import build_bundle
from images.build import payload_files
from tests.netns import have_netns

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["mmdebstrap", "mksquashfs", "rauc", "qemu-system-x86_64", "grub-mkimage", "sfdisk", "mkfs.vfat", "curl"]
missing = [t for t in TOOLS if shutil.which(t) is None]
needs_image_tools = pytest.mark.skipif(bool(missing) or not have_netns(),
                                       reason=f"needs root and {', '.join(missing) or 'network namespaces'}")
BROKEN_CLI = 'raise SystemExit("this appliance is broken on purpose (the fallback test)")\n'


# make test boots the image: boot, DHCP, a refused and a good update; make image-test
# (OFFICEBOX_IMAGE_TEST=full) adds the fallback from a broken update and a power cut.
FULL = os.environ.get("OFFICEBOX_IMAGE_TEST") == "full"
# make test builds with gzip, several times faster than the release's xz (images.os.build.COMPRESSION)
COMPRESSION = os.environ.get("OFFICEBOX_IMAGE_COMPRESSION", "xz" if FULL else "gzip")

def build(*args: str) -> dict:
    """images.os.build; returns its report (paths, sizes, seconds)."""
    done = subprocess.run([sys.executable, "-m", "images.os.build", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=3600, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                        "OFFICEBOX_IMAGE_COMPRESSION": COMPRESSION})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.rindex("\n{"):])


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict:
    """{"base": report, "good": report, "broken": report}: the image and two update bundles."""
    base = build()
    work = tmp_path_factory.mktemp("bundles")
    key = ROOT / "images" / "out" / "lab-signing.key"  # made by the base build (images.build)
    reports = {"base": base}
    updates = [("good", "0.2.0", {})]
    if FULL:  # make image-test: also an update whose appliance never starts
        updates.append(("broken", "0.3.0", {"appliance/cli.py": BROKEN_CLI}))
    for name, version, replace in updates:
        files = payload_files()
        for path, text in replace.items():
            files[path] = work / path.replace("/", "_")
            files[path].write_text(text)
        bundle = work / f"officebox-{version}.obfw"
        build_bundle(files, version, key, bundle)
        reports[name] = build("--bundle", str(bundle), "--trust", str(key.parent), "--name", f"test-{name}",
                              "--no-disk")
    return reports


