"""Users as CSV through the web admin: export without secrets and with formula cells escaped; import with a
preview that saves nothing, per-row errors (tests/webadmin/test_users_csv_errors.py: every bad cell), one confirm
of a file without errors that applies every row as one revision."""
from __future__ import annotations

import csv
import html
import io
import re

from appliance import usercsv
from tests.webadmin.helpers import ADMIN, post, sign_in
from webadmin import create_app

GOOD = "login,full_name,extension,email,role,password\r\nbea,Béa Durand,201,bea@acme.example,staff,bea-secret-1\r\n"


def upload(client, content: bytes | str, name: str = "users.csv"):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return post(client, "/users/import", {"file": (io.BytesIO(data), name)}, form_path="/users/import",
                content_type="multipart/form-data")


def counts(page: str) -> str:
    return " ".join(re.search(r'<p id="import-counts">(.*?)</p>', page, re.S).group(1).split())


def confirm_form(page: str) -> dict:
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    return {k: html.unescape(v) for k, v in fields.items()}


def confirm(client, preview_page: str):
    return client.post("/users/import/confirm", data=confirm_form(preview_page))


def logins(runtime) -> list[str]:
    return [u.login for u in runtime.store.current().config.users]


def test_a_bad_row_is_shown_and_nothing_is_saved_until_the_file_is_clean_and_confirmed(admin_client, runtime):
    runtime.engine.update("admin", "box language", lambda d: d["system"].update(language="fr"))
    before = runtime.store.current_id()
    text = ("login,full_name,extension,email,password\n"
            "carl,Carl Martin,202,carl@acme.example,carl-secret-1\n"
            "Dan!,Dan,2x,not-an-address,short\n"
            "eve,Eve Li,,,\n")
    preview = upload(admin_client, text)
    page = preview.get_data(as_text=True)
    assert preview.status_code == 400 and runtime.store.current_id() == before
    bad = re.search(r'<tr id="line-3".*?</tr>', page, re.S).group(0)
    assert "error" in bad and "<strong>extension</strong> <q>2x</q>: use 2 to 6 digits" in bad
    assert "<strong>email</strong> <q>not-an-address</q>: enter an e-mail address" in bad
    assert "<strong>password</strong>: use at least 8 characters" in bad and "<strong>login</strong>" in bad
    assert "short" not in bad  # a password is never shown again
    assert 'class="import-add"' in re.search(r'<tr id="line-2"[^>]*>', page).group(0)
    assert counts(page).startswith("2 to add, 0 to change, 0 unchanged, 1 with errors.")
    assert 'id="confirm-import"' not in page
    page = upload(admin_client, text.replace("Dan!,Dan,2x,not-an-address,short\n", "")).get_data(as_text=True)
    done = confirm(admin_client, page)
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    assert logins(runtime) == ["admin", "carl", "eve"]
    assert runtime.store.current_id() == before + 1  # one revision for the whole import
    generated = re.search(r'id="imported-eve".*?<code class="password">([^<]+)</code>', body, re.S).group(1)
    assert "as in the file" in re.search(r'id="imported-carl".*?</tr>', body, re.S).group(0)
    for login, password in (("carl", "carl-secret-1"), ("eve", generated)):
        other = create_app(runtime).test_client()
        assert sign_in(other, login, password).status_code == 302
    user = runtime.store.current().config.user("carl")
    assert user.extension == "202" and user.full_name == "Carl Martin" and user.role == "staff"
    assert user.language == "fr"  # the box's default


def test_semicolon_and_bom_and_change_and_unchanged(admin_client, runtime):
    assert upload_and_confirm(admin_client, GOOD).status_code == 200
    text = "\ufefflogin;full_name;extension;vpn_enabled\r\nbea;Béatrice Durand;201;oui\r\nadmin;Ada Admin;;\r\n"
    preview = upload(admin_client, text.encode("utf-8"))
    page = preview.get_data(as_text=True)
    assert counts(page).startswith("0 to add, 1 to change, 1 unchanged, 0 with errors.")
    assert "changes full_name, vpn_enabled" in page
    assert confirm(admin_client, page).status_code == 200
    bea = runtime.store.current().config.user("bea")
    assert bea.full_name == "Béatrice Durand" and bea.vpn_enabled and bea.email == "bea@acme.example"


def upload_and_confirm(client, text: str):
    return confirm(client, upload(client, text).get_data(as_text=True))


def test_duplicates_within_the_file_and_with_existing_users(admin_client, runtime):
    upload_and_confirm(admin_client, GOOD)
    text = "login,full_name,extension\nfred,Fred,201\ngus,Gus,301\ngus,Gus Again,302\nadmin,Ada,\n"
    page = upload(admin_client, text).get_data(as_text=True)
    assert "<q>201</q>: already used by Béa Durand (bea); choose another one" in row_of(page, 2)
    assert "this login is already on line 3 of the file" in row_of(page, 4)
    assert "import-add" in row_of(page, 3)


def test_own_admin_rights_cannot_be_removed_by_import(admin_client, runtime):
    page = upload(admin_client, "login,full_name,role\nadmin,Ada,staff\n").get_data(as_text=True)
    assert "you cannot remove your own admin rights" in row_of(page, 2)
    assert 'id="confirm-import"' not in page


def row_of(page: str, line: int) -> str:
    return re.search(rf'<tr id="line-{line}".*?</tr>', page, re.S).group(0)


