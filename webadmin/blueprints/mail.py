"""Mail pages: domains and relay rules, mailboxes (one per user), aliases and lists, smarthost, queue."""
from __future__ import annotations

import time

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.clients import ServiceRestarting
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("mail", __name__, url_prefix="/mail")
NAV = [(N_("Mail"), N_("Domains & relay"), "mail.index"), (N_("Mail"), N_("Mailboxes"), "mail.mailboxes"),
       (N_("Mail"), N_("Aliases & lists"), "mail.aliases"), (N_("Mail"), N_("Smarthost"), "mail.smarthost"),
       (N_("Mail"), N_("Queue"), "mail.queue")]
BUSY = N_("this message is being delivered right now; try again in a moment")  # services/mail/outbound.py


def _service():
    return core.service_or_404("mail")


def _lines(name: str) -> list[str]:
    """A textarea or comma list: one value per line or comma, blanks dropped."""
    raw = (request.form.get(name) or "")[:20000]
    return [v.strip() for v in raw.replace(",", "\n").splitlines() if v.strip()]


def _int(name: str, errors: dict[str, str]) -> int | None:
    value = forms.text(name, 12)
    if not value.isdigit():
        errors[name] = _("enter a whole number")
        return None
    return int(value)


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def index():
    config = core.current_config()
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        domains = [d.lower() for d in _lines("extra_domains")]
        networks = _lines("relay_networks")
        devices = _lines("relay_devices")
        size_mb = _int("max_message_size_mb", errors)
        relay_from_lan = forms.checkbox("relay_from_lan")
        if not errors:
            def mutate(doc: dict) -> None:
                doc["mail"].update(extra_domains=domains, relay_networks=networks, relay_devices=devices,
                                   relay_from_lan=relay_from_lan, max_message_size=size_mb * 1024 * 1024)

            errors, general = forms.apply_form("change mail domains and relay rules", mutate, "mail")
            errors = {k.split(".")[0]: v for k, v in errors.items()}
            if "max_message_size" in errors:
                errors["max_message_size_mb"] = _("choose between 1 and 200 MB")
            if not errors and not general:
                flash(_("Mail settings saved."), "success")
                return redirect(url_for("mail.index"))
    status = _service().status()
    return render_template("mail/index.html", config=config, section=config.mail, status=status,
                           errors=errors, general=general,
                           form=request.form if request.method == "POST" else None), \
        (400 if errors or general else 200)


@bp.route("/mailboxes", methods=["GET", "POST"])
@core.admin_required
def mailboxes():
    config = core.current_config()
    service = _service()
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        errors, general = _save_quotas(config)
        if not errors and not general:
            flash(_("Mailbox quotas saved."), "success")
            return redirect(url_for("mail.mailboxes"))
    rows = []
    for user in sorted(config.users, key=lambda u: u.login):
        count, size = service.mailbox_usage(user.login)
        rows.append({"user": user, "address": user.mail_address(config.system.mail_domain), "count": count,
                     "size": size, "quota_mb": config.mail.user_quota_mb.get(user.login, config.mail.quota_mb),
                     "own_quota": config.mail.user_quota_mb.get(user.login),
                     "can_login": bool(user.password_hash) and user.enabled})
    return render_template("mail/mailboxes.html", rows=rows, section=config.mail, lab=core.runtime().ctx.lab,
                           hostname=f"{config.system.hostname}.{config.system.domain}", errors=errors,
                           general=general, form=request.form if request.method == "POST" else None), \
        (400 if errors or general else 200)


def _save_quotas(config) -> tuple[dict[str, str], list[str]]:
    """The default quota (`quota_mb`) and each user's own (`quota_<login>`, empty: the default)."""
    errors: dict[str, str] = {}
    default = _int("quota_mb", errors)
    own: dict[str, int] = {}
    for user in config.users:
        name = f"quota_{user.login}"
        if forms.text(name, 12):
            value = _int(name, errors)
            if value is not None:
                own[user.login] = value
    if errors:
        return errors, []

    def mutate(doc: dict) -> None:
        doc["mail"].update(quota_mb=default, user_quota_mb=own)

    fields = {"mail.quota_mb": "quota_mb", **{f"mail.user_quota_mb.{login}": f"quota_{login}" for login in own}}
    return forms.apply_form("change mailbox quotas", mutate, fields=fields)


@bp.route("/aliases", methods=["GET", "POST"])
@core.admin_required
def aliases():
    config = core.current_config()
    errors: dict[str, str] = {}
    general: list[str] = []
    values = {"name": "", "targets": "", "description": ""}
    edit = request.args.get("edit", "")
    current = next((a for a in config.mail.aliases if a.name == edit), None)
    if current is not None:
        values = {"name": current.name, "targets": "\n".join(current.targets), "description": current.description}
    if request.method == "POST":
        original = forms.text("original", 64)
        values = {"name": forms.text("name", 64).lower(), "targets": request.form.get("targets", "")[:20000],
                  "description": forms.text("description", 200)}
        entry = {"name": values["name"], "targets": _lines("targets"), "description": values["description"]}
        names = [a.name for a in config.mail.aliases]
        index = names.index(original) if original in names else len(names)

        def mutate(doc: dict) -> None:
            found = [a["name"] for a in doc["mail"]["aliases"]]
            if original in found:
                doc["mail"]["aliases"][found.index(original)] = entry
            else:
                doc["mail"]["aliases"].append(entry)

        what = f"edit mail alias {original}" if original else f"add mail alias {entry['name']}"
        errors, general = forms.apply_form(what, mutate, prefix=f"mail.aliases.{index}")
        errors = {k.split(".")[0]: v for k, v in errors.items()}
        if not errors and not general:
            flash(_("Alias %(name)s saved.", name=entry['name']), "success")
            return redirect(url_for("mail.aliases"))
        edit = original
    return render_template("mail/aliases.html", aliases=config.mail.aliases, domain=config.system.mail_domain,
                           values=values, errors=errors, general=general, edit=edit), \
        (400 if errors or general else 200)


