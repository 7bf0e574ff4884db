"""Phone books served by provisioning (urllib as the provisioned phone): a Yealink phone's file points at
its remote phone book; the book holds the phone user's personal contacts and the shared ones, XML-escaped
and dialable; a Snom phone's directory key opens it in Snom's format; an unknown phone and a phone signed in as another
get none. With provisioning accounts (curl as the phone), the book is behind the account and transport of
the phone's own file, and the files carry that account in the form each phone takes."""
from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest

from appliance import contacts
from services.provisioning import SERVICE
from tests.services.dhcp.helpers import LoopThread

from .test_provisioning import make_config


def get(url: str, user: str = "", password: str = "") -> tuple[int, str]:
    handlers = []
    if user:
        manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        manager.add_password(None, url, user, password)
        handlers.append(urllib.request.HTTPDigestAuthHandler(manager))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture
def books(ctx):
    contacts.save_contact(ctx.data_dir, {"name": "Jeanne <Dupont> & Fils", "company": "Boulangerie",
                                         "phones": [["work", "+33 1 23 45 67 89"], ["mobile", "06 12 34 56 78"]]})
    contacts.save_contact(ctx.data_dir, {"name": "Maman", "phones": [["mobile", "06 99 99 99 99"]]}, "alice")
    contacts.save_contact(ctx.data_dir, {"name": "Bob's dentist", "phones": [["work", "01 11 11 11 11"]]}, "bob")
    return ctx


def serve(ctx, **extra):
    runner = LoopThread()
    svc = SERVICE(ctx)
    runner.call(svc.start(make_config(**extra)))
    return svc, runner


def test_a_yealink_phone_finds_its_phone_book_and_a_snom_gets_its_format(books):
    svc, runner = serve(books)
    try:
        base = f"http://127.0.0.1:{svc.ports['http']}"
        code, config = get(f"{base}/001565aabb01.cfg")
        assert code == 200
        url = next(line.split(" = ")[1] for line in config.splitlines()
                   if line.startswith("remote_phonebook.data.1.url"))
        assert url == f"{base}/phonebook-001565aabb01.xml"
        code, body = get(url)
        assert code == 200
        root = ET.fromstring(body)
        assert root.tag == "YealinkIPPhoneDirectory"
        entries = [(e.findtext("Name"), [t.text for t in e.findall("Telephone")]) for e in root]
        assert entries == [("Maman", ["0699999999"]),  # alice's own first, then the shared book
                           ("Jeanne <Dupont> & Fils", ["+33123456789", "0612345678"])]
        contacts.save_contact(books.data_dir, {"name": "Zoé Nouvelle", "phones": [["work", "0177777777"]]})
        assert "<Name>Zoé Nouvelle</Name><Telephone>0177777777</Telephone>" in get(url)[1]  # an edit shows at once
        code, config = get(f"{base}/000413aabb02.xml")  # bob's Snom: its directory key opens the book
        key = ET.fromstring(config).findtext("phone-settings/dkey_directory")
        assert code == 200 and key == f"url {base}/phonebook-000413aabb02.xml"
        code, body = get(key.removeprefix("url "))
        root = ET.fromstring(body)
        assert root.tag == "SnomIPPhoneDirectory"
        assert [e.findtext("Name") for e in root.iter("DirectoryEntry")] == [
            "Bob's dentist", "Jeanne <Dupont> & Fils", "Jeanne <Dupont> & Fils (mobile)", "Zoé Nouvelle"]
        assert get(f"{base}/phonebook-001565aabbff.xml")[0] == 404  # no such phone
    finally:
        runner.call(svc.stop())
        runner.close()


