"""Dovecot as the box runs it: the rendered configuration checked by doveconf, mailboxes owned by vmail,
an upgrade with the old server's Maildirs, quotas, disabled users (imaplib, poplib, smtplib as clients)."""
import imaplib
import os
import poplib
import pwd
import smtplib
import stat

import pytest

from appliance.apply import ApplyEngine, ApplyError
from appliance.store import ConfigStore
from services.mail import MailService
from tests.services.mail.harness import PASSWORDS, RunningMail, client_tls, document, password_hash, stored


def imaps(mail, login: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=30)
    client.login(login, PASSWORDS[login])
    return client


def pop3s(mail, login: str) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL("127.0.0.1", mail.port("pop3s"), context=client_tls(), timeout=30)
    client.user(login)
    client.pass_(PASSWORDS[login])
    return client


NL, CRLF = b"\n", b"\r\n"


def old_maildir(ctx, login: str) -> dict[str, bytes]:
    """A mailbox as the former in-process server left it: root-owned, LF endings, flags in the names,
    a Sent folder, its own UID list."""
    root = ctx.state_dir("mail") / login / "Maildir"
    messages = (("cur", "1795000000.M1P1Q1R0a0b0c0d.box", ":2,S", b"Subject: read one\nDate: x\n\nalready read\n"),
                ("new", "1795000100.M2P1Q2R0a0b0c0e.box", "", b"Subject: unread\n\nnot read yet\n"),
                (".Sent/cur", "1795000200.M3P1Q3R0a0b0c0f.box", ":2,FS", b"Subject: my reply\n\nthanks!\n\n"))
    files = {f"{sub}/{base},S={len(data)},W={len(data.replace(NL, CRLF))}{info}": data
             for sub, base, info, data in messages}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for folder in (root, root / ".Sent"):
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(exist_ok=True)
    (root / "officebox-uidlist").write_text("1 4\n1 1795000000.M1P1Q1R0a0b0c0d.box\n")
    return files


def test_upgrade_hands_existing_maildirs_to_vmail_with_their_mail_untouched(ctx):
    files = old_maildir(ctx, "bob")
    mail = RunningMail(ctx, document())
    try:
        root = ctx.state_dir("mail") / "bob" / "Maildir"
        vmail = pwd.getpwnam("vmail")
        for rel, data in files.items():
            path = root / rel
            assert path.read_bytes() == data  # same name, same bytes
            assert path.stat().st_uid == vmail.pw_uid and stat.S_IMODE(path.stat().st_mode) == 0o600
        for folder in (root.parent, root, root / "cur", root / ".Sent"):
            assert folder.stat().st_uid == vmail.pw_uid and stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert not (root / "officebox-uidlist").exists()
        data_dir = ctx.data_dir.stat()
        assert stat.S_IMODE(data_dir.st_mode) & 0o007 == 0  # no world access, only vmail's ACL entry
        queue = ctx.state_dir("mail") / "queue"
        assert queue.stat().st_uid == 0  # the outbound queue stays root's
        client = imaps(mail, "bob")
        client.select("INBOX")
        assert client.search(None, "SEEN")[1] == [b"1"] and client.search(None, "UNSEEN")[1] == [b"2"]
        typ, data = client.fetch("1", "(BODY[])")
        assert data[0][1] == b"Subject: read one\r\nDate: x\r\n\r\nalready read\r\n"
        client.select("Sent")
        typ, data = client.fetch("1", "(FLAGS BODY.PEEK[TEXT])")
        assert b"\\Flagged" in data[0][0] and b"\\Seen" in data[0][0] and data[0][1] == b"thanks!\r\n\r\n"
        client.logout()
        pop = pop3s(mail, "bob")
        assert pop.stat()[0] == 2
        pop.quit()
    finally:
        mail.stop()
    again = RunningMail(ctx, document())  # a second start leaves everything as it is
    try:
        inbox = {rel.split("/")[-1].split(":")[0] for rel in files if not rel.startswith(".")}
        assert {p.name.split(":")[0] for p in stored(ctx, "bob")} == inbox  # Dovecot moved new/ to cur/ only
        assert imaps(again, "bob").select("INBOX")[1] == [b"2"]
    finally:
        again.stop()


