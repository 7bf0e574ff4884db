"""Contacts (shared by the whole box): list, search and pages, add, edit, delete, import vCard or CSV (all
or nothing), export CSV. The books live in the core (appliance/contacts.py), outside the configuration;
staff keep their personal contacts on /account/contacts (mycontacts.py, which uses the helpers here)."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance import contactfiles, contacts, usercsv
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("contacts", __name__, url_prefix="/contacts")
NAV = [(N_("Directory"), N_("Contacts"), "contacts.index")]
PAGE_SIZE = 50
PHONE_ROWS = 4
KIND_LABELS = {"work": N_("work"), "mobile": N_("mobile"), "home": N_("home"), "fax": N_("fax"), "other": N_("other")}
core.LARGE_UPLOADS["contacts.import_file"] = contactfiles.MAX_BYTES + 64 * 1024
# the message ids of the core's ContactError texts (appliance/contacts.py, contactfiles.py), shown translated
MESSAGES = (N_("a name, company or e-mail is longer than %(most)d characters"),
            N_("a contact needs a name or a company"),
            N_("a name or company contains control characters"),
            N_("“%(number)s” is not a phone number (digits, spaces, - . / ( ) and a leading +)"),
            N_("%(name)s: a contact needs at least one phone number"),
            N_("%(name)s: at most %(most)d phone numbers per contact"), N_("a book holds at most %(most)d contacts"),
            N_("this contact no longer exists"), N_("contact %(number)d: %(reason)s"), N_("the file is empty"),
            N_("the file is larger than %(kb)d KB; split it into smaller files"),
            N_("the file is not UTF-8 text (export it again as UTF-8)"),
            N_("no “:” between the property and its value"), N_("its quoted-printable text cannot be decoded"),
            N_("line %(line)d cannot be read: %(reason)s"),
            N_("line %(line)d: a card begins inside the card of line %(start)d"),
            N_("line %(line)d: END:VCARD without BEGIN:VCARD"),
            N_("line %(line)d is outside a card (BEGIN:VCARD ... END:VCARD)"),
            N_("the card of line %(line)d has no END:VCARD (the file is cut short)"),
            N_("the file holds no vCard (BEGIN:VCARD)"),
            N_("the file is not a readable CSV file (%(reason)s); check its quotes"),
            N_("the first line must name the columns: a name (or company) and a phone number "
               "(e.g. name;company;phone;mobile)"),
            N_("line %(line)d has more cells than the first line has columns"),
            N_("no contact in the file has a name and a phone number"))


def shown(message) -> str:
    """A core message in the reader's language (its nested reasons too)."""
    if isinstance(message, usercsv.Text):
        return _(message.msgid, **{k: shown(v) if isinstance(v, usercsv.Text) else v
                                   for k, v in message.values.items()})
    return str(message)


def data_dir():
    return core.runtime().ctx.data_dir


def listing(login: str | None) -> dict:
    """The template values of a book's page: search `q`, page `page`."""
    query = (request.args.get("q") or "").strip()[:100]
    book = contacts.read_book(data_dir(), login)
    found = contacts.search(book, query)
    pages = max(1, -(-len(found) // PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    return {"contacts": found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], "query": query, "page": page,
            "pages": pages, "total": len(book), "found": len(found), "kinds": KIND_LABELS}


def posted_contact(contact_id: str | None) -> dict:
    phones = [[forms.text(f"kind{i}", 10), forms.text(f"number{i}", contacts.MAX_NUMBER + 1)]
              for i in range(PHONE_ROWS)]
    return {"id": contact_id, "name": forms.text("name", 101), "company": forms.text("company", 101),
            "email": forms.text("email", 201), "phones": [p for p in phones if p[1]]}


def form_rows(entry: dict) -> list[list[str]]:
    rows = [list(p) for p in entry.get("phones", [])]
    return rows + [["work", ""]] * (PHONE_ROWS - len(rows))


def save(login: str | None, contact_id: str | None, template: str, back: str):
    """GET: the form; POST: save, or the form again with the reason (nothing changed)."""
    entry = contacts.get_contact(data_dir(), contact_id, login) if contact_id else {}
    if entry is None:
        abort(404)
    error = None
    if request.method == "POST":
        entry = posted_contact(contact_id)
        try:
            contacts.save_contact(data_dir(), entry, login)
        except contacts.ContactError as exc:
            error = _("Nothing was saved: %(reason)s.", reason=shown(exc.args[0]))
        else:
            flash(_("The contact %(name)s was saved.", name=entry["name"] or entry["company"]), "success")
            return redirect(url_for(back))
    return render_template(template, entry=entry, rows=form_rows(entry), kinds=KIND_LABELS, error=error,
                           max_phones=PHONE_ROWS), 400 if error else 200


def delete(login: str | None, contact_id: str, back: str):
    if contacts.delete_contact(data_dir(), contact_id, login):
        flash(_("The contact was deleted."), "success")
    return redirect(url_for(back))


def import_upload(login: str | None) -> str | None:
    """Import the posted file into the book: None when done (flashed), else the reason nothing changed."""
    upload = request.files.get("file")
    data = upload.read(contactfiles.MAX_BYTES + 1) if upload else b""
    try:
        entries, skipped = contactfiles.read_file(data, upload.filename or "" if upload else "")
        if not entries:
            raise contacts.ContactError(usercsv.Text("no contact in the file has a name and a phone number"))
        added = contacts.import_contacts(data_dir(), entries, login, replace=forms.checkbox("replace"))
    except contacts.ContactError as exc:
        return _("This file cannot be imported, nothing was changed: %(reason)s.", reason=shown(exc.args[0]))
    flash(_("%(added)d contacts imported, %(skipped)d without a phone number left out.", added=added,
            skipped=skipped), "success")
    return None


@bp.route("/")
@core.admin_required
def index():
    return render_template("contacts/index.html", **listing(None))


@bp.route("/new", methods=["GET", "POST"])
@core.admin_required
def create():
    return save(None, None, "contacts/form.html", "contacts.index")


@bp.route("/<contact_id>/edit", methods=["GET", "POST"])
@core.admin_required
def edit(contact_id: str):
    return save(None, contact_id, "contacts/form.html", "contacts.index")


@bp.route("/<contact_id>/delete", methods=["POST"])
@core.admin_required
def remove(contact_id: str):
    return delete(None, contact_id, "contacts.index")


@bp.route("/import", methods=["GET", "POST"])
@core.admin_required
def import_file():
    error = import_upload(None) if request.method == "POST" else None
    if request.method == "POST" and error is None:
        return redirect(url_for("contacts.index"))
    return render_template("contacts/import.html", error=error, max_kb=contactfiles.MAX_BYTES // 1024,
                           max_contacts=contacts.MAX_SHARED), 400 if error else 200


@bp.route("/export.csv")
@core.admin_required
def export():
    delimiter = ";" if request.args.get("separator") == "semicolon" else ","
    body = contactfiles.export_csv(contacts.read_book(data_dir()), delimiter)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=officebox-contacts.csv", "Cache-Control": "no-store"})
