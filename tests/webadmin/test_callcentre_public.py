"""The public call-back page, signed out, on the runtime's real PBX: a queue without web call-back is 404; the
honeypot, a form sent too fast, a replayed token, a foreign number and the per-address rate limit are each
refused with a clear message; a good request waits in the queue (its position shown, the name escaped), and
the page may be framed by another site."""
from __future__ import annotations

import re

import pytest

from services.pbx import acd as acd_pkg
from tests.webadmin.test_callcentre import PEOPLE
from tests.webadmin.test_pbx_pages import _LivePbx
from webadmin.blueprints import public


@pytest.fixture
def visitor(admin_client, runtime, app, monkeypatch):
    def mutate(doc):
        doc["users"] += [dict(p) for p in PEOPLE]
        doc.setdefault("pbx", {})["lab_sip_port"] = 0
        doc["pbx"]["queues"] = [
            {"number": "600", "name": "sales", "title": "Sales <team>", "members": [{"agent": "201"}],
             "web_callback": True, "web_callback_numbers": ["0ZXXXXXXXX"]},
            {"number": "601", "name": "closed", "members": [{"agent": "202"}]}]
    runtime.engine.update("admin", "queues", mutate)
    monkeypatch.setattr(public, "limits", public.RateLimit(2, 600, 100))
    monkeypatch.setattr(public, "MIN_AGE", 0.0)
    return app.test_client()  # signed out


def _form(client, path="/public/callback/sales"):
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return page, re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_public_callback_limits_and_queueing(visitor, runtime, monkeypatch):
    assert visitor.get("/public/callback/closed").status_code == 404
    page, token = _form(visitor)
    html = page.get_data(as_text=True)
    assert "Sales &lt;team&gt;" in html and 'name="website"' in html
    assert "frame-ancestors *" in page.headers["Content-Security-Policy"]
    with _LivePbx(runtime) as live:
        trap = visitor.post("/public/callback/sales", data={"token": token, "number": "0612345678", "website": "x"})
        assert trap.status_code == 400 and "refused" in trap.get_data(as_text=True)
        monkeypatch.setattr(public, "MIN_AGE", 60.0)
        fast = visitor.post("/public/callback/sales", data={"token": _form(visitor)[1], "number": "0612345678"})
        assert fast.status_code == 400 and "too fast" in fast.get_data(as_text=True)
        monkeypatch.setattr(public, "MIN_AGE", 0.0)
        bad = visitor.post("/public/callback/sales", data={"token": _form(visitor)[1], "number": "+1 555 0100"})
        assert bad.status_code == 400 and "cannot be called back" in bad.get_data(as_text=True)
        token = _form(visitor)[1]
        ok = visitor.post("/public/callback/sales", data={"token": token, "number": "06 12 34 56 78",
                                                          "name": "<script>x</script>", "subject": "Invoice"})
        assert ok.status_code == 200 and "you are number 1 in the queue" in ok.get_data(as_text=True)
        again = visitor.post("/public/callback/sales", data={"token": token, "number": "0698765432"})
        assert again.status_code == 400 and "sent already" in again.get_data(as_text=True)
        flood = visitor.post("/public/callback/sales", data={"token": _form(visitor)[1], "number": "0698765432"})
        assert flood.status_code == 429  # the third checked request from this address
        acd = acd_pkg.existing(live.svc.core)
        waiting = [(w.caller, w.caller_name, w.web) for w in acd.waiting["sales"]]
        assert waiting == [("0612345678", "script x /script (Invoice)", True)]
        assert "<script>" not in ok.get_data(as_text=True)
