"""The contact books (appliance/contacts.py): number matching, personal before shared, vCard and CSV files
(real sample files), all-or-nothing imports, limits, backups, and the read access of a service's user."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import backup, contactfiles, contacts, serviceusers
from appliance.contacts import ContactError, lookup
from appliance.context import Context

SAMPLES = Path(__file__).parent / "contacts_samples"


def _add(data, name, *numbers, login=None, company=""):
    return contacts.save_contact(data, {"name": name, "company": company,
                                        "phones": [["work", n] for n in numbers]}, login)


def test_numbers_match_in_every_usual_form_and_personal_contacts_win(tmp_path):
    _add(tmp_path, "Jeanne Dupont", "+33 1 23 45 67 89", company="Boulangerie")
    _add(tmp_path, "Reception", "201")
    for form in ("+33123456789", "0033 1 23 45 67 89", "01-23-45-67-89", "(01) 23.45.67.89", "123456789"):
        found = lookup(tmp_path, form)
        assert found is not None and found.name == "Jeanne Dupont" and found.source == "shared", form
        assert found.company == "Boulangerie" and found.number == "+33 1 23 45 67 89"
    assert lookup(tmp_path, "201").name == "Reception"
    assert lookup(tmp_path, "1201") is None and lookup(tmp_path, "+44 1 23 45 67 80") is None
    assert lookup(tmp_path, "") is None and lookup(tmp_path, "anonymous") is None
    _add(tmp_path, "Maman", "01 23 45 67 89", login="alice")
    assert lookup(tmp_path, "+33123456789", "alice") == contacts.Contact("Maman", "", "01 23 45 67 89", "personal")
    assert lookup(tmp_path, "+33123456789", "bob").name == "Jeanne Dupont"
    assert lookup(tmp_path, "+33123456789", "../shared").name == "Jeanne Dupont"  # not a login: shared only


def test_the_event_loop_lookup_only_reads_what_load_read(tmp_path):
    _add(tmp_path, "Loaded", "0155555555")
    assert contacts.lookup_loaded(tmp_path, "0155555555") is None  # never parsed yet
    contacts.load(tmp_path, ["alice"])
    assert contacts.lookup_loaded(tmp_path, "0155555555").name == "Loaded"
    _add(tmp_path, "Loaded later", "0166666666", login="alice")
    assert contacts.lookup_loaded(tmp_path, "0166666666", "alice") is None
    contacts.load(tmp_path, ["alice"])
    assert contacts.lookup_loaded(tmp_path, "0166666666", "alice").source == "personal"


def test_edits_and_a_bad_contact_change_nothing(tmp_path):
    saved = _add(tmp_path, "Paul", "0140000001")
    before = contacts.book_path(tmp_path).read_bytes()
    for bad in ({"name": "", "phones": [["work", "1"]]}, {"name": "X", "phones": []},
                {"name": "X", "phones": [["work", "call me"]]}, {"name": "x" * 101, "phones": [["work", "1"]]},
                {"id": "gone", "name": "X", "phones": [["work", "1"]]}):
        with pytest.raises(ContactError):
            contacts.save_contact(tmp_path, bad)
    assert contacts.book_path(tmp_path).read_bytes() == before
    contacts.save_contact(tmp_path, {**saved, "name": "Paul Martin"})
    assert [c["name"] for c in contacts.read_book(tmp_path)] == ["Paul Martin"]
    assert lookup(tmp_path, "01 40 00 00 01").name == "Paul Martin"
    assert contacts.delete_contact(tmp_path, saved["id"]) and lookup(tmp_path, "0140000001") is None
    assert oct(contacts.book_path(tmp_path).stat().st_mode & 0o777) == oct(contacts.FILE_MODE)


def test_vcards_of_every_version_are_read():
    cards, skipped = contactfiles.read_file((SAMPLES / "cards.vcf").read_bytes(), "cards.vcf")
    assert skipped == 1  # the card without a number
    assert [(c["name"], c["company"], c["phones"]) for c in cards] == [
        ("Jeanne Dupont", "Boulangerie Dupont", [["work", "+33 1 23 45 67 89"], ["mobile", "06 12 34 56 78"]]),
        ("陳大文", "台北貿易", [["home", "+886-2-2345-6789"]]),
        ("Jörg Müller", "Großhandel Müller", [["fax", "+49 30 1234567"]]),
    ]
    assert cards[0]["email"] == "jeanne@example.fr"


def test_csv_with_bom_semicolons_and_french_headers_is_read_and_exported_back():
    rows, skipped = contactfiles.read_file((SAMPLES / "contacts.csv").read_bytes(), "contacts.csv")
    assert skipped == 1
    assert [(r["name"], r["company"], r["phones"], r["email"]) for r in rows] == [
        ("Martin; Paul", "ACME", [["work", "01 40 00 00 01"], ["mobile", "+33 6 00 00 00 02"]], "paul@acme.fr"),
        ("Léa Petit", "", [["work", "0033 1 40 00 00 03"]], ""),
    ]
    exported = contactfiles.export_csv([contacts._clean(r) for r in rows], ";")
    assert exported.startswith("\ufeffname;company;email;work;mobile;home;fax;other\r\n")
    assert "'+33 6 00 00 00 02" in exported  # a spreadsheet does not run it as a formula
    again, _ = contactfiles.read_csv(exported.lstrip("\ufeff"))
    assert [r["phones"] for r in again] == [r["phones"] for r in rows]


@pytest.mark.parametrize("data, reason", [
    ((SAMPLES / "broken.vcf").read_bytes(), "no END:VCARD"),
    (b"BEGIN:VCARD\r\nFN Jo\r\nEND:VCARD\r\n", "line 2 cannot be read"),
    (b"\xff\xfeB\x00", "not UTF-8"),
    (b"", "empty"),
    (b"a,b\r\n1,2\r\n", "must name the columns"),
    (b"name,phone\r\n\"Jo,0102\r\n", "CSV"),
    (b"x" * (contactfiles.MAX_BYTES + 1), "larger than"),
])
def test_a_broken_file_gets_a_clear_error(data, reason):
    with pytest.raises(ContactError, match=reason):
        contactfiles.read_file(data, "upload")


def test_imports_are_all_or_nothing_and_limited(tmp_path, monkeypatch):
    _add(tmp_path, "Kept", "0100000000")
    with pytest.raises(ContactError, match="contact 2"):
        contacts.import_contacts(tmp_path, [{"name": "A", "phones": [["work", "01"]]}, {"name": "B", "phones": []}])
    monkeypatch.setattr(contacts, "MAX_SHARED", 3)
    with pytest.raises(ContactError, match="at most 3"):
        contacts.import_contacts(tmp_path, [{"name": n, "phones": [["work", "02"]]} for n in "ABC"])
    assert [c["name"] for c in contacts.read_book(tmp_path)] == ["Kept"]
    assert contacts.import_contacts(tmp_path, [{"name": "New", "phones": [["work", "03"]]}], replace=True) == 1
    assert [c["name"] for c in contacts.read_book(tmp_path)] == ["New"]


def test_books_are_in_backups_and_come_back_with_a_restore(engine, ctx, tmp_path):
    _add(ctx.data_dir, "Shared One", "0111111111")
    _add(ctx.data_dir, "Personal One", "0222222222", login="alice")
    target = tmp_path / "box.obx"
    manifest = backup.create_backup(ctx, engine, target)
    assert {"state/contacts/shared.json", "state/contacts/personal/alice.json"} <= set(manifest["files"])
    contacts.delete_contact(ctx.data_dir, contacts.read_book(ctx.data_dir)[0]["id"])
    backup.restore_backup(ctx, engine, target, "admin")
    assert lookup(ctx.data_dir, "0111111111").name == "Shared One"
    assert lookup(ctx.data_dir, "0222222222", "alice").source == "personal"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_the_pbx_user_may_read_the_books_and_nothing_else(data):
    ctx = Context(data, lab=True)
    _add(data, "Before", "0133333333")
    os.chmod(contacts.book_path(data), 0o600)  # as a restore leaves it
    secret = data / "config.sqlite"
    secret.write_text("secret")
    secret.chmod(0o600)
    drop = serviceusers.prepare(ctx, "pbx")  # what the appliance does before each start of the PBX process
    _add(data, "After", "0144444444", login="alice")  # written after: readable too

    def as_pbx(code: str) -> subprocess.CompletedProcess:
        return subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              cwd=Path(contacts.__file__).parent.parent)
    out = as_pbx(f"from appliance.contacts import lookup; from pathlib import Path; d = Path({str(data)!r}); "
                 "print(lookup(d, '0133333333').name, lookup(d, '0144444444', 'alice').name)")
    assert out.stdout.split() == ["Before", "After"], out.stderr
    assert "Permission" in as_pbx(f"open({str(secret)!r}).read()").stderr
    assert "Permission" in as_pbx(f"open({str(contacts.folder(data) / '.lock')!r}).read()").stderr
