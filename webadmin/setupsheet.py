"""What a user needs to set up their phone, softphone and mail: the printable setup sheet
(users/sheet.html) and the welcome e-mail (users/welcome.txt), both from the running configuration.

The phone password (sip_secret) is shown only once, right after the user is created or their phone
password is reset (SHOWN_ONCE in the session); a welcome mail never carries it."""
from __future__ import annotations

from email.message import EmailMessage

from flask import render_template, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from webadmin import boxmail, core, qrcode

SHOWN_ONCE = "officebox.sheet_secret_once"  # session key: the login whose sheet shows the phone password once


def facts(user, config) -> dict:
    """The sheet's and the mail's data (ports as the box serves them: lab ports in lab mode)."""
    lab = core.runtime().ctx.lab
    pbx, mail, system = config.pbx, config.mail, config.system
    return {
        "user": user, "company": system.company_name, "box": f"{system.hostname}.{system.domain}",
        "lan_ip": str(config.network.lan.address.ip),
        "sip_port": pbx.lab_sip_port if lab else pbx.sip_port,
        "voicemail": pbx.feature_codes.voicemail,
        "webphone_url": url_for("webphone.index", _external=True),
        "account_url": url_for("account.index", _external=True),
        "mail": {"address": user.mail_address(system.mail_domain), "enabled": mail.enabled,
                 "imap_port": mail.port(lab, "imaps"), "submission_port": mail.port(lab, "submission")},
    }


def softphone(user, config, secret: str | None = None) -> dict | None:
    """The softphone QR code of a user with an extension: {"text": the SIP URI it carries, "image": data: URI,
    "account": that URI without the password (the image's text)}
    (the LAN address, so a phone on the office Wi-Fi needs no DNS; the password only when it is shown)."""
    if not user.extension:
        return None
    data = facts(user, config)
    text = qrcode.softphone_uri(user.extension, data["lan_ip"], data["sip_port"], secret)
    return {"text": text, "image": qrcode.data_uri(text), "with_secret": bool(secret),
            "account": qrcode.softphone_uri(user.extension, data["lan_ip"], data["sip_port"])}


def show_secret_once(login: str) -> None:
    session[SHOWN_ONCE] = login


def secret_shown_now(login: str) -> bool:
    """True once after show_secret_once(login)."""
    if session.get(SHOWN_ONCE) != login:
        return False
    session.pop(SHOWN_ONCE)
    return True


def send_welcome(user, config) -> str | None:
    """The welcome mail through the box's own mail service, in the box's language; None: taken, else why not."""
    if not config.mail.enabled:
        return _("the mail service is switched off")
    with force_locale(config.system.language):
        data = facts(user, config)
        msg = EmailMessage()
        msg["Subject"] = _("Welcome to %(company)s: your phone and mail", company=data["company"] or data["box"])
        msg.set_content(render_template("users/welcome.txt", **data))
    msg["From"] = boxmail.sender(config)
    msg["To"] = data["mail"]["address"]
    failed = boxmail.send(config, msg)
    return str(failed[1]) if failed else None