def test_a_concurrent_change_refuses_the_confirm(admin_client, runtime):
    page = upload(admin_client, "login,full_name,extension\nhal,Hal,250\n").get_data(as_text=True)
    runtime.engine.update("admin", "meanwhile", lambda d: d["users"].append(
        {"login": "ivy", "full_name": "Ivy", "extension": "250"}))
    done = confirm(admin_client, page)
    assert done.status_code == 409 and "changed meanwhile" in done.get_data(as_text=True)
    assert "hal" not in logins(runtime)


def test_a_tampered_text_is_planned_again_not_applied(admin_client, runtime):
    page = upload(admin_client, GOOD).get_data(as_text=True)
    form = confirm_form(page)
    form["text"] = form["text"].replace("staff", "admin")
    done = admin_client.post("/users/import/confirm", data=form)
    assert done.status_code == 409 and "bea" not in logins(runtime)


def test_export_has_no_secrets_and_escapes_formulas(admin_client, runtime):
    upload_and_confirm(admin_client, "login,full_name,email\njon,=cmd|' /C calc'!A0,\nkim,@SUM(A1),\n")
    response = admin_client.get("/users/export.csv")
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    assert body.startswith("\ufeff") and "argon2" not in body and "password_hash" not in body
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [r["login"] for r in rows] == ["admin", "jon", "kim"]
    jon = next(r for r in rows if r["login"] == "jon")
    assert jon["full_name"] == "'=cmd|' /C calc'!A0" and next(r for r in rows if r["login"] == "kim")[
        "full_name"] == "'@SUM(A1)"
    assert all(not cell.startswith(usercsv.FORMULA_START) for r in rows for cell in r.values())
    assert rows[0]["role"] == "admin" and rows[0]["proxy_password"] == "no"
    semicolons = admin_client.get("/users/export.csv?separator=semicolon").get_data(as_text=True)
    assert semicolons.splitlines()[0] == "\ufeff" + ";".join(usercsv.EXPORT_COLUMNS)
    # the export imports back unchanged (the apostrophe is not part of the name)
    page = upload(admin_client, body.encode("utf-8")).get_data(as_text=True)
    assert counts(page).startswith("0 to add, 0 to change, 3 unchanged, 0 with errors.")


def test_broken_and_huge_files_are_refused_clearly(admin_client, runtime):
    before = runtime.store.current_id()
    cases = [
        (b"", "the file is empty"),
        ("login,full_name\nbea,Béa\n".encode("latin-1"), "not UTF-8 text"),
        (b"login,full_name\n\"bea,Bea\n", "check its quotes"),
        (b"name,phone\nbea,201\n", "unknown column(s) name, phone"),
        (b"login,full_name\n" + b"u,User\n" * 40000, "larger than 256 KB"),
        (b"login,full_name\n" + b"".join(b"u%d,User\n" % i for i in range(usercsv.MAX_ROWS + 1)),
         f"more than {usercsv.MAX_ROWS} users"),
    ]
    for content, message in cases:
        response = upload(admin_client, content)
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and message in page, (message, page[:3000])
    assert upload(admin_client, b"x" * (3 * 1024 * 1024)).status_code == 413  # beyond the upload limit
    assert runtime.store.current_id() == before


def test_staff_cannot_import_or_export(admin_client, runtime):
    upload_and_confirm(admin_client, GOOD)
    staff = create_app(runtime).test_client()
    assert sign_in(staff, "bea", "bea-secret-1").status_code == 302
    assert staff.get("/users/export.csv").status_code in (302, 403)
    assert staff.get("/users/import").status_code in (302, 403)
    assert ADMIN["login"] in logins(runtime)


def test_the_confirm_accepts_the_text_as_a_browser_posts_it(admin_client, runtime):
    """A browser sends a form value's line breaks as CR LF: still the plan the preview showed."""
    form = confirm_form(upload(admin_client, GOOD.replace("\r\n", "\n")).get_data(as_text=True))
    form["text"] = form["text"].replace("\n", "\r\n")
    assert admin_client.post("/users/import/confirm", data=form).status_code == 200
    assert "bea" in logins(runtime)


def test_mailbox_sizes_are_exported_and_imported(admin_client, runtime):
    upload_and_confirm(admin_client, "login,full_name,mailbox_mb\nlea,Léa,500\nmax,Max,\n")
    mail = runtime.store.current().config.mail
    assert mail.user_quota_mb == {"lea": 500}
    rows = {r["login"]: r for r in csv.DictReader(io.StringIO(
        admin_client.get("/users/export.csv").get_data(as_text=True).lstrip("\ufeff")))}
    assert rows["lea"]["mailbox_mb"] == "500" and rows["max"]["mailbox_mb"] == ""
    page = upload(admin_client, "login,mailbox_mb\nlea,\nmax,lots\n").get_data(as_text=True)
    assert "changes mailbox_mb" in row_of(page, 2)
    assert "<strong>mailbox_mb</strong> <q>lots</q>: enter a whole number of megabytes" in row_of(page, 3)
    new = upload(admin_client, "login,role\nned,boss\n").get_data(as_text=True)
    assert "<strong>full_name</strong>: enter the user&#39;s full name, like Anna Martin" in row_of(new, 2)
    assert "<strong>role</strong> <q>boss</q>: write one of: admin, staff, readonly" in row_of(new, 2)
    page = upload(admin_client, "login,mailbox_mb\nlea,\n").get_data(as_text=True)
    assert confirm(admin_client, page).status_code == 200
    assert runtime.store.current().config.mail.user_quota_mb == {}


def test_markup_in_a_file_is_shown_as_text(admin_client, runtime):
    page = upload(admin_client, 'login,full_name\n"<b>x","<script>alert(1)</script>"\n').get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<b>x" not in page
    assert "&lt;b&gt;x" in row_of(page, 2) and "import-error" in row_of(page, 2)
