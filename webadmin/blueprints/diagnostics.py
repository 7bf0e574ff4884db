"""Diagnostics from the box itself: ping, the path to a host (tracepath), a DNS lookup through the box's own
resolver (what the LAN's computers get) and a test e-mail through the box's own mail service.

Each tool runs with a fixed argument list (no shell), a host checked against HOST, a time limit and its
output cut at OUTPUT_LIMIT; it runs in the request's thread, never on a service's event loop.
"""
from __future__ import annotations

import re
import smtplib
import subprocess
from email.message import EmailMessage

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

from appliance.users import EMAIL_PATTERN
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("diagnostics", __name__, url_prefix="/diagnostics")
NAV = [(N_("System"), N_("Diagnostics"), "diagnostics.index")]
HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^[0-9a-fA-F]*:[0-9a-fA-F:.]+$")
RECORD_TYPES = ("A", "AAAA", "MX", "TXT", "PTR", "SRV", "NS", "CNAME")
TIMEOUT = 30
OUTPUT_LIMIT = 64 * 1024
TOOLS = ("ping", "tracepath", "dns", "mail")


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return out[:OUTPUT_LIMIT] + "\n" + _("(stopped after %(seconds)d seconds)", seconds=TIMEOUT)
    except OSError as exc:
        return _("the tool cannot run: %(error)s", error=exc.strerror or exc)
    return (done.stdout + done.stderr)[:OUTPUT_LIMIT]


def _dns_port(config) -> int:
    return config.dns.lab_port if core.runtime().ctx.lab else config.dns.port


def _test_mail(config, address: str) -> str:
    msg = EmailMessage()
    msg["Subject"] = _("Test message from %(host)s", host=config.system.hostname)
    msg["From"] = f"OfficeBox {config.system.hostname} <notifications@{config.system.mail_domain}>"
    msg["To"] = address
    msg.set_content(_("This test message was sent from the diagnostics page of %(host)s.",
                      host=config.system.hostname) + "\n")
    port = config.mail.port(core.runtime().ctx.lab, "smtp")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
            refused = smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        return _("The mail service did not take the message: %(error)s", error=exc)
    if refused:
        return _("The mail service refused: %(error)s", error=refused)
    return _("The mail service took the message for %(address)s; see the mail queue if it does not arrive.",
             address=address)


@bp.route("/", methods=["GET", "POST"])
@core.admin_required
def index():
    values = {"tool": "ping", "host": "", "type": "A", "address": ""}
    errors: dict[str, str] = {}
    output = None
    if request.method == "POST":
        values = {"tool": forms.text("tool"), "host": forms.text("host", 253), "type": forms.text("type"),
                  "address": forms.text("address", 254)}
        config = core.current_config()
        tool = values["tool"] if values["tool"] in TOOLS else "ping"
        if tool == "mail":
            if not re.fullmatch(EMAIL_PATTERN, values["address"]):
                errors["address"] = _("enter a valid e-mail address, like it@example.com")
            elif not config.mail.enabled:
                errors["address"] = _("the mail service is switched off")
            else:
                output = _test_mail(config, values["address"])
        elif not HOST.match(values["host"]):
            errors["host"] = _("a host name or an address, like example.com or 192.0.2.1")
        elif tool == "ping":
            output = _run(["ping", "-n", "-c", "3", "-W", "2", "--", values["host"]])
        elif tool == "tracepath":
            output = _run(["tracepath", "-n", "-m", "20", values["host"]])
        else:
            kind = values["type"] if values["type"] in RECORD_TYPES else "A"
            name = values["host"]
            args = ["-x", name] if kind == "PTR" else [name, kind]
            output = _run(["dig", "+time=3", "+tries=1", "@127.0.0.1", "-p", str(_dns_port(config)), *args])
    return render_template("diagnostics/index.html", values=values, errors=errors, output=output,
                           record_options=[(t, t) for t in RECORD_TYPES]), (400 if errors else 200)
