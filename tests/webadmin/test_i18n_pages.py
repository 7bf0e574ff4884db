"""The pages merged before the catalogues (voice, mail quotas, users as CSV, system settings) and the notices
the web admin shows while a service process restarts, in the signed-in user's language."""
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.extract import extract_from_file
from flask_babel import force_locale

from appliance import usercsv as plain_csv
from appliance.clients import PbxClient, ProxyClient
from appliance.service import ApplyError
from services.mail.outbound import Outbound, QueueBusy
from tests.webadmin.helpers import post
from tests.webadmin.test_i18n import add_user, client_signed_in_as
from webadmin.blueprints import mail, pbx, proxy, usercsv
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


CSV = ("login,full_name,extension,enabled\n"
       "carl,Carl Martin,202,yes\n"
       "dan,Dan,203,maybe\n"
       "carl,Carl Again,204,no\n")


@pytest.mark.parametrize(("language", "words"), [
    ("fr", ("1 à ajouter, 0 à modifier, 0 inchangés, 2 en erreur.", "Le fichier a 2 problèmes",
            "Ligne 3, enabled : écrivez yes ou no", "cet identifiant figure déjà à la ligne 2 du fichier",
            "Rien ne peut être importé tant que le fichier contient une erreur", "mot de passe généré",
            "Ce que ferait l’importation")),
    ("zh_TW", ("新增 1 位、變更 0 位、0 位不變、2 位有錯誤。", "檔案有 2 個問題", "第 3 行，enabled：請填 yes 或 no",
               "此帳號已出現在檔案第 2 行", "檔案有錯誤時無法匯入", "自動產生密碼", "匯入將進行的變更")),
])
def test_the_import_preview_follows_the_admin(app, admin_client, runtime, language, words):
    add_user(admin_client, "ines", language)
    client = client_signed_in_as(app, "ines")
    upload_page = client.get("/users/import").get_data(as_text=True)
    assert {"fr": "Importer des utilisateurs depuis un fichier CSV", "zh_TW": "從 CSV 檔案匯入使用者"}[language] \
        in upload_page
    preview = post(client, "/users/import", {"file": (io.BytesIO(CSV.encode()), "users.csv")},
                   form_path="/users/import", content_type="multipart/form-data")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 400  # a file with errors is refused whole, each error said in the admin's language
    for text in words:
        assert text in page, (text, page[-3000:])
    assert "write yes or no" not in page and "to add" not in page
    refused = post(client, "/users/import", {"file": (io.BytesIO(b"name\nbea\n"), "users.csv")},
                   form_path="/users/import", content_type="multipart/form-data").get_data(as_text=True)
    assert {"fr": "Ce fichier ne peut pas être importé : colonne(s) inconnue(s) name ;",
            "zh_TW": "無法匯入此檔案：未知的欄位 name；"}[language] in refused


@pytest.mark.parametrize(("language", "heading", "label", "refused", "saved"), [
    ("fr", "Le boîtier", "Nom de l’entreprise", "ce champ est obligatoire", "Paramètres enregistrés."),
    ("zh_TW", "本機", "公司名稱", "此欄位為必填", "已儲存設定。"),
])
def test_the_settings_page_follows_the_admin(app, admin_client, runtime, language, heading, label, refused, saved):
    add_user(admin_client, "ines", language)
    client = client_signed_in_as(app, "ines")
    page = client.get("/settings/").get_data(as_text=True)
    assert f"<h2>{heading}</h2>" in page and label in page
    config = runtime.engine.current_config()
    values = {"company_name": "", "hostname": config.system.hostname, "mail_domain": config.system.mail_domain,
              "timezone": config.system.timezone, "lan_address": str(config.network.lan.address), "admin_email": ""}
    refusal = post(client, "/settings/", values, "/settings/")
    assert refusal.status_code == 400 and refused in refusal.get_data(as_text=True)
    done = post(client, "/settings/", {**values, "company_name": "Acme"}, "/settings/", follow_redirects=True)
    assert saved in done.get_data(as_text=True)


def test_every_message_the_csv_module_marks_is_shown_translated():
    """appliance/usercsv.py has no Flask-Babel: the blueprint lists its message ids for the catalogues."""
    source = Path(plain_csv.__file__)
    marked = {message for _line, message, _comments, _context in extract_from_file(
        "python", str(source), keywords={"N_": None})}
    assert marked and marked <= set(usercsv.MESSAGES), sorted(marked - set(usercsv.MESSAGES))
    with pytest.raises(plain_csv.CsvError) as raised:
        plain_csv.decode(b"")
    assert raised.value.args[0].msgid in usercsv.MESSAGES and str(raised.value) == "the file is empty"
