"""Saving an extension's call handling in the web admin keeps the extension's other settings (message
waiting without subscription, music on hold class) that this form does not show."""
from __future__ import annotations

from tests.webadmin.helpers import post
from tests.webadmin.test_pbx_pages import pbx_client  # noqa: F401 (the fixture)


def test_the_call_handling_form_keeps_the_fields_it_does_not_show(pbx_client, runtime):  # noqa: F811
    def mutate(doc):
        doc["pbx"]["extensions"] = {"201": {"mwi_unsolicited": True, "moh_class": "lobby"}}
    runtime.engine.update("admin", "settings set elsewhere", mutate)
    ok = post(pbx_client, "/pbx/extensions/201", {"dnd": "on", "no_answer_timeout": "15"})
    assert ok.status_code == 302
    settings = runtime.config.pbx.extensions["201"]
    assert settings.dnd and settings.mwi_unsolicited and settings.moh_class == "lobby"