def test_mail_delivered_by_smtp_is_read_over_imap_and_pop3(ctx):
    mail = RunningMail(ctx, document())
    try:
        with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
            assert client.sendmail("x@elsewhere.test", ["bob.b@example.com", "carol@example.com"],
                                   b"Subject: both\r\n\r\nfor two\r\n") == {}
        for login in ("bob", "carol"):
            [path] = stored(ctx, login)
            assert path.stat().st_uid == pwd.getpwnam("vmail").pw_uid
            imap = imaps(mail, login)
            assert imap.select("INBOX")[1] == [b"1"]
            assert imap.fetch("1", "(BODY.PEEK[TEXT])")[1][0][1] == b"for two\r\n"
            imap.logout()
            pop = pop3s(mail, login)
            assert b"for two" in pop.retr(1)[1]
            pop.quit()
    finally:
        mail.stop()


def test_a_mailbox_over_its_quota_refuses_mail_and_the_others_still_get_it(ctx):
    mail = RunningMail(ctx, document(user_quota_mb={"carol": 1}))
    big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 19_000  # about 1.5 MB: over 1 MB + 10 % grace
    try:
        with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                client.sendmail("x@elsewhere.test", ["carol@example.com"], big)
            assert refused.value.smtp_code == 552 and b"5.2.2" in refused.value.smtp_error
            # bob has room: he gets it, carol's refusal comes back to the sender as a bounce
            assert client.sendmail("alice@example.com", ["carol@example.com", "bob@example.com"], big) == {}
            assert client.sendmail("x@elsewhere.test", ["carol@example.com"], b"Subject: small\r\n\r\nok\r\n") == {}
        assert len(stored(ctx, "bob")) == 1 and len(stored(ctx, "carol")) == 1
        [bounce] = stored(ctx, "alice")
        assert b"Undelivered" in bounce.read_bytes() and b"carol@example.com" in bounce.read_bytes()
        client = imaps(mail, "carol")
        typ, _ = client._simple_command("GETQUOTAROOT", "INBOX")
        assert typ == "OK" and b"(STORAGE 1 1024)" in client.untagged_responses["QUOTA"][0]
        client.logout()
    finally:
        mail.stop()


def test_disabled_users_cannot_sign_in_or_receive(ctx):
    users = [{"login": "bob", "full_name": "Bob B", "password_hash": password_hash("bob")},
             {"login": "carol", "full_name": "Carol C", "password_hash": password_hash("carol"), "enabled": False}]
    mail = RunningMail(ctx, document(users=users))
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imaps(mail, "carol")
        with pytest.raises(poplib.error_proto, match="AUTH"):
            pop3s(mail, "carol")
        with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("x@elsewhere.test", ["carol@example.com"], b"Subject: hi\r\n\r\n.\r\n")
        assert imaps(mail, "bob").select("INBOX")[0] == "OK"
        users[1]["enabled"] = True
        mail.reload(document(users=users, **{k: v for k, v in mail.config.mail.model_dump().items()
                                             if k.startswith("lab_")}))
        assert imaps(mail, "carol").select("INBOX")[0] == "OK"
    finally:
        mail.stop()


def test_doveconf_refuses_a_configuration_dovecot_would_not_run(ctx):
    """check() runs `doveconf -n` on the staged files: a broken one is never applied."""
    service = MailService(ctx)
    engine = ApplyEngine(ctx, ConfigStore(ctx.db_path), {"mail": service})
    engine.apply(document(), "test", "good")
    good = (ctx.etc_dir("mail") / "dovecot.conf").read_text()
    assert "ssl = required" in good and "mail_fsync = always" in good
    original = service.render

    def broken(config):
        files = original(config)
        files["dovecot.conf"] += "no_such_setting = 1\n"
        return files
    service.render = broken
    with pytest.raises(ApplyError, match="Dovecot refused the mail configuration.*no_such_setting"):
        engine.apply(document(max_message_size=20_000), "test", "bad")
    assert (ctx.etc_dir("mail") / "dovecot.conf").read_text() == good
    engine.store.close()
    assert os.stat(ctx.etc_dir("mail") / "users.db").st_mode & 0o077 == 0
