"""Languages of the web admin: complete catalogues, per-user language, Accept-Language before sign-in,
the box default from the wizard, dates in the user's locale and the box's time zone."""
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel import Locale
from babel.dates import format_datetime
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from appliance import migrations, schema
from tests.webadmin.helpers import crawl, post, run_wizard, sign_in
from webadmin.i18n import LANGUAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "webadmin" / "translations"
LOCALES = [name for name in LANGUAGE_NAMES if name != "en"]
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%%")
FR_DATE = re.compile(r"\b\d{1,2} (janv|févr|mars|avr|mai|juin|juil|août|sept|oct|nov|déc)\.? 20\d\d,? \d\d:\d\d:\d\d")
ZH_DATE = re.compile(r"20\d\d年\d{1,2}月\d{1,2}日 (上午|中午|下午|晚上|凌晨|清晨|早上)\d{1,2}:\d{2}:\d{2}")


def tree_messages() -> set[str]:
    """Every msgid the code and templates mark, extracted as `make translations` does (babel.cfg)."""
    method_map = [("webadmin/**.py", "python"), ("appliance/notify.py", "python"),
                  ("webadmin/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}):
        found.add(message if isinstance(message, str) else message[0])
    return found


def folder(locale: str) -> Path:
    """Babel names zh_TW zh_Hant_TW, and looks its catalogue up under that name."""
    return TRANSLATIONS / str(Locale.parse(locale)) / "LC_MESSAGES"


def catalogue(locale: str):
    with open(folder(locale) / "messages.po", "rb") as po:
        return read_po(po, locale=locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated_and_the_compiled_catalogue_is_current(locale):
    cat = catalogue(locale)
    entries = {m.id if isinstance(m.id, str) else m.id[0]: m for m in cat if m.id}
    missing = sorted(tree_messages() - set(entries))
    assert not missing, f"{locale}: not in the catalogue (run make translations, then translate): {missing[:10]}"
    for msgid, message in entries.items():
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(s.strip() for s in strings), f"{locale}: no translation for {msgid!r}"
        assert "fuzzy" not in message.flags, f"{locale}: fuzzy translation for {msgid!r}"
        for text in strings:
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(msgid)), \
                f"{locale}: placeholders differ in {msgid!r} -> {text!r}"
    assert not list(cat.check()), f"{locale}: {list(cat.check())[:3]}"
    compiled = io.BytesIO()
    write_mo(compiled, cat)
    shipped = (folder(locale) / "messages.mo").read_bytes()
    assert shipped == compiled.getvalue(), f"{locale}: messages.mo is older than messages.po: run make translations"


def test_chinese_translations_are_traditional_and_french_ones_are_not_english():
    zh = {m.id: m.string for m in catalogue("zh_TW") if isinstance(m.id, str) and m.id}
    fr = {m.id: m.string for m in catalogue("fr") if isinstance(m.id, str) and m.id}
    assert zh["Users"] == "使用者" and zh["Network"] == "網路" and zh["Settings"] == "設定"
    simplified = set("们这说时网设户码删储称请数据连页务线")  # characters that only Simplified Chinese writes
    offenders = {msgid: text for msgid, text in zh.items() if simplified & set(text)}
    assert not offenders, f"Simplified characters in the Taiwan catalogue: {list(offenders.items())[:5]}"
    untranslated = [msgid for msgid, text in fr.items()
                    if text == msgid and len(re.findall(r"\b[a-z]{3,}\b", PLACEHOLDER.sub("", msgid))) > 1]
    assert not untranslated, f"French entries left in English: {untranslated[:5]}"


def add_user(client, login: str, language: str, role: str = "admin"):
    data = {"login": login, "full_name": f"{login.title()} Example", "role": role, "language": language,
            "enabled": "on", "password": f"{login}-password-1", "password2": f"{login}-password-1"}
    assert post(client, "/users/new", data).status_code == 302


def client_signed_in_as(app, login: str):
    client = app.test_client()
    assert sign_in(client, login, f"{login}-password-1").status_code == 302
    return client


@pytest.mark.parametrize(("language", "lang", "heading", "menu", "history", "date"), [
    ("fr", "fr", "Tableau de bord", "Utilisateurs", "Historique de la configuration", FR_DATE),
    ("zh_TW", "zh-TW", "儀表板", "使用者", "設定變更紀錄", ZH_DATE),
])
def test_a_user_reads_the_admin_in_their_language(app, admin_client, runtime, language, lang, heading, menu,
                                                  history, date):
    add_user(admin_client, "lea", language)
    client = client_signed_in_as(app, "lea")
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert re.search(rf"<h1>\s*{heading}\s*</h1>", page)
    assert f">{menu}</a>" in page and f">{history}</a>" in page
    listing = client.get("/history/").get_data(as_text=True)
    assert re.search(rf"<h1>\s*{history}\s*</h1>", listing)
    revision = runtime.store.current()
    when = format_datetime(datetime.fromtimestamp(revision.created, UTC), "medium", tzinfo="Europe/Berlin",
                           locale=language)
    assert when in listing and date.search(when)  # the wizard's time zone, the user's format
    # the admin who wrote the page in English still reads English
    assert re.search(r"<h1>\s*Configuration history\s*</h1>", admin_client.get("/history/").get_data(as_text=True))


def test_validation_and_flash_messages_follow_the_user(app, admin_client):
    add_user(admin_client, "zoe", "zh_TW")
    client = client_signed_in_as(app, "zoe")
    refused = post(client, "/users/new", {"login": "Bad Login", "full_name": "", "role": "staff",
                                          "language": "zh_TW", "password": "x", "password2": "x"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "至少需要 8 個字元" in page
    saved = post(client, "/users/new", {"login": "kim", "full_name": "Kim", "role": "staff", "language": "fr",
                                        "password": "", "password2": ""}, follow_redirects=True)
    assert "已建立使用者 kim。" in saved.get_data(as_text=True)


def test_staff_pages_follow_the_staff_language(app, admin_client):
    add_user(admin_client, "paul", "fr", role="staff")
    page = client_signed_in_as(app, "paul").get("/account/").get_data(as_text=True)
    assert re.search(r"<h1>\s*Mon compte\s*</h1>", page) and "Changer le mot de passe" in page


def test_pages_before_sign_in_follow_accept_language_then_the_box_default(client, runtime):
    wizard = client.get("/setup/", headers={"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "歡迎使用 OfficeBox" in wizard and '<option value="zh_TW" selected>' in wizard
    assert "Bienvenue dans OfficeBox" in client.get("/setup/", headers={"Accept-Language": "fr-CH"}).get_data(
        as_text=True)
    assert run_wizard(client, language="fr").status_code == 302
    config = runtime.engine.current_config()
    assert config.system.language == "fr" and config.user("admin").language == "fr"
    def login_page(accept: str | None) -> str:
        headers = {"Accept-Language": accept} if accept else {}
        return client.get("/login", headers=headers).get_data(as_text=True)
    assert re.search(r"<h1>\s*登入\s*</h1>", login_page("zh-Hant-TW, en;q=0.8"))
    assert re.search(r"<h1>\s*Sign in\s*</h1>", login_page("en-GB,fr;q=0.5"))
    assert re.search(r"<h1>\s*Se connecter\s*</h1>", login_page(None))  # the box default chosen in the wizard
    assert re.search(r"<h1>\s*Se connecter\s*</h1>", login_page("de-DE"))  # no German: the box default


def test_the_wizard_refuses_an_unknown_language(client):
    response = run_wizard(client, language="de")
    assert response.status_code == 400 and "choose a language from the list" in response.get_data(as_text=True)


def test_languages_the_admin_never_had_become_english_on_migration():
    doc = {"schema_version": 2, "system": {"language": "de"},
           "users": [{"login": "ann", "full_name": "Ann", "language": "nl"},
                     {"login": "bob", "full_name": "Bob", "language": "fr"}]}
    migrated, _versions = migrations.migrate(doc, schema.SCHEMA_VERSION)
    config = schema.parse(migrated)
    assert config.system.language == "en"
    assert [u.language for u in config.users] == ["en", "fr"]
    assert doc["system"]["language"] == "de"  # the stored document itself is untouched


@pytest.mark.parametrize("language", LOCALES)
def test_every_page_opens_in_each_language(app, admin_client, language):
    add_user(admin_client, "ines", language)
    client = client_signed_in_as(app, "ines")

    def no_unfilled_placeholder(path: str, page: str) -> None:
        assert "%(" not in page, f"{path}: a message placeholder was left unfilled"

    seen = crawl(client, app, check=no_unfilled_placeholder)
    broken = {path: code for path, code in seen.items() if code >= 500 or code == 404}
    assert not broken and len(seen) >= 25, broken
