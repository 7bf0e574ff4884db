"""Dovecot as two widely used client libraries see it: IMAPClient and imap-tools doing special-use
folders, SEARCH, FETCH, MOVE and IDLE against the box (messages arrive through the real LMTP path)."""
import datetime
import threading
import time

import imap_tools
import imapclient
import pytest
from imapclient.imapclient import ARCHIVE, DRAFTS, JUNK, SENT, TRASH

from tests.services.mail.harness import PASSWORDS, RunningMail, client_tls, document


def message(n: int, subject: str) -> bytes:
    return (f"From: Sender {n} <s{n}@elsewhere.test>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            f"Date: Tue, 01 Dec 2026 0{n}:00:00 +0000\r\nMessage-ID: <m{n}@elsewhere.test>\r\n\r\n"
            f"body {n}\r\n").encode()


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    try:
        for n, subject in enumerate(("invoice March", "lunch on friday", "invoice April")):
            running.service.accept_now(f"s{n}@elsewhere.test", ["bob@example.com"], message(n, subject))
        yield running
    finally:
        running.stop()


def deliver_soon(mail, n: int, subject: str, delay: float = 1.0) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), mail.service.accept_now(
        f"s{n}@elsewhere.test", ["bob@example.com"], message(n, subject))))
    thread.start()
    return thread


def test_imapclient_special_use_search_fetch_move_and_idle(mail):
    client = imapclient.IMAPClient("127.0.0.1", port=mail.port("imaps"), ssl_context=client_tls(), timeout=30)
    try:
        client.login("bob", PASSWORDS["bob"])
        assert client.has_capability("MOVE") and client.has_capability("IDLE")
        assert client.has_capability("SPECIAL-USE")
        special = {folder: flags for flags, _, folder in client.list_folders()}
        for folder, flag in (("Sent", SENT), ("Drafts", DRAFTS), ("Trash", TRASH), ("Junk", JUNK),
                             ("Archive", ARCHIVE)):
            assert flag in special[folder], (folder, special)
        assert client.find_special_folder(SENT) == "Sent"
        client.select_folder("INBOX")
        invoices = client.search(["SUBJECT", "invoice"])
        assert len(invoices) == 2
        assert len(client.search(["SINCE", datetime.date(2026, 1, 1), "NOT", "SUBJECT", "invoice"])) == 1
        fetched = client.fetch(invoices, ["ENVELOPE", "BODY.PEEK[TEXT]", "FLAGS"])
        subjects = sorted(f[b"ENVELOPE"].subject for f in fetched.values())
        assert subjects == [b"invoice April", b"invoice March"]
        assert all(f[b"BODY[TEXT]"].startswith(b"body ") and b"\\Seen" not in f[b"FLAGS"] for f in fetched.values())
        client.move(invoices, "Archive")
        assert client.search(["SUBJECT", "invoice"]) == []
        assert client.folder_status("Archive", ["MESSAGES"])[b"MESSAGES"] == 2
        client.idle()
        try:
            sender = deliver_soon(mail, 7, "arrives while idle")
            deadline, responses = time.monotonic() + 20, []
            while time.monotonic() < deadline and not any(r[1] == b"EXISTS" for r in responses):
                responses += client.idle_check(timeout=2)
            sender.join(10)
        finally:
            client.idle_done()
        assert any(r[1] == b"EXISTS" for r in responses), responses
        [new] = client.search(["SUBJECT", "arrives while idle"])
        assert client.fetch([new], ["ENVELOPE"])[new][b"ENVELOPE"].from_[0].mailbox == b"s7"
    finally:
        client.logout()


def test_imap_tools_folders_search_fetch_move_and_idle(mail):
    with imap_tools.MailBox("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=30).login(
            "bob", PASSWORDS["bob"]) as box:
        folders = {f.name: f.flags for f in box.folder.list()}
        assert "\\Trash" in folders["Trash"] and "\\Archive" in folders["Archive"]
        box.folder.set("INBOX")
        found = list(box.fetch(imap_tools.AND(subject="invoice"), mark_seen=False))
        assert sorted(m.subject for m in found) == ["invoice April", "invoice March"]
        assert {m.from_ for m in found} == {"s0@elsewhere.test", "s2@elsewhere.test"}
        assert all(m.text.startswith("body ") for m in found)
        dated = list(box.fetch(imap_tools.AND(date_gte=datetime.date(2026, 1, 1), subject="lunch")))
        assert [m.subject for m in dated] == ["lunch on friday"]
        box.flag([m.uid for m in found], imap_tools.MailMessageFlags.FLAGGED, True)
        assert len(box.uids(imap_tools.AND(flagged=True))) == 2
        box.move([m.uid for m in found], "Archive")
        assert box.uids(imap_tools.AND(subject="invoice")) == []
        box.folder.set("Archive")
        assert sorted(m.subject for m in box.fetch(imap_tools.AND(flagged=True))) == ["invoice April", "invoice March"]
        box.folder.set("INBOX")
        sender = deliver_soon(mail, 8, "arrives while waiting")
        try:
            responses = box.idle.wait(timeout=20)
        finally:
            sender.join(10)
        assert any(b"EXISTS" in r for r in responses), responses
        assert [m.subject for m in box.fetch(imap_tools.AND(subject="arrives while waiting"))] == \
            ["arrives while waiting"]
