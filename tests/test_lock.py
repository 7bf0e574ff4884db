"""deps/requirements.lock: every pin of pyproject.toml is in it at the same version with a hash, and the
environment the tests run in is exactly the locked one (so `make setup` really installed it)."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^([a-z0-9.-]+)==(\S+) \\\n    --hash=sha256:([0-9a-f]{64})$", re.M)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    text = (ROOT / "deps" / "requirements.lock").read_text()
    entries = {name: version for name, version, _ in ENTRY.findall(text)}
    assert len(entries) == text.count("=="), "every lock entry has exactly one sha256 hash"
    return entries


def test_every_pin_is_locked_at_its_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = list(project["project"]["dependencies"])
    pins += [p for group in project["project"]["optional-dependencies"].values() for p in group]
    pins += [f"{k}=={v}" for k, v in project["tool"]["officebox"]["lock"].items()]
    lock = locked()
    for pin in pins:
        name, version = pin.split("==")
        assert lock.get(canonical(name)) == version, f"{pin} is not in deps/requirements.lock (python3 deps/lock.py)"


def test_installed_environment_is_the_locked_one():
    lock = locked()
    for name, version in lock.items():
        assert metadata.version(name) == version, f"{name} {metadata.version(name)} installed, {version} locked"
