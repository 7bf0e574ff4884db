import pytest

from appliance.context import Context

pytest_plugins = ["tests.asyncio_guard"]


@pytest.fixture
def ctx(tmp_path) -> Context:
    """A fresh lab-mode data directory."""
    return Context(tmp_path / "var", lab=True)
