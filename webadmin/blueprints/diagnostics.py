"""Diagnostics from the box itself: ping, the path to a host (tracepath), a DNS lookup through the box's own
resolver (what the LAN's computers get) and a test e-mail through the box's own mail service.

Each tool runs with a fixed argument list (no shell), a host checked against HOST, a time limit and its
output cut at OUTPUT_LIMIT; it runs in the request's thread, never on a service's event loop.
"""
from __future__ import annotations

import re
import subprocess
from email.message import EmailMessage

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.users import EMAIL_PATTERN
from webadmin import boxmail, core, forms, pickers
from webadmin.audit import audit
from webadmin.core import N_

bp = Blueprint("diagnostics", __name__, url_prefix="/diagnostics")
NAV = [(N_("System"), N_("Diagnostics"), "diagnostics.index"), (N_("System"), N_("SIP trace"), "diagnostics.sip_trace")]
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
    msg["From"] = boxmail.sender(config)
    msg["To"] = address
    msg.set_content(_("This test message was sent from the diagnostics page of %(host)s.",
                      host=config.system.hostname) + "\n")
    failed = boxmail.send(config, msg)
    if failed and failed[0] == "error":
        return _("The mail service did not take the message: %(error)s", error=failed[1])
    if failed:
        return _("The mail service refused: %(error)s", error=failed[1])
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


# -- SIP trace: a bounded capture in the PBX process (services/pbx/sip/trace.py) ------------------------
TRACE_DEFAULTS = {"seconds": "120", "packets": "500", "extension": "", "ip": ""}


def _pbx():
    return core.service_or_404("pbx")


@bp.route("/sip-trace", methods=["GET", "POST"])
@core.admin_required
def sip_trace():
    pbx = _pbx()
    values, errors = dict(TRACE_DEFAULTS), {}
    if request.method == "POST":
        values = {name: forms.text(name, 64) for name in TRACE_DEFAULTS}
        for name, low, high in (("seconds", 1, 600), ("packets", 1, 2000)):
            if not values[name].isdigit() or not low <= int(values[name]) <= high:
                errors[name] = _("a whole number from %(low)d to %(high)d, like %(example)s",
                                 low=low, high=high, example=TRACE_DEFAULTS[name])
        if not errors:
            answer = pbx.sip_trace_start(int(values["seconds"]), int(values["packets"]),
                                         values["extension"], values["ip"])
            if "error" not in answer:
                audit(f"SIP trace started ({values['seconds']} s, {values['packets']} messages, "
                           f"extension {values['extension'] or 'any'}, address {values['ip'] or 'any'})")
                flash(_("The SIP trace is running."), "success")
                return redirect(url_for("diagnostics.sip_trace"))
            field = "extension" if "extension" in answer["error"] else "ip"
            errors[field] = (_("digits only, like 201") if field == "extension"
                             else _("an IP address, like 192.168.1.20"))
    trace = pbx.sip_trace()
    return render_template("diagnostics/sip_trace.html", values=values, errors=errors, trace=trace,
                           extensions=pickers.extensions(),
                           nav_active="diagnostics.sip_trace"), (400 if errors else 200)


@bp.route("/sip-trace/stop", methods=["POST"])
@core.admin_required
def sip_trace_stop():
    _pbx().sip_trace_stop()
    flash(_("The SIP trace is stopped."), "success")
    return redirect(url_for("diagnostics.sip_trace"))


@bp.route("/sip-trace.<kind>")
@core.admin_required
def sip_trace_download(kind: str):
    pbx = _pbx()
    if kind == "pcap":
        return Response(pbx.sip_trace_pcap(), mimetype="application/vnd.tcpdump.pcap",
                        headers={"Content-Disposition": "attachment; filename=sip-trace.pcap"})
    if kind == "txt":
        return Response(pbx.sip_trace_text(), mimetype="text/plain; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=sip-trace.txt"})
    abort(404)
