"""The Unix socket Dovecot's sendmail program writes to (sendmail.py): Sieve's vacation replies,
rejections and redirects enter the appliance here and are delivered or queued like any accepted mail.
Only vmail (Dovecot's mail processes) and root may connect; size, recipients and concurrency are bounded."""
from __future__ import annotations

import asyncio
import json

from services.mail.authsocket import AuthSocket
from services.mail.dovecotconf import MAIL_USER
from services.mail.errors import MailError, TryLater

MAX_RECIPIENTS = 20
MAX_AT_ONCE = 8
READ_SECONDS = 60


class SendSocket(AuthSocket):
    owner = MAIL_USER
    limit = 8192

    async def serve(self, reader: asyncio.StreamReader) -> str:
        if len(self._clients) > MAX_AT_ONCE:
            return "busy: too many messages at once"
        try:
            head = json.loads(await asyncio.wait_for(reader.readline(), 10))
            sender, recipients, size = str(head["sender"]), [str(r) for r in head["recipients"]], int(head["size"])
        except (ValueError, KeyError, TypeError):
            return "no: malformed request"
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            return f"no: between 1 and {MAX_RECIPIENTS} recipients"
        if not 0 < size <= self.service.section.max_message_size:
            return "no: message too large"
        data = await asyncio.wait_for(reader.readexactly(size), READ_SECONDS)
        try:
            return "ok " + await self.service.accept(sender, recipients, data)
        except TryLater as exc:
            return f"busy: {exc}"
        except MailError as exc:
            return f"no: {exc}"
