"""Phone books served by provisioning (urllib as the provisioned phone): a Yealink phone's file points at
its remote phone book; the book holds the phone user's personal contacts and the shared ones, XML-escaped
and dialable; a Snom phone gets Snom's format; an unknown phone and a phone signed in as another get none."""
from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

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
        code, body = get(f"{base}/phonebook-000413aabb02.xml")  # bob's Snom
        root = ET.fromstring(body)
        assert root.tag == "SnomIPPhoneDirectory"
        assert [e.findtext("Name") for e in root.iter("DirectoryEntry")] == [
            "Bob's dentist", "Jeanne <Dupont> & Fils", "Jeanne <Dupont> & Fils (mobile)", "Zoé Nouvelle"]
        assert get(f"{base}/phonebook-001565aabbff.xml")[0] == 404  # no such phone
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
