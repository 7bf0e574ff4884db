"""Mail from the box's own mail service (its SMTP listener on loopback), as the admin's tools send it."""
from __future__ import annotations

import smtplib
from email.message import EmailMessage

from webadmin import core


def sender(config) -> str:
    return f"OfficeBox {config.system.hostname} <notifications@{config.system.mail_domain}>"


def send(config, msg: EmailMessage) -> tuple[str, object] | None:
    """None: the mail service took it; else ("error", the exception) or ("refused", {recipient: reason})."""
    port = config.mail.port(core.runtime().ctx.lab, "smtp")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
            refused = smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        return ("error", exc)
    return ("refused", refused) if refused else None
