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
