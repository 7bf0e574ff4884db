"""Mail: SMTP (aiosmtpd) in and submission, Maildir per user, outbound queue via smarthost, POP3, IMAP."""
from services.mail.outbound import QueueBusy
from services.mail.service import MailError, MailService

SERVICE = MailService

__all__ = ["SERVICE", "MailService", "MailError", "QueueBusy"]
