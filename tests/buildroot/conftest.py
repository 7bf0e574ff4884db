from pathlib import Path

import pytest

from appliance.firmware import build_bundle, new_signing_key
from images.build import payload_files


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    """A signing key in a folder of its own (its .pub beside it) and a bundle maker."""
    keys = tmp_path_factory.mktemp("keys")
    key = keys / "test-signing.key"
    new_signing_key(key)

    def bundle(version: str, replace: dict[str, str] | None = None) -> Path:
        files = payload_files()
        for name, text in (replace or {}).items():
            changed = keys / f"{version}-{name.replace('/', '_')}"
            changed.write_text(text)
            files[name] = changed
        target = keys / f"officebox-{version}.obfw"
        build_bundle(files, version, key, target)
        return target

    return keys, bundle
