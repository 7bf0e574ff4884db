"""One line per operational action of an admin that leaves no configuration revision (a service restart, a
SIP capture): logger "officebox.audit", which the appliance writes to log/core/appliance.log."""
from __future__ import annotations

import logging

from flask import request

from webadmin import core

log = logging.getLogger("officebox.audit")
log.setLevel(logging.INFO)


def audit(action: str) -> None:
    user = core.current_user()
    log.info("%s by %s from %s", action, user.login if user else "?", request.remote_addr or "?")
