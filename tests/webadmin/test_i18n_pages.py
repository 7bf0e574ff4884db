"""The pages merged before the catalogues (voice, mail quotas) and the notices the web admin shows while a
service process restarts, in the signed-in user's language."""
from types import SimpleNamespace

import pytest
from flask_babel import force_locale

from appliance.clients import PbxClient, ProxyClient
from appliance.service import ApplyError
from services.mail.outbound import Outbound, QueueBusy
from tests.webadmin.helpers import post
from tests.webadmin.test_i18n import add_user, client_signed_in_as
from webadmin.blueprints import mail, pbx, proxy
from webadmin.blueprints.dashboard import summary_text


def test_voice_and_mailbox_pages_follow_the_user(app, admin_client, runtime):
    add_user(admin_client, "lea", "fr")
    client = client_signed_in_as(app, "lea")
    prompts = client.get("/voice/prompts").get_data(as_text=True)
    assert "Annonces vocales" in prompts and "Langue du boîtier" in prompts
    saved = post(client, "/voice/prompts", {"prompt_language": "fr"}, "/voice/prompts", follow_redirects=True)
    assert "Les appelants sans langue propre entendent désormais : Français." in saved.get_data(as_text=True)
    assert runtime.engine.current_config().pbx.prompt_language == "fr"
    assert "Musique d'attente" in client.get("/voice/moh").get_data(as_text=True)
    quotas = post(client, "/mail/mailboxes", {"quota_mb": "500"}, "/mail/mailboxes", follow_redirects=True)
    assert "Quotas des boîtes aux lettres enregistrés." in quotas.get_data(as_text=True)

    add_user(admin_client, "zoe", "zh_TW")
    moh = client_signed_in_as(app, "zoe").get("/voice/moh").get_data(as_text=True)
    assert "保留音樂" in moh and "新增類別" in moh


def test_process_states_on_the_dashboard_are_translated(app):
    with app.test_request_context(), force_locale("fr"):
        assert summary_text("restarting pbx-media") == "redémarrage de pbx-media"
        assert summary_text("its process exited (-9)") == "son processus s'est arrêté (-9)"
        assert summary_text("starting") == "démarrage"
        assert summary_text("42 leases") == "42 leases"  # a service's own words stay as they are
    with app.test_request_context(), force_locale("zh_TW"):
        assert summary_text("restarting squid") == "正在重新啟動 squid"


@pytest.mark.parametrize(("client_class", "call", "marked"), [
    (PbxClient, lambda c: c.cdr_query(), pbx.RESTARTING),
    (ProxyClient, lambda c: c.usage(0, 10), proxy.RESTARTING),
])
def test_restart_notices_are_the_marked_ones(app, client_class, call, marked):
    """The text a client raises while its service's process is down is the one the pages translate."""
    down = SimpleNamespace(name="svc", title="Service", call=None, inner=None, alive=False)
    with pytest.raises(ApplyError) as raised:
        call(client_class(down))
    assert str(raised.value) == marked
    with app.test_request_context(), force_locale("fr"):
        from flask_babel import gettext
        assert gettext(str(raised.value)) != marked and "redémarre" in gettext(str(raised.value))


def test_the_queue_busy_notice_is_the_marked_one():
    outbound = Outbound(queue=None, section=lambda: None, helo=lambda: "box", bounce=lambda *_: None)
    outbound.in_flight = "1A2B"
    with pytest.raises(QueueBusy) as raised:
        outbound.delete("1A2B")
    assert str(raised.value) == mail.BUSY
