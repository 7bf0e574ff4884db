"""A chat's transcript mailed at close through the box's own mail service (SMTP in, Dovecot's IMAP out, read
with imaplib): the visitor who asked for it gets one mail in French with both sides' messages; a chat whose
visitor did not ask, and one nobody took, mail nothing; asking without an address is refused."""
from __future__ import annotations

import email
import shutil
import tempfile
import time
from contextlib import ExitStack
from email.policy import default as email_policy
from pathlib import Path

import pytest

from appliance import schema
from appliance.context import Context
from services.pbx import acd as acd_pkg
from services.pbx.acd import chat
from tests.services.mail.harness import PASSWORD, RunningMail, document, free_port, imap_session, password_hash

from .conftest import ALICE, BOB
from .pbxrunner import PbxRunner

pytestmark = pytest.mark.slow


def _inbox(port: int) -> list[email.message.EmailMessage]:
    with imap_session(port, "alice", PASSWORD) as imap:
        imap.select("INBOX")
        return [email.message_from_bytes(imap.fetch(n, "(BODY.PEEK[])")[1][0][1], policy=email_policy)
                for n in imap.search(None, "ALL")[1][0].split()]


def test_transcript_mailed_at_close_when_asked():
    top = Path(tempfile.mkdtemp(prefix="ob-chatmail-"))  # outside pytest's tree: vmail reaches the mailboxes
    top.chmod(0o711)
    doc = document(lab_smtp_port=free_port())
    doc["users"] = [dict(ALICE, password_hash=password_hash("alice")), dict(BOB, password_hash=password_hash("bob"))]
    doc["pbx"] = {"lab_sip_port": 0, "queues": [{"number": "600", "name": "sales", "title": "Acme Sales",
                                                  "members": [{"agent": "202"}], "chat": True}]}
    try:
        with ExitStack() as stack:
            mail = RunningMail(Context(top / "var", lab=True), {k: v for k, v in doc.items() if k != "pbx"})
            stack.callback(mail.stop)
            pbx = stack.enter_context(PbxRunner(top / "pbx", schema.parse(doc)))
            svc = pbx.svc
            svc.acd_agent_action("202", "login")
            assert svc.acd_chat_start("sales", "Ann", "", "hi", True)["reason"] == "email"
            asked = svc.acd_chat_start("sales", "Ann", "alice@example.com", "Ma facture est fausse", True, "fr")
            silent = svc.acd_chat_start("sales", "Ann", "alice@example.com", "second", False)
            untaken = svc.acd_chat_start("sales", "Ann", "alice@example.com", "third", True)
            for started in (asked, silent):
                assert svc.acd_chat_act("202", "accept", started["id"])["status"] == "open"
                assert svc.acd_chat_act("202", "reply", started["id"], "Je regarde")["status"] == "open"
                assert svc.acd_chat_act("202", "close", started["id"])["status"] == "closed"
            assert "count" in svc.acd_chat_say(untaken["token"], "", True)
            desk = pbx.sync(lambda: chat.desk(acd_pkg.existing(svc.core)))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _inbox(mail.port("imap")):
                time.sleep(0.2)
            time.sleep(0.5)  # a wrong second mail would have arrived by now too
            mails = _inbox(mail.port("imap"))
            assert len(mails) == 1 and desk.mailed == 1
            body = mails[0].get_content()
            assert mails[0]["Subject"] == "Votre discussion avec Acme Sales"
            assert "Vous: Ma facture est fausse" in body and "Bob Durand: Je regarde" in body
    finally:
        shutil.rmtree(top, ignore_errors=True)
