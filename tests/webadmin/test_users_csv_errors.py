"""CSV import errors: every bad cell of every row at once, in the preview's error summary (each entry linked to
its cell) and next to its row and column, in plain words with the expected format; problems of the whole
document (a duplicate against an existing user or another line) routed to the row by their field path; nothing
saved until the file is clean."""
from __future__ import annotations

import re

from appliance import usercsv
from tests.webadmin.test_error_summary import summary_links
from tests.webadmin.test_users_csv import (
    GOOD,
    confirm,
    confirm_form,
    counts,
    logins,
    row_of,
    upload,
    upload_and_confirm,
)

BAD = ("login,full_name,extension,email,role,language,enabled,mailbox_mb\n"
       "Dan!,Dan,2x,not-an-address,boss,de,perhaps,lots\n"
       "fred,,201,bea@acme.example,staff,fr,yes,\n"
       "gus,Gus,301,,,,,\n"
       "hal,Hal,301,hal@acme.example,,,,\n"
       "ivy,Ivy,302,,,,,\n")
EXPECTED = {"line2_login", "line2_extension", "line2_email", "line2_role", "line2_language", "line2_enabled",
            "line2_mailbox_mb", "line3_full_name", "line3_extension", "line3_email", "line4_extension",
            "line5_extension"}
RAW = ("Input should", "String should", "Value error", "Field required", "users.", "pbx", "already used by another")


def test_every_bad_cell_is_shown_at_once_by_row_and_column_and_nothing_is_saved(admin_client, runtime):
    upload_and_confirm(admin_client, GOOD)  # bea, extension 201, bea@acme.example
    before = runtime.store.current_id()
    response = upload(admin_client, BAD)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    links = summary_links(page)
    assert set(links) == EXPECTED and len(links) == len(EXPECTED), links
    for key in EXPECTED:  # each entry names its line and column, and its target is in that row
        line, column = re.fullmatch(r"line(\d+)_(\w+)", key).groups()
        entry = re.search(rf'<a href="#f-{key}">([^<]*)</a>', page).group(1)
        assert entry.startswith(f"Line {line}, {column}: "), entry
        assert f'id="f-{key}"' in row_of(page, int(line))
    summary = re.search(r'id="error-summary".*?</div>', page, re.S).group(0)
    assert not any(raw in summary for raw in RAW), summary
    line2 = row_of(page, 2)
    assert "use 2 to 6 digits, like 201" in line2 and "like anna@example.com" in line2
    assert "write one of: admin, staff, readonly" in line2 and "write one of: en, fr, zh_TW" in line2
    assert "starting with a letter, like anna.martin" in line2
    assert '<strong>extension</strong> <q>2x</q>' in line2  # the cell as the file has it
    line3 = row_of(page, 3)
    assert "enter the user&#39;s full name, like Anna Martin" in line3
    assert "already used by Béa Durand (bea)" in re.search(r'id="f-line3_extension".*?</li>', line3).group(0)
    assert "already used by Béa Durand (bea)" in re.search(r'id="f-line3_email".*?</li>', line3).group(0)
    assert "also on line 5 of the file" in row_of(page, 4) and "also on line 4 of the file" in row_of(page, 5)
    assert "import-add" in row_of(page, 6) and "import-error" in row_of(page, 5)
    assert counts(page).startswith("1 to add, 0 to change, 0 unchanged, 4 with errors.")
    assert 'id="confirm-import"' not in page and runtime.store.current_id() == before
    # a confirm posted anyway saves nothing
    refused = admin_client.post("/users/import/confirm", data={**confirm_form(page), "text": BAD, "digest": "x"})
    assert refused.status_code == 400 and "the file still has errors" in refused.get_data(as_text=True)
    assert runtime.store.current_id() == before
    assert logins(runtime) == ["admin", "bea"]


def test_the_corrected_file_imports_in_one_revision(admin_client, runtime):
    upload_and_confirm(admin_client, GOOD)
    before = runtime.store.current_id()
    fixed = ("login,full_name,extension,email,role,language,enabled,mailbox_mb\n"
             "dan,Dan,202,dan@acme.example,staff,fr,no,500\n"
             "gus,Gus,301,,,,,\n")
    preview = upload(admin_client, fixed)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'id="error-summary"' not in page
    assert confirm(admin_client, page).status_code == 200
    assert logins(runtime) == ["admin", "bea", "dan", "gus"] and runtime.store.current_id() == before + 1


def test_a_confirm_with_a_row_in_error_is_refused(admin_client, runtime):
    """The confirm plans the text again: a clean preview's text with a bad row added saves nothing."""
    page = upload(admin_client, "login,full_name,extension\nkim,Kim,203\n").get_data(as_text=True)
    form = confirm_form(page)
    before = runtime.store.current_id()
    refused = admin_client.post("/users/import/confirm", data={**form, "text": form["text"] + "jon,Jon,2x\n"})
    assert refused.status_code == 400 and "the file still has errors" in refused.get_data(as_text=True)
    assert "Line 3, extension: use 2 to 6 digits, like 201" in refused.get_data(as_text=True)
    assert runtime.store.current_id() == before and "kim" not in logins(runtime)


def test_document_problems_are_routed_by_field_path_not_by_message():
    """Whatever the message says, a problem at users.<index>.<field> lands on the row that wrote that user, and
    mail.user_quota_mb.<login> on that row's mailbox_mb; any other path is a problem of the whole file."""
    document = {"system": {"language": "en"}, "mail": {"user_quota_mb": {}},
                "users": [{"login": "admin", "full_name": "Ada", "role": "admin", "extension": "200"}]}
    rows = [(2, {"login": "admin", "full_name": "Ada Admin"}), (3, {"login": "lea", "full_name": "Léa"}),
            (4, {"login": "max", "full_name": "Max", "mailbox_mb": "9"})]

    def validate(doc: dict) -> list[tuple[str, str]]:
        where = {u["login"]: i for i, u in enumerate(doc["users"])}
        return [(f"users.{where['lea']}.full_name", "zz-one"), (f"users.{where['admin']}.department", "zz-two"),
                ("mail.user_quota_mb.max", "zz-three"), ("pbx.groups.0.members", "zz-four")]

    planned, general = usercsv.plan(rows, document, "admin", validate)
    errors = {row.line: row.errors for row in planned}
    assert errors == {2: [("department", "zz-two")], 3: [("full_name", "zz-one")], 4: [("mailbox_mb", "zz-three")]}
    assert general == ["zz-four"] and all(row.action == "error" for row in planned)
