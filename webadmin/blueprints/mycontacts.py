"""My contacts (/account/contacts): the signed-in user's personal contacts, which their phone shows as
caller names before the shared ones: add, edit, delete, import a vCard or CSV file. Only their own book."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from appliance import contactfiles, contacts
from webadmin import core
from webadmin.blueprints.contacts import delete, import_upload, listing, save

bp = Blueprint("mycontacts", __name__, url_prefix="/account/contacts")


@bp.route("/", methods=["GET", "POST"])
@core.login_required
def index():
    login = core.current_user().login
    error = import_upload(login) if request.method == "POST" else None
    if request.method == "POST" and error is None:
        return redirect(url_for("mycontacts.index"))
    return render_template("account/contacts.html", error=error, max_kb=contactfiles.MAX_BYTES // 1024,
                           max_contacts=contacts.MAX_PERSONAL, **listing(login)), 400 if error else 200


@bp.route("/new", methods=["GET", "POST"])
@core.login_required
def create():
    return save(core.current_user().login, None, "account/contacts_form.html", "mycontacts.index")


@bp.route("/<contact_id>/edit", methods=["GET", "POST"])
@core.login_required
def edit(contact_id: str):
    return save(core.current_user().login, contact_id, "account/contacts_form.html", "mycontacts.index")


@bp.route("/<contact_id>/delete", methods=["POST"])
@core.login_required
def remove(contact_id: str):
    return delete(core.current_user().login, contact_id, "mycontacts.index")
