"""Call accounting: tariffs (longest prefix, trunk's own first, increments rounded up), the cost column of
the call records (a store from before it keeps its rows), the sums per month/extension/trunk, and a real
call through a test carrier (a second PBX instance on 127.0.0.2) priced as its tariff says."""
import sqlite3
import time
from contextlib import ExitStack

import pytest
from pydantic import ValidationError

from appliance import schema
from services.pbx import accounting
from services.pbx.cdr import CallRecord, CdrStore
from services.pbx.config import Accounting, Tariff

from .baresip import Baresip, have_baresip
from .conftest import ALICE
from .pbxrunner import PbxRunner, config, user
from .test_trunks import wait

TARIFFS = [{"prefix": "6", "name": "Six", "per_minute": 0.5, "setup": 0.1, "increment": 60},
           {"prefix": "60", "name": "Sixty", "per_minute": 1.2, "setup": 0.05, "increment": 30}]


def test_increments_round_up_and_the_longest_prefix_wins():
    t = Tariff(prefix="06", per_minute=0.6, setup=0.2, increment=60)
    assert accounting.billed_seconds(1, 60) == 60 and accounting.billed_seconds(60.0, 60) == 60
    assert accounting.billed_seconds(60.4, 60) == 120 and accounting.billed_seconds(0, 60) == 0
    assert accounting.cost(t, 61) == pytest.approx(0.2 + 1.2) and accounting.cost(t, 0) == 0.0
    tariffs = [Tariff(prefix="0", per_minute=0.1), Tariff(prefix="06", per_minute=0.3),
               Tariff(prefix="06", per_minute=0.2, trunk="cheap"), Tariff(prefix="", per_minute=9)]
    rate = accounting.rater(Accounting(tariffs=tariffs))
    row = {"direction": "outbound", "dialled": "0612345678", "trunk": "main", "billsec": 30.0}
    assert rate(row) == pytest.approx(0.3)
    assert rate({**row, "trunk": "cheap"}) == pytest.approx(0.2)
    assert rate({**row, "dialled": "0145"}) == pytest.approx(0.1)
    assert rate({**row, "dialled": "999"}) == pytest.approx(9)
    assert rate({**row, "direction": "internal", "trunk": ""}) is None
    assert accounting.rater(Accounting())(row) is None  # no tariff: unrated


def test_configuration_errors_are_clear():
    with pytest.raises(ValidationError, match="two tariffs for prefix '06' on all trunks"):
        Accounting(tariffs=[Tariff(prefix="06"), Tariff(prefix="06")])
    with pytest.raises(ValidationError, match="increment"):
        Tariff(prefix="06", increment=0)
    with pytest.raises(ValidationError, match="currency"):
        schema.parse({"pbx": {"accounting": {"currency": "euro"}}})
    from services.pbx import PbxService
    cfg = schema.parse({"users": [user("alice", "201", "alicesecret1")],
                        "pbx": {"accounting": {"tariffs": [{"prefix": "0", "trunk": "nope"}],
                                               "budgets": {"zoe": 10}}}})
    errors = {e.path: e.message for e in PbxService.validate(None, cfg)}
    assert "unknown trunk 'nope'" in errors["pbx.accounting.tariffs.0.trunk"]
    assert "unknown user 'zoe'" in errors["pbx.accounting.budgets.zoe"]
    assert schema.parse({}).pbx.accounting.currency == "EUR"  # an old document is valid as it was


def test_a_store_from_before_the_cost_column_keeps_its_rows(tmp_path):
    path = tmp_path / "cdr.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("""CREATE TABLE cdr (id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT, direction TEXT,
            caller TEXT, caller_name TEXT, dialled TEXT, callee TEXT, trunk TEXT, start REAL, answer REAL,
            "end" REAL, duration REAL, billsec REAL, disposition TEXT, status INTEGER, transferred_to TEXT,
            rtp_a TEXT, rtp_b TEXT)""")
        db.execute("INSERT INTO cdr (call_id, direction, caller, dialled, trunk, start, billsec, disposition) "
                   "VALUES ('old', 'outbound', '201', '0612', 'main', 1000, 42, 'answered')")
    store = CdrStore(path)
    store.rate = accounting.rater(Accounting(tariffs=[Tariff(prefix="06", per_minute=1.0, setup=0.5)]))
    now = time.time()
    store.add(CallRecord(call_id="new", direction="outbound", caller="201", dialled="0612", trunk="main",
                         start=now - 70, answer=now - 61, end=now, disposition="answered"))
    old, new = sorted(store.query(), key=lambda r: r["id"])
    assert (old["call_id"], old["billsec"], old["cost"]) == ("old", 42, None)
    assert new["cost"] == pytest.approx(0.5 + 2.0)  # 61 s in minutes: 2 minutes
    [item] = accounting.usage(store.query(since=now - 100), "UTC")
    assert item["cost"] == pytest.approx(2.5) and item["extension"] == "201" and item["answered"] == 1


LINE = user("line", "5000", "linesecret99", "Office line")
REMOTE = user("remote", "6000", "remotesecret1", "Remote Customer")


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip(), reason="baresip is not installed")
def test_a_call_through_the_carrier_costs_what_its_tariff_says(tmp_path):
    with ExitStack() as stack:
        carrier = stack.enter_context(PbxRunner(tmp_path / "carrier", config([LINE, REMOTE]), host="127.0.0.2"))
        carrier_host = "127.0.0.2"
        box_cfg = config([ALICE], trunks=[{"name": "carrier", "host": carrier_host, "port": carrier.port,
                                           "username": "5000", "auth_password": LINE["sip_secret"],
                                           "registration": True, "register_expires": 120}],
                         routes=[{"name": "out", "prefix": "6", "trunks": ["carrier"]}],
                         accounting={"currency": "TWD", "tariffs": TARIFFS})
        box = stack.enter_context(PbxRunner(tmp_path / "box", box_cfg))
        wait(lambda: box.svc.trunks()[0]["registered"], what="trunk registration")
        alice = stack.enter_context(Baresip("alice", user="201", password=ALICE["sip_secret"],
                                            registrar=box.registrar))
        remote = stack.enter_context(Baresip("remote", user="6000", password=REMOTE["sip_secret"],
                                             registrar=carrier.registrar, addr="127.0.0.2"))
        alice.register()
        remote.register()
        alice.dial("6000")
        remote.answer(timeout=10)
        alice.wait_for("CALL_ESTABLISHED")
        time.sleep(2)
        alice.hangup()
        remote.wait_for("CALL_CLOSED")
        [row] = wait(lambda: box.svc.cdr_query(direction="outbound"), what="the call record")
        assert row["trunk"] == "carrier" and 1 < row["billsec"] < 30
        assert row["cost"] == pytest.approx(0.05 + 1.2 * 30 / 60)  # prefix 60 wins: setup + one 30 s increment
        [item] = box.svc.accounting_usage(0, time.time() + 60, "UTC")
        assert (item["extension"], item["trunk"], item["calls"]) == ("201", "carrier", 1)
        assert item["cost"] == pytest.approx(0.65)
        assert box.svc.accounting_spend(0) == {"201": pytest.approx(0.65)}
        assert all(r["cost"] is None for r in carrier.svc.cdr_query())  # inbound there: not rated