def _curl(url: str, *args: str) -> tuple[int, str]:
    """curl as the phone: it takes an account written in the URL, answers basic or digest (--anyauth)."""
    out = subprocess.run(["curl", "-s", "-k", "-m", "5", "--anyauth", "-w", "\n%{http_code}", *args, url],
                         capture_output=True, text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body


def _without_account(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def test_with_an_account_per_phone_the_book_is_behind_the_phone_s_own_account_and_transport(books):
    phones = [{"mac": "00:15:65:AA:BB:01", "model": "yealink", "user": "alice", "auth_secret": "alicephonesecret"},
              {"mac": "00:04:13:AA:BB:02", "model": "snom", "user": "bob", "auth_secret": "bobphonesecret1"}]
    svc, runner = serve(books, phones=phones, phone_accounts=True)
    try:
        https = f"https://127.0.0.1:{svc.ports['https']}"
        code, config = _curl(f"{https}/000413aabb02.xml", "-u", "000413aabb02:bobphonesecret1")
        settings = ET.fromstring(config).find("phone-settings")
        url = settings.findtext("dkey_directory").removeprefix("url ")
        account = settings.findtext("http_client_user"), settings.findtext("http_client_pass")
        assert code == 200 and url == f"{https}/phonebook-000413aabb02.xml"  # HTTPS, as the file came
        assert account == ("000413aabb02", "bobphonesecret1")
        assert _curl(url)[0] == 401
        assert _curl(url, "-u", "001565aabb01:alicephonesecret")[0] == 403  # alice's phone: as for the file
        code, body = _curl(url, "-u", ":".join(account))
        assert code == 200 and "Bob's dentist" in body
        assert "Maman" not in body

        http = f"http://127.0.0.1:{svc.ports['http']}"
        code, config = _curl(f"{http}/001565aabb01.cfg", "-u", "001565aabb01:alicephonesecret")
        url = next(line.split(" = ")[1] for line in config.splitlines()
                   if line.startswith("remote_phonebook.data.1.url"))
        assert code == 200 and url == f"http://001565aabb01:alicephonesecret@127.0.0.1:{svc.ports['http']}" \
            "/phonebook-001565aabb01.xml"
        code, body = _curl(url)
        assert code == 200 and "Maman" in body and "dentist" not in body
        assert _curl(_without_account(url))[0] == 401
    finally:
        runner.call(svc.stop())
        runner.close()


def test_with_a_shared_account_the_book_urls_carry_it(books):
    svc, runner = serve(books, auth="basic", auth_user="phones", auth_password="shared:pass@word")
    try:
        http = f"http://127.0.0.1:{svc.ports['http']}"
        code, config = _curl(f"{http}/001565aabb01.cfg", "-u", "phones:shared:pass@word")
        url = next(line.split(" = ")[1] for line in config.splitlines()
                   if line.startswith("remote_phonebook.data.1.url"))
        assert code == 200 and url.startswith("http://phones:shared%3Apass%40word@127.0.0.1:")
        assert _curl(url)[0] == 200 and _curl(_without_account(url))[0] == 401
        settings = ET.fromstring(_curl(f"{http}/000413aabb02.xml", "-u", "phones:shared:pass@word")[1])
        assert settings.findtext("phone-settings/http_client_user") == "phones"
        assert settings.findtext("phone-settings/http_client_pass") == "shared:pass@word"
    finally:
        runner.call(svc.stop())
        runner.close()


def test_a_phone_signed_in_as_another_gets_no_phone_book(books):
    phones = [{"mac": "00:15:65:AA:BB:01", "model": "yealink", "user": "alice", "auth_secret": "alicephonesecret"},
              {"mac": "00:15:65:AA:BB:05", "model": "yealink", "user": "bob", "auth_secret": "bobphonesecret1"}]
    svc, runner = serve(books, phones=phones, phone_accounts=True)
    try:
        base = f"http://127.0.0.1:{svc.ports['http']}"
        assert get(f"{base}/phonebook-001565aabb01.xml")[0] == 401
        assert get(f"{base}/phonebook-001565aabb01.xml", "001565aabb05", "bobphonesecret1")[0] == 403
        code, body = get(f"{base}/phonebook-001565aabb01.xml", "001565aabb01", "alicephonesecret")
        assert code == 200 and "Maman" in body and "dentist" not in body
    finally:
        runner.call(svc.stop())
        runner.close()
