"""Build the signed firmware bundle: `make image` -> images/out/officebox-<version>.obfw.

The signing key comes from $OFFICEBOX_SIGNING_KEY (the release key, kept off this repository); without
it a lab key is made once in images/out/ and its public half is trusted by the lab box (./var).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from appliance.firmware import build_bundle, new_signing_key

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "images" / "out"
CONTENT = ["appliance", "services", "webadmin", "deps", "pyproject.toml", "Makefile", "README.md"]


def payload_files() -> dict[str, Path]:
    listed = subprocess.run(["git", "ls-files", "-z", *CONTENT], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    return {name: ROOT / name for name in listed if name and (ROOT / name).is_file()}


def main() -> int:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    OUT.mkdir(parents=True, exist_ok=True)
    key = Path(os.environ.get("OFFICEBOX_SIGNING_KEY") or OUT / "lab-signing.key")
    if not key.exists():
        public = new_signing_key(key)
        lab_trust = ROOT / "var" / "trusted-keys"
        lab_trust.mkdir(parents=True, exist_ok=True)
        shutil.copy(public, lab_trust / public.name)
        print(f"made a lab signing key {key} (trusted by the lab box in {lab_trust})")
    target = OUT / f"officebox-{version}.obfw"
    manifest = build_bundle(payload_files(), version, key, target)
    print(f"{target}: firmware {version}, payload {manifest['payload_size']} bytes, "
          f"sha256 {manifest['payload_sha256'][:16]}..., key {manifest['key_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
