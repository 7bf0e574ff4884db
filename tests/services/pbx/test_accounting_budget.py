"""A user's monthly call budget: passing it mails the admin once (real SMTP into the box's mail service,
read back with imaplib), however often the notifier checks; the condition names the month."""
import time

import pytest

from appliance.clients import client_for
from appliance.notify import Notifier
from services.pbx import PbxService, accounting
from services.pbx.cdr import CallRecord, CdrStore
from tests.appliance import test_notify
from tests.appliance.test_isolation import until
from tests.appliance.test_notify import subjects
from tests.services.mail.harness import RunningMail, document, free_port, password_hash

ctx = test_notify.ctx  # the fixture: a data directory the mail service's vmail user reaches


def _call(store: CdrStore, caller: str, seconds: float) -> None:
    now = time.time()
    store.add(CallRecord(call_id=f"{caller}-{now}", direction="outbound", caller=caller, dialled="0612345678",
                         trunk="main", start=now - seconds - 1, answer=now - seconds, end=now, disposition="answered"))


@pytest.mark.slow
def test_a_passed_budget_mails_the_admin_once(ctx):
    admin = {"login": "alice", "full_name": "Alice A", "role": "admin", "password_hash": password_hash("alice")}
    doc = document([admin, {"login": "bob", "full_name": "Bob B", "extension": "202"},
                    {"login": "carol", "full_name": "Carol C", "extension": "203"}], lab_smtp_port=free_port())
    doc["system"]["admin_email"] = "alice@example.com"
    doc["pbx"] = {"trunks": [{"name": "main", "host": "192.0.2.1"}],
                  "accounting": {"tariffs": [{"prefix": "06", "per_minute": 1.0, "setup": 0.5}],
                                 "budgets": {"bob": 2.0, "carol": 100.0}}}
    mail = RunningMail(ctx, doc)
    try:
        pbx = PbxService(ctx)  # not running: its records are read from its store, as between restarts
        store = CdrStore(pbx.cdr_path)
        store.rate = accounting.rater(mail.config.pbx.accounting)
        notifier = Notifier(ctx, lambda: mail.config, lambda name: client_for(pbx if name == "pbx" else mail.service),
                            lambda: None, disk_threshold=100.1)
        _call(store, "202", 50)   # 1.50: within bob's budget
        _call(store, "203", 500)  # 9.50: within carol's
        store.flush()
        assert notifier.check() == [] and notifier.active() == []
        _call(store, "202", 30)   # 1.50 more: 3.00 > 2.00
        store.flush()
        [event] = notifier.check()
        month = time.strftime("%Y-%m", time.gmtime())
        assert event["key"] == f"budget:bob:{month}" and event["state"] == "started"
        expected = f"[box] Bob B passed the monthly call budget in {month}: 3.00 of 2.00 EUR"
        imap_port = mail.port("imap")
        assert until(lambda: subjects(imap_port), 20, "the budget mail") == [expected]
        _call(store, "202", 60)   # further calls this month: no new mail
        store.flush()
        assert notifier.check() == [] and notifier.check() == []
        time.sleep(1)
        assert subjects(imap_port) == [expected]
    finally:
        mail.stop()
