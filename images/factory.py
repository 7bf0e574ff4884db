"""Install a signed firmware bundle as the factory firmware of an OS image (run at image build time).

    python -m images.factory --bundle images/out/officebox-X.obfw --trust images/out --target $TARGET_DIR

The bundle is verified first (trusted: the keys in appliance/trusted-keys and in each --trust folder);
its tree goes to <target>/usr/lib/officebox/current, and the key that signed it to
<target>/etc/officebox/trusted-keys so the box accepts updates signed the same way.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from appliance.firmware import BUILTIN_KEYS, FirmwareError, Slots, load_public_keys, public_key_files, verify_bundle

FACTORY_DIR = Path("usr/lib/officebox")
KEYS_DIR = Path("etc/officebox/trusted-keys")


def install_factory(bundle: Path, target: Path, trust: list[Path]) -> dict:
    manifest, payload = verify_bundle(bundle, load_public_keys(BUILTIN_KEYS, *trust), "0", allow_downgrade=True)
    Slots(target / FACTORY_DIR).install(manifest, payload)
    keys = target / KEYS_DIR
    keys.mkdir(parents=True, exist_ok=True)
    signer = public_key_files(BUILTIN_KEYS, *trust)[manifest["key_id"]]
    shutil.copy(signer, keys / f"{manifest['key_id']}.pub")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images.factory", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--target", required=True, type=Path, help="the root filesystem being built")
    parser.add_argument("--trust", action="append", type=Path, default=[], help="a folder of *.pub keys")
    args = parser.parse_args(argv)
    try:
        manifest = install_factory(args.bundle, args.target, args.trust)
    except (FirmwareError, OSError) as exc:
        print(f"images.factory: {args.bundle}: {exc}", file=sys.stderr)
        return 1
    print(f"factory firmware {manifest['version']} (key {manifest['key_id']}) installed in "
          f"{args.target / FACTORY_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
