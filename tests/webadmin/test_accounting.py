"""Call accounting pages: the tariffs form through the real apply engine (clear field errors, nothing saved
when refused), a user's department on the user form, and the cost reports per user, department, trunk and
month from call records priced by the PBX's own store: table, SVG chart, CSV (formula cells escaped) and PDF
(read back with poppler's pdftotext)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess

import pytest

from appliance import schema
from services.pbx import accounting
from services.pbx.cdr import CallRecord, CdrStore
from tests.webadmin.helpers import post
from tests.webadmin.test_pbx_pages import page
from webadmin import pdf_font

PEOPLE = [{"login": "alice", "full_name": "Alice Martin", "extension": "201", "sip_secret": "alicesecret1"},
          {"login": "bob", "full_name": "=Bob Durand", "extension": "202", "sip_secret": "bobsecret12"},
          {"login": "carol", "full_name": "Carol Chen", "extension": "203", "sip_secret": "carolsecret1",
           "department": "Support"}]
TRUNKS = [{"name": "main", "host": "192.0.2.1"}, {"name": "cheap", "host": "192.0.2.2"}]
TARIFFS = "06;0.60;0.10;60;;Mobiles\n0;0.06;0;1\n06;0.30;0.10;60;cheap;Mobiles cheap"
NOV = dt.datetime(2026, 11, 10, 10, tzinfo=dt.UTC).timestamp()
DEC = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def acct_client(admin_client, runtime):
    def mutate(doc):
        doc["users"] += [dict(p) for p in PEOPLE]
        doc.setdefault("pbx", {})["trunks"] = TRUNKS
    runtime.engine.update("admin", "test users", mutate)
    return admin_client


def _call(store, caller, dialled, trunk, start, seconds):
    store.add(CallRecord(call_id=f"{caller}-{start}", direction="outbound", caller=caller, dialled=dialled,
                         trunk=trunk, start=start, answer=start + 5 if seconds else None,
                         end=start + 5 + seconds, disposition="answered" if seconds else "missed"))


def test_tariffs_form_checks_then_saves(acct_client, runtime):
    page(acct_client, "/accounting/")
    bad = post(acct_client, "/accounting/", {"currency": "EUR", "tariffs_text": "06;0.6", "budgets_text": ""})
    assert bad.status_code == 400 and "line 1: write prefix;price per minute" in bad.get_data(as_text=True)
    trunk = post(acct_client, "/accounting/", {"currency": "EUR", "tariffs_text": "06;0.6;0;60;nope",
                                               "budgets_text": ""})
    assert trunk.status_code == 400 and "unknown trunk" in trunk.get_data(as_text=True)
    price = post(acct_client, "/accounting/", {"currency": "EUR", "tariffs_text": "06;-1;0;60", "budgets_text": ""})
    assert price.status_code == 400 and "greater than or equal to 0" in price.get_data(as_text=True)
    budget = post(acct_client, "/accounting/", {"currency": "EUR", "tariffs_text": "", "budgets_text": "zoe:5"})
    assert budget.status_code == 400 and "unknown user" in budget.get_data(as_text=True)
    assert runtime.config.pbx.accounting.tariffs == []  # nothing saved by the refused forms
    ok = post(acct_client, "/accounting/", {"currency": "twd", "tariffs_text": TARIFFS, "budgets_text": "alice:10"})
    assert ok.status_code == 302, ok.get_data(as_text=True)[:3000]
    settings = runtime.config.pbx.accounting
    assert settings.currency == "TWD" and settings.budgets == {"alice": 10.0}
    assert [(t.prefix, t.trunk, t.per_minute, t.increment, t.name) for t in settings.tariffs] == [
        ("06", "", 0.6, 60, "Mobiles"), ("0", "", 0.06, 1, ""), ("06", "cheap", 0.3, 60, "Mobiles cheap")]
    assert "06;0.3;0.1;60;cheap;Mobiles cheap" in page(acct_client, "/accounting/")


def test_department_on_the_user_form(acct_client, runtime):
    form = page(acct_client, "/users/alice/edit")
    assert 'name="department"' in form
    saved = post(acct_client, "/users/alice/edit", {"full_name": "Alice Martin", "extension": "201", "role": "staff",
                                                     "language": "en", "enabled": "on", "department": "Sales"})
    assert saved.status_code == 302 and runtime.config.user("alice").department == "Sales"
    assert schema.parse({"users": [{"login": "zed", "full_name": "Zed"}]}).users[0].department == ""


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="poppler-utils is not installed")
def test_reports_sum_costs_per_user_department_trunk_and_month(acct_client, runtime):
    assert post(acct_client, "/accounting/", {"currency": "EUR", "tariffs_text": TARIFFS,
                                              "budgets_text": ""}).status_code == 302
    for login in ("alice", "bob"):
        user = runtime.config.user(login)
        assert post(acct_client, f"/users/{login}/edit", {"full_name": user.full_name, "extension": user.extension,
                                                          "role": "staff", "language": "en", "enabled": "on",
                                                          "department": "Sales"}).status_code == 302
    store = CdrStore(runtime.services["pbx"].cdr_path)
    store.rate = accounting.rater(runtime.config.pbx.accounting)
    _call(store, "201", "0612345678", "main", NOV, 61)    # 0.10 + 2 x 0.60 = 1.30
    _call(store, "201", "0612345678", "cheap", DEC, 30)   # the trunk's own tariff: 0.10 + 0.30 = 0.40
    _call(store, "202", "0145", "main", DEC, 10.2)        # per second: 11 x 0.001 = 0.011
    _call(store, "203", "0699", "main", DEC, 0)           # not answered: 0
    _call(store, "203", "0699", "main", DEC + 60, 120)    # 0.10 + 2 x 0.60 = 1.30
    store.flush()
    query = "since=2026-11-01&until=2026-12-31"

    def table(by):
        html = page(acct_client, f"/accounting/reports?by={by}&{query}")
        assert '<svg id="cost-chart"' in html
        exported = acct_client.get(f"/accounting/reports.csv?by={by}&{query}").get_data(as_text=True)
        rows = csv.reader(io.StringIO(exported))
        return {r[0]: (int(r[1]), round(float(r[4]), 3)) for r in list(rows)[1:]}
    assert table("user") == {"Alice Martin": (2, 1.7), "'=Bob Durand": (1, 0.011), "Carol Chen": (2, 1.3)}
    assert table("department") == {"Sales": (3, 1.711), "Support": (2, 1.3)}
    assert table("trunk") == {"main": (4, 2.611), "cheap": (1, 0.4)}
    assert table("month") == {"2026-11": (1, 1.3), "2026-12": (4, 1.711)}
    pdf = acct_client.get(f"/accounting/reports.pdf?by=department&{query}")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.data, capture_output=True, check=True,
                          timeout=30).stdout.decode()
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert ["Sales", "3", "3", "1.7", "1.71"] in lines and ["Support", "2", "1", "2.0", "1.30"] in lines
    assert ["Total", "5", "4", "3.7", "3.01"] in lines
    assert acct_client.get(f"/accounting/reports.csv?by=nope&{query}").status_code == 400


@pytest.mark.skipif(not shutil.which("pdftotext") or len(pdf_font.installed()) < 2,
                    reason="poppler-utils, fonts-dejavu-core or fonts-droid-fallback is not installed")
def test_pdf_keeps_chinese_names_in_an_embedded_font(acct_client, runtime):
    def mutate(doc):
        doc["users"].append({"login": "mei", "full_name": "陳美玲 (Mei)", "extension": "204",
                             "sip_secret": "meisecret123", "department": "業務部"})
    runtime.engine.update("admin", "a Chinese name", mutate)
    store = CdrStore(runtime.services["pbx"].cdr_path)
    _call(store, "204", "0612345678", "main", DEC, 30)
    store.flush()
    for by, name in (("user", "陳美玲 (Mei)"), ("department", "業務部")):
        pdf = acct_client.get(f"/accounting/reports.pdf?by={by}&since=2026-12-01&until=2026-12-31").data
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True,
                              timeout=30).stdout.decode()
        assert name in text and "?" not in text, text
    fonts = subprocess.run(["pdffonts", "-"], input=pdf, capture_output=True, check=True, timeout=30).stdout.decode()
    embedded = [line.split() for line in fonts.splitlines()[2:]]
    assert len(embedded) == 2 and all(row[-5:-2] == ["yes", "no", "yes"] for row in embedded), fonts
    assert len(pdf) < 200_000  # subset: not the 4 MB font


def test_pages_need_an_admin(client):
    for path in ("/accounting/", "/accounting/reports", "/accounting/reports.csv", "/accounting/reports.pdf"):
        assert client.get(path).status_code == 302
