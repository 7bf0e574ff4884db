import pytest

from appliance.context import Context
from tests.netns import Lab, needs_netns


@pytest.fixture
def box_ctx(tmp_path) -> Context:
    """An appliance (not lab) context: the services bind to the test namespace's interfaces."""
    return Context(tmp_path / "var", lab=False)


@pytest.fixture
def lan():
    """box <-> pc over one veth pair; the pc side has no address (the DHCP client gets one)."""
    with Lab() as lab:
        box, pc = lab.host("box"), lab.host("pc")
        box_if, pc_if = lab.link(box, "10.77.0.1/24", pc, None)
        yield lab, box, pc, box_if, pc_if


__all__ = ["needs_netns"]
