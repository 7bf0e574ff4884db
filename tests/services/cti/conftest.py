import random

import pytest

from appliance import schema
from appliance.context import Context
from appliance.users import hash_password
from services.cti import SERVICE as CTI
from tests.services.pbx.conftest import ALICE, BOB, CAROL
from tests.services.pbx.pbxrunner import PbxRunner

PASSWORDS = {"alice": "alice-web-pass", "bob": "bob-web-pass1", "carol": "carol-web-pass"}
APP_PASSWORD = "crm-connector-pass"


def document(**cti) -> schema.CoreConfig:
    users = [{**u, "password_hash": hash_password(PASSWORDS[u["login"]])} for u in (ALICE, BOB, CAROL)]
    base = 21000 + 200 * random.randrange(45)
    cti = {"enabled": True, "lab_tcp_port": 0, "lab_tls_port": 0,
           "accounts": [{"name": "crm", "password_hash": hash_password(APP_PASSWORD), "scope": ["202", "203"]}],
           **cti}
    return schema.parse({"users": users, "cti": cti,
                         "pbx": {"lab_sip_port": 0, "lab_rtp_port_min": base, "lab_rtp_port_max": base + 199}})


class CtiRunner(PbxRunner):
    """The CTI service on an event loop thread of its own (PbxRunner's), on the PBX's bus (the same
    data directory)."""

    def __init__(self, ctx: Context, cfg: schema.CoreConfig, svc=None) -> None:
        super().__init__(ctx.data_dir, cfg)
        self.ctx = ctx
        self.svc = svc or CTI(ctx)

    @property
    def tcp(self) -> int:
        return self.svc.server.ports["tcp"]

    @property
    def tls(self) -> int:
        return self.svc.server.ports["tls"]


class Box:
    def __init__(self, pbx: PbxRunner, cti: CtiRunner) -> None:
        self.pbx, self.cti = pbx, cti


@pytest.fixture
def box(tmp_path):
    cfg = document()
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti:
        yield Box(pbx, cti)
