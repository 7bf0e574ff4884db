import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from services.pbx.prompts import PromptLibrary

from .pbxrunner import PbxRunner, config, user

ALICE = user("alice", "201", "alicesecret1", "Alice Martin")
BOB = user("bob", "202", "bobsecret12", "Bob Durand")
CAROL = user("carol", "203", "carolsecret1", "Carol Petit")
DAVE = user("dave", "204", "davesecret12", "Dave Leroy", enabled=False)


@pytest.fixture
def pbx(tmp_path):
    """A PBX with alice (201), bob (202), carol (203) and a disabled dave (204) on a free loopback port;
    voicemail off (an unanswered call ends with its SIP status, not in a box)."""
    no_voicemail = {ext: {"voicemail": False} for ext in ("201", "202", "203")}
    with PbxRunner(tmp_path / "pbx", config([ALICE, BOB, CAROL, DAVE], extensions=no_voicemail)) as runner:
        yield runner


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="session")
def prompt_set(tmp_path_factory) -> Path:
    """The generated voice prompts (espeak-ng and sox: 10 to 20 s on two busy cores), made once for the
    session by the PromptLibrary itself; seed_prompts() puts them in a box's data folder."""
    return PromptLibrary(tmp_path_factory.mktemp("prompt-set"), "en").ensure()


def seed_prompts(prompt_set: Path, data_dir) -> Path:
    """Give the box at `data_dir` the session's generated set, where its PromptLibrary looks for it
    (cache/pbx/prompts/<fingerprint>: the same fingerprint, so the same catalogue, voices and espeak-ng):
    hard links (a copy across file systems), made aside and renamed into place as the library does.
    The box's ensure() then finds it made instead of generating it again; the files are those espeak-ng
    made (no audio is replaced), and uploads still go to the box's own state folder."""
    root = Path(data_dir) / "cache" / "pbx" / "prompts"
    target = root / prompt_set.name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".seeding-"))
    shutil.copytree(prompt_set, tmp / "set", copy_function=link)
    (tmp / "set").rename(target)
    tmp.rmdir()
    return target
