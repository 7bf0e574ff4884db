import asyncio

import pytest

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
