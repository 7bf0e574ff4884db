"""Why a message could not be taken (shared by the service and the SMTP server)."""


class MailError(Exception):
    """A message could not be accepted (unknown local recipient, no route out, mailbox refused it)."""

    def __init__(self, message: str, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply  # the SMTP reply for it, when it is not a plain 550


class TryLater(Exception):
    """Local delivery is not possible right now (Dovecot down or busy): the sender should retry."""
