"""Contacts in the web admin (Flask test client on the real runtime): the admin's shared book (add, edit,
search, pages, delete, real vCard and CSV uploads, a broken upload that changes nothing, export) and a
staff user's own book, which nobody else's session reaches."""
from __future__ import annotations

import io
from pathlib import Path

from appliance import contacts
from appliance.users import hash_password
from tests.webadmin.helpers import post, sign_in
from webadmin import create_app

SAMPLES = Path(__file__).parent.parent / "appliance" / "contacts_samples"


def upload(client, path: str, data: bytes, name: str, **fields):
    return post(client, path, {"file": (io.BytesIO(data), name), **fields}, content_type="multipart/form-data")


def test_the_admin_manages_the_shared_contacts(admin_client, runtime):
    data_dir = runtime.ctx.data_dir
    page = post(admin_client, "/contacts/new", {"name": "Jeanne Dupont", "company": "Boulangerie",
                                                "kind0": "work", "number0": "+33 1 23 45 67 89",
                                                "kind1": "mobile", "number1": "06 12 34 56 78"})
    assert page.status_code == 302
    assert contacts.lookup(data_dir, "0612345678").name == "Jeanne Dupont"
    refused = post(admin_client, "/contacts/new", {"name": "Nobody", "number0": "call me"}, form_path="/contacts/new")
    assert refused.status_code == 400 and "Nothing was saved" in refused.get_data(as_text=True)
    [jeanne] = contacts.read_book(data_dir)
    edited = post(admin_client, f"/contacts/{jeanne['id']}/edit", {"name": "Jeanne Dupont-Martin",
                                                                    "kind0": "work", "number0": "0123456789"})
    assert edited.status_code == 302 and contacts.lookup(data_dir, "+33123456789").name == "Jeanne Dupont-Martin"
    assert contacts.lookup(data_dir, "0612345678") is None

    vcards = upload(admin_client, "/contacts/import", (SAMPLES / "cards.vcf").read_bytes(), "cards.vcf")
    assert vcards.status_code == 302
    shown = admin_client.get("/contacts/").get_data(as_text=True)
    assert "3 contacts imported, 1 without a phone number left out." in shown
    assert "陳大文" in shown and "Jörg Müller" in shown
    csv = upload(admin_client, "/contacts/import", (SAMPLES / "contacts.csv").read_bytes(), "contacts.csv")
    assert csv.status_code == 302 and contacts.lookup(data_dir, "+33140000003").name == "Léa Petit"
    before = contacts.book_path(data_dir).read_bytes()
    broken = upload(admin_client, "/contacts/import", (SAMPLES / "broken.vcf").read_bytes(), "broken.vcf",
                    replace="on")
    text = broken.get_data(as_text=True)
    assert broken.status_code == 400 and "nothing was changed" in text and "END:VCARD" in text
    assert contacts.book_path(data_dir).read_bytes() == before

    found = admin_client.get("/contacts/?q=0140000001").get_data(as_text=True)
    assert "Martin; Paul" in found and "Léa Petit" not in found
    export = admin_client.get("/contacts/export.csv?separator=semicolon")
    assert export.mimetype == "text/csv" and export.get_data(as_text=True).startswith("\ufeffname;company")
    assert "Jeanne Dupont-Martin" in export.get_data(as_text=True)

    contacts.import_contacts(data_dir, [{"name": f"Person {i:03}", "phones": [["work", f"0300000{i:03}"]]}
                                        for i in range(120)])
    second = admin_client.get("/contacts/?page=2").get_data(as_text=True)
    assert "Page 2 of 3" in second and "Person 05" in second
    post(admin_client, "/account/language", {"language": "fr"}, form_path="/account/")
    french = upload(admin_client, "/contacts/import", (SAMPLES / "broken.vcf").read_bytes(), "broken.vcf")
    assert "la fiche de la ligne 1 n’a pas de END:VCARD" in french.get_data(as_text=True)  # the core's reason too
    gone = post(admin_client, f"/contacts/{jeanne['id']}/delete", {}, form_path="/contacts/")
    assert gone.status_code == 302 and contacts.get_contact(data_dir, jeanne["id"]) is None
    assert contacts.lookup(data_dir, "0123456789").company == "Boulangerie Dupont"  # the imported one is left


def test_staff_keep_their_own_contacts_only(admin_client, runtime):
    def mutate(doc):
        doc["users"] += [{"login": login, "full_name": login.title(), "role": "staff",
                          "password_hash": hash_password("staff-password-1")} for login in ("alice", "bob")]
    runtime.engine.update("admin", "staff", mutate)
    clients = {}
    for login in ("alice", "bob"):
        app = create_app(runtime)
        app.config["TESTING"] = True
        clients[login] = app.test_client()
        assert sign_in(clients[login], login, "staff-password-1").status_code == 302
    alice, bob = clients["alice"], clients["bob"]
    assert alice.get("/contacts/").status_code == 403  # the shared book is the admin's
    assert 'href="/account/contacts/"' in alice.get("/account/").get_data(as_text=True)
    assert upload(alice, "/account/contacts/", (SAMPLES / "cards.vcf").read_bytes(), "cards.vcf").status_code == 302
    data_dir = runtime.ctx.data_dir
    assert contacts.lookup(data_dir, "+33123456789", "alice").source == "personal"
    assert contacts.lookup(data_dir, "+33123456789") is None
    assert contacts.lookup(data_dir, "+33123456789", "bob") is None
    mine = post(alice, "/account/contacts/new", {"name": "Maman", "kind0": "mobile", "number0": "0699999999"})
    assert mine.status_code == 302
    maman = next(c for c in contacts.read_book(data_dir, "alice") if c["name"] == "Maman")
    assert bob.get(f"/account/contacts/{maman['id']}/edit").status_code == 404
    post(bob, f"/account/contacts/{maman['id']}/delete", {}, form_path="/account/contacts/")
    assert contacts.get_contact(data_dir, maman["id"], "alice") is not None
    assert "Maman" in alice.get("/account/contacts/?q=maman").get_data(as_text=True)
    post(alice, f"/account/contacts/{maman['id']}/delete", {}, form_path="/account/contacts/")
    assert contacts.get_contact(data_dir, maman["id"], "alice") is None