@bp.route("/aliases/<name>/delete", methods=["POST"])
@core.admin_required
def delete_alias(name: str):
    if not any(a.name == name for a in core.current_config().mail.aliases):
        abort(404)

    def mutate(doc: dict) -> None:
        doc["mail"]["aliases"] = [a for a in doc["mail"]["aliases"] if a["name"] != name]

    errors, general = forms.apply_form(f"delete mail alias {name}", mutate, "mail")
    if errors or general:
        flash("; ".join(general + list(errors.values())), "error")
    else:
        flash(_("Alias %(name)s deleted.", name=name), "success")
    return redirect(url_for("mail.aliases"))


@bp.route("/smarthost", methods=["GET", "POST"])
@core.admin_required
def smarthost():
    config = core.current_config()
    errors: dict[str, str] = {}
    general: list[str] = []
    values = config.mail.smarthost.model_dump()
    values["retry_initial_seconds"] = config.mail.retry_initial_seconds
    values["retry_max_seconds"] = config.mail.retry_max_seconds
    values["queue_lifetime_hours"] = config.mail.queue_lifetime_seconds // 3600
    if request.method == "POST":
        values = {"host": forms.text("host", 253), "port": forms.text("port", 6),
                  "security": forms.text("security", 10), "username": forms.text("username", 200),
                  "verify_certificate": forms.checkbox("verify_certificate"),
                  "retry_initial_seconds": forms.text("retry_initial_seconds", 6),
                  "retry_max_seconds": forms.text("retry_max_seconds", 6),
                  "queue_lifetime_hours": forms.text("queue_lifetime_hours", 4)}
        numbers = {k: _int(k, errors) for k in ("port", "retry_initial_seconds", "retry_max_seconds",
                                                 "queue_lifetime_hours")}
        password = request.form.get("password") or ""
        clear_password = forms.checkbox("clear_password")
        if not errors:
            def mutate(doc: dict) -> None:
                host = doc["mail"]["smarthost"]
                host.update(host=values["host"], port=numbers["port"], security=values["security"],
                            username=values["username"], verify_certificate=values["verify_certificate"])
                if password:
                    host["password"] = password[:200]
                elif clear_password:
                    host["password"] = ""
                doc["mail"].update(retry_initial_seconds=numbers["retry_initial_seconds"],
                                   retry_max_seconds=numbers["retry_max_seconds"],
                                   queue_lifetime_seconds=numbers["queue_lifetime_hours"] * 3600)

            errors, general = forms.apply_form("change the mail smarthost", mutate, "mail")
            renamed = {"smarthost.host": "host", "smarthost.port": "port", "smarthost.security": "security",
                       "smarthost.username": "username", "smarthost.password": "password",
                       "queue_lifetime_seconds": "queue_lifetime_hours"}
            errors = {renamed.get(k, k): v for k, v in errors.items()}
            if not errors and not general:
                flash(_("Smarthost saved."), "success")
                return redirect(url_for("mail.smarthost"))
    return render_template("mail/smarthost.html", values=values, errors=errors, general=general,
                           has_password=bool(config.mail.smarthost.password)), (400 if errors or general else 200)


@bp.route("/queue")
@core.admin_required
def queue():
    now = time.time()
    entries = _service().queue_entries()
    return render_template("mail/queue.html", entries=entries, now=now)


@bp.route("/queue/<qid>/retry", methods=["POST"])
@core.admin_required
def retry(qid: str):
    try:
        retried = _service().retry_now(qid)
    except ServiceRestarting:
        flash(_("The mail service is restarting; try again in a moment."), "warning")
        return redirect(url_for("mail.queue"))
    if retried:
        flash(_("Message %(qid)s will be retried now.", qid=qid), "success")
    else:
        flash(_("Message %(qid)s is no longer in the queue.", qid=qid), "warning")
    return redirect(url_for("mail.queue"))


@bp.route("/queue/<qid>/delete", methods=["POST"])
@core.admin_required
def delete(qid: str):
    from services.mail import QueueBusy

    try:
        removed = _service().delete_queued(qid)
    except QueueBusy as exc:
        flash(_(str(exc)), "warning")  # BUSY, translated
        return redirect(url_for("mail.queue"))
    except ServiceRestarting:
        flash(_("The mail service is restarting; try again in a moment."), "warning")
        return redirect(url_for("mail.queue"))
    flash(_("Message %(qid)s deleted.", qid=qid) if removed
          else _("Message %(qid)s is no longer in the queue.", qid=qid),
          "success" if removed else "warning")
    return redirect(url_for("mail.queue"))
