import shutil
import tempfile
from pathlib import Path

import pytest

from appliance.apply import ApplyEngine
from appliance.store import ConfigStore
from tests.appliance.probe_service import ProbeService


@pytest.fixture
def engine(ctx):
    store = ConfigStore(ctx.db_path)
    engine = ApplyEngine(ctx, store, {"probe": ProbeService(ctx)})
    engine.apply({}, "system", "factory configuration")
    yield engine
    store.close()


def set_company(name):
    def mutate(doc):
        doc["system"]["company_name"] = name
    return mutate


@pytest.fixture
def data():
    """A data directory for an appliance with service processes, outside pytest's tmp root: each pytest
    session chmods that 0700, which masks the ACL entries the appliance gives the service users on the
    way to their folders (appliance/serviceusers.py)."""
    top = Path(tempfile.mkdtemp(prefix="ob-data-"))
    yield top / "var"
    shutil.rmtree(top, ignore_errors=True)
