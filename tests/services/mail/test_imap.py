"""IMAP through Dovecot with imaplib: sign-in rules, mailbox operations, the literal attack, idle."""
import base64
import imaplib
import smtplib
import socket
import time

import pytest

from tests.services.mail.harness import PASSWORD, PASSWORDS, RemoteIMAP4, RunningMail, client_tls, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document())
    try:
        for n in range(3):
            running.service.accept_now("x@elsewhere.test", ["bob@example.com"],
                                       f"From: Sender {n} <s{n}@elsewhere.test>\r\nSubject: note {n}\r\n\r\n"
                                       f"body {n}\r\n".encode())
        yield running
    finally:
        running.stop()


def imap(mail, login="bob") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", mail.port("imap"), timeout=10)
    client.starttls(ssl_context=client_tls())
    client.login(login, PASSWORDS[login])
    return client


def test_message_sent_by_one_user_is_read_by_another_over_imap(mail):
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10) as smtp:
        smtp.starttls(context=client_tls())
        smtp.login("alice", PASSWORD)
        smtp.sendmail("alice@example.com", ["carol@example.com"], b"Subject: report\r\n\r\nsee attached\r\n")
    client = imap(mail, "carol")
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    typ, data = client.fetch("1", "(RFC822)")
    assert typ == "OK" and b"Subject: report" in data[0][1] and data[0][1].endswith(b"see attached\r\n")
    client.logout()


def test_login_needs_tls_and_the_right_password(mail):
    client = RemoteIMAP4("127.0.0.1", mail.port("imap"), timeout=10)
    assert "LOGINDISABLED" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login("bob", PASSWORDS["bob"])
    client.starttls(ssl_context=client_tls())
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login("bob", "wrong password")
    client.literal = PASSWORDS["bob"].encode()  # the password as a {n} literal
    typ, _ = client._simple_command("LOGIN", "bob.b@example.com")
    assert typ == "OK"
    client.logout()


def test_authenticate_plain_with_and_without_initial_response(mail):
    plain = base64.b64encode(b"\0bob\0" + PASSWORDS["bob"].encode()).decode()
    client = RemoteIMAP4("127.0.0.1", mail.port("imap"), timeout=10)
    assert "AUTH=PLAIN" not in client.capabilities  # offered over TLS only
    with pytest.raises(imaplib.IMAP4.error):
        client.authenticate("PLAIN", lambda _: b"\0bob\0" + PASSWORDS["bob"].encode())
    client.starttls(ssl_context=client_tls())
    assert {"AUTH=PLAIN", "SASL-IR"} <= set(client.capabilities)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("PLAIN", lambda _: b"\0bob\0wrong")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):  # no signing in as another user
        client.authenticate("PLAIN", lambda _: b"alice\0bob\0" + PASSWORDS["bob"].encode())
    with pytest.raises(imaplib.IMAP4.error, match="base64"):
        client._simple_command("AUTHENTICATE", "PLAIN", "not-base64!")
    typ, data = client._simple_command("AUTHENTICATE", "CRAM-MD5")
    assert typ == "NO" and b"Unsupported authentication mechanism" in data[0]
    typ, _ = client.authenticate("PLAIN", lambda _: b"\0bob\0" + PASSWORDS["bob"].encode())  # with a + step
    assert typ == "OK" and client.select("INBOX")[0] == "OK"
    client.logout()
    again = imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=10)
    typ, _ = again._simple_command("AUTHENTICATE", "PLAIN", plain)  # SASL-IR: one round trip
    assert typ == "OK"
    again.logout()


def test_fetch_search_store_expunge(mail):
    client = imap(mail)
    assert client.select("INBOX")[1] == [b"3"]
    assert client.search(None, "ALL")[1] == [b"1 2 3"]
    assert client.search(None, "UNSEEN")[1] == [b"1 2 3"]
    typ, data = client.fetch("2", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Subject: note 1\r\n\r\n" == data[0][1]
    assert b"RFC822.SIZE" in data[0][0] and b"\\Seen" not in data[0][0]
    assert client.search(None, "UNSEEN")[1] == [b"1 2 3"]  # PEEK does not mark seen
    typ, data = client.fetch("2", "(BODY[TEXT])")
    assert data[0][1] == b"body 1\r\n" and b"\\Seen" in data[0][0] + data[1]
    assert client.search(None, "SEEN")[1] == [b"2"]
    assert client.search(None, "FROM", "s2@elsewhere")[1] == [b"3"]
    assert client.search(None, "NOT", "SUBJECT", '"note 0"')[1] == [b"2 3"]
    typ, data = client.store("1", "+FLAGS", "(\\Deleted \\Flagged)")
    assert typ == "OK" and b"\\Deleted" in data[0] and b"\\Flagged" in data[0]
    assert client.search(None, "DELETED")[1] == [b"1"]
    typ, data = client.expunge()
    assert data == [b"1"]
    assert client.search(None, "ALL")[1] == [b"1 2"]
    client.logout()
    assert len(stored(mail.ctx, "bob")) == 2


def test_uids_are_stable_across_sessions_and_expunges(mail):
    client = imap(mail)
    client.select("INBOX")
    typ, data = client.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    assert len(uids) == 3
    client.store("1", "+FLAGS", "\\Deleted")
    client.expunge()
    client.logout()
    mail.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: later\r\n\r\nnew\r\n")
    client = imap(mail)
    client.select("INBOX")
    typ, data = client.uid("SEARCH", None, "ALL")
    new_uids = data[0].split()
    assert new_uids[:2] == uids[1:] and int(new_uids[2]) > int(uids[2])
    typ, data = client.uid("FETCH", new_uids[2].decode(), "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1].endswith(b"new\r\n")
    client.logout()


def test_new_mail_is_announced_by_noop_and_status_counts(mail):
    client = imap(mail)
    client.select("INBOX")
    mail.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: ping\r\n\r\n!\r\n")
    typ, data = client.noop()
    assert client.untagged_responses.get("EXISTS", [])[-1:] == [b"4"]
    typ, data = client.status("INBOX", "(MESSAGES UNSEEN)")
    assert typ == "OK" and b"MESSAGES 4" in data[0] and b"UNSEEN 4" in data[0]
    assert client.select("Nowhere")[0] == "NO"
    client.logout()


def test_imaps_implicit_tls(mail):
    client = imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls(), timeout=10)
    client.login("bob", PASSWORDS["bob"])
    assert client.select("INBOX", readonly=True)[1] == [b"3"]
    client.fetch("1", "(RFC822)")
    client.store("1", "+FLAGS", "\\Deleted")  # Dovecot answers OK and changes nothing
    client.logout()
    again = imap(mail)
    again.select("INBOX")
    assert again.search(None, "DELETED")[1] == [b""] and again.search(None, "UNSEEN")[1] == [b"1 2 3"]
    again.logout()
    assert all(":2," not in p.name or "S" not in p.name.split(":2,")[1] for p in stored(mail.ctx, "bob"))


def test_malformed_commands_get_bad_and_the_server_survives(mail):
    """Before login Dovecot answers BAD and hangs up after a few errors (or at once for a huge literal)."""
    for line, expect in ((b"a1 FROB", b"a1 BAD"), (b"a2 SELECT INBOX", b"a2 BAD"), (b"*** LOGIN", b"* BAD"),
                         (b'a3 LOGIN "unterminated', b"a3 BAD"), (b"a4 FETCH 1 (FLAGS", b"a4 BAD"),
                         (b"a5 LOGIN {99999999}", b"* BYE"), (b"a6 CAPABILITY", b"* CAPABILITY")):
        with socket.create_connection(("127.0.0.1", mail.port("imap")), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"* OK")
            sock.sendall(line + b"\r\n")
            assert reader.readline().startswith(expect), line
    client = imap(mail)
    client.select("INBOX")
    for args in (("FETCH", "0", "(FLAGS)"), ("FETCH", "1:x", "(FLAGS)"), ("FETCH", "9", "(FLAGS)"),
                 ("STORE", "1", "+FOO", "(\\Seen)"), ("SEARCH", "LARGER", "x")):
        with pytest.raises(imaplib.IMAP4.error):
            client._simple_command(*args)
    assert client.search(None, "ALL")[1] == [b"1 2 3"]
    client.logout()


def multipart_message() -> bytes:
    from email.message import EmailMessage
    from email.policy import SMTP

    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("inner body\n")
    message = EmailMessage()
    message["From"] = '"Doe, Jane" <jane@elsewhere.test>'
    message["To"] = "bob.b@example.com"
    message["Subject"] = "report with attachments"
    message["Message-ID"] = "<abc@elsewhere.test>"
    message.set_content("see attached\n")
    message.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="data.bin")
    message.add_attachment(inner)
    return message.as_bytes(policy=SMTP)


def test_envelope_bodystructure_and_parts(mail):
    mail.service.accept_now("jane@elsewhere.test", ["bob@example.com"], multipart_message())
    client = imap(mail)
    client.select("INBOX")
    typ, data = client.fetch("4", "(ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    line = data[0] if isinstance(data[0], bytes) else data[0][0]
    assert b'"report with attachments"' in line and b'(("Doe, Jane" NIL "jane" "elsewhere.test"))' in line
    assert b'"<abc@elsewhere.test>"' in line
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit"' in line
    assert b'"application" "octet-stream" NIL NIL NIL "base64"' in line and b'("filename" "data.bin")' in line
    assert b'"message" "rfc822"' in line and b'"mixed"' in line
    typ, data = client.fetch("4", "(BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[3.HEADER])")
    assert typ == "OK"
    values = {item[0].split(b" ")[-2].lstrip(b"("): item[1] for item in data if isinstance(item, tuple)}
    assert values[b"BODY[1]"] == b"see attached\r\n"
    assert values[b"BODY[2]"].strip() == b"AAFiaW5hcnk="
    assert b"Content-Disposition: attachment" in values[b"BODY[2.MIME]"]
    assert b"Subject: forwarded" in values[b"BODY[3.HEADER]"]
    typ, data = client.fetch("1", "(BODYSTRUCTURE)")  # a plain message
    assert b'BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 1' in data[0]
    client.logout()


def test_folders_append_copy_move_and_special_use(mail):
    client = imap(mail)
    assert client.create("Projects")[0] == "OK" and client.create("Projects")[0] == "NO"
    assert client.create('"../escape"')[0] == "NO"
    typ, listing = client.list()
    assert typ == "OK" and b'(\\HasNoChildren \\Sent) "/" Sent' in listing
    assert b'(\\HasNoChildren \\Archive) "/" Archive' in listing and b'(\\HasNoChildren) "/" INBOX' in listing
    typ, data = client.append("Sent", "(\\Seen)", '"23-Nov-2026 09:00:00 +0000"',
                              b"Subject: my sent mail\r\n\r\nsent body\r\n")
    assert typ == "OK"
    assert b"MESSAGES 1" in client.status("Sent", "(MESSAGES UNSEEN)")[1][0]
    assert b"UNSEEN 0" in client.status("Sent", "(MESSAGES UNSEEN)")[1][0]
    client.select("INBOX")
    assert client.copy("1", "Archive")[0] == "OK"
    typ, data = client._simple_command("MOVE", "2", "Archive")
    assert typ == "OK" and client.untagged_responses.get("EXPUNGE") == [b"2"]
    assert client.search(None, "ALL")[1] == [b"1 2"]
    client.select("Archive")
    assert client.search(None, "ALL")[1] == [b"1 2"]
    typ, data = client.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert data[0][1].startswith(b"Subject: note 1")
    client.select("Sent")
    typ, data = client.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[TEXT])")
    assert b"\\Seen" in data[0][0] + data[-1]
    assert time.mktime(imaplib.Internaldate2tuple(data[0][0])) == 1795424400  # 23-Nov-2026 09:00:00 +0000
    client.close()
    assert client.rename("Projects", '"Old mail"')[0] == "OK"
    assert client.append('"Old mail"', None, None, b"Subject: kept\r\n\r\nx\r\n")[0] == "OK"
    assert b"MESSAGES 1" in client.status('"Old mail"', "(MESSAGES)")[1][0]
    assert client.delete('"Old mail"')[0] == "OK" and client.select('"Old mail"')[0] == "NO"
    assert client.delete("INBOX")[0] == "NO"
    client.logout()
    assert len(stored(mail.ctx, "bob")) == 2 and len(stored(mail.ctx, "bob", "Archive")) == 2


def test_special_use_folders_exist_for_every_mailbox_and_are_subscribed(mail):
    expected = {b"Sent": b"\\Sent", b"Drafts": b"\\Drafts", b"Trash": b"\\Trash", b"Junk": b"\\Junk",
                b"Archive": b"\\Archive"}
    for login in ("alice", "carol"):  # carol never received anything
        client = imap(mail, login)
        typ, _ = client._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
        listed = client.untagged_responses.pop("LIST", [])
        assert typ == "OK" and len(listed) == 5
        assert {line.rsplit(b" ", 1)[1]: line.split(b")")[0].lstrip(b"(") for line in listed} == expected
        subscribed = {line.rsplit(b" ", 1)[1] for line in client.lsub()[1]}
        assert set(expected) <= subscribed
        client.logout()


def test_folder_hierarchy(mail):
    client = imap(mail)
    assert client.create("Archives/2026")[0] == "OK"
    assert client.create("Archives/2026/Q1")[0] == "OK"
    assert client.append("Archives/2026", None, None, b"Subject: filed\r\n\r\nold news\r\n")[0] == "OK"
    listing = client.list('""', '"Archives/*"')[1]
    assert b'(\\HasChildren) "/" Archives/2026' in listing and b'(\\HasNoChildren) "/" Archives/2026/Q1' in listing
    assert b'(\\Noselect \\HasChildren) "/" Archives' in client.list('""', "%")[1]
    client.select("INBOX")
    assert client._simple_command("MOVE", "1", "Archives/2026/Q1")[0] == "OK"
    assert b"MESSAGES 1" in client.status("Archives/2026/Q1", "(MESSAGES)")[1][0]
    assert client.rename("Archives/2026", "Archives/Y2026")[0] == "OK"
    assert b"MESSAGES 1" in client.status("Archives/Y2026/Q1", "(MESSAGES)")[1][0]
    client.logout()
    assert len(stored(mail.ctx, "bob", "Archives/Y2026")) == 1
    assert len(stored(mail.ctx, "bob", "Archives/Y2026/Q1")) == 1


def test_search_by_date_keyword_and_mime_decoded_text(mail):
    dated = [("Mon, 02 Nov 2026 10:00:00 +0000", "early"), ("Tue, 24 Nov 2026 10:00:00 +0000", "late")]
    for date, word in dated:
        mail.service.accept_now("x@elsewhere.test", ["bob@example.com"],
                                f"Date: {date}\r\nSubject: {word}\r\n\r\n{word} text\r\n".encode())
    encoded = ("Date: Sun, 15 Nov 2026 10:00:00 +0000\r\n"
               "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               + base64.b64encode("Das Angebot für Müller liegt bei.\n".encode()).decode() + "\r\n")
    mail.service.accept_now("x@elsewhere.test", ["bob@example.com"], encoded.encode())
    client = imap(mail)
    client.select("INBOX")  # 1-3 from the fixture, 4 early, 5 late, 6 encoded
    assert client.search(None, "4:6", "SENTBEFORE", "10-Nov-2026")[1] == [b"4"]
    assert client.search(None, "4:6", "SENTSINCE", "20-Nov-2026")[1] == [b"5"]
    assert client.search(None, "SENTON", "02-Nov-2026")[1] == [b"4"]
    assert client.search(None, "4:6", "NOT", "SENTBEFORE", "10-Nov-2026", "SENTBEFORE", "20-Nov-2026")[1] == [b"6"]
    assert client.search(None, "SINCE", time.strftime("%d-%b-%Y"))[1] == [b"1 2 3 4 5 6"]  # arrival date
    assert client.store("2", "+FLAGS", "($Important)")[0] == "OK"
    assert client.search(None, "KEYWORD", "$Important")[1] == [b"2"]
    assert client.search(None, "UNKEYWORD", "$Important")[1] == [b"1 3 4 5 6"]
    client.literal = "Grüße".encode()
    assert client._simple_command("SEARCH", "CHARSET", "UTF-8", "SUBJECT")[0] == "OK"
    assert client.untagged_responses.pop("SEARCH") == [b"6"]
    client.literal = "Müller".encode()
    assert client._simple_command("SEARCH", "CHARSET", "UTF-8", "BODY")[0] == "OK"
    assert client.untagged_responses.pop("SEARCH") == [b"6"]
    assert client.search(None, "TEXT", "Angebot")[1] == [b"6"]  # base64 body, decoded
    client.logout()


def test_idle_reports_new_mail(mail):
    client = imap(mail)
    client.select("INBOX")
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+ ")
    mail.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: while idle\r\n\r\n!\r\n")
    lines = [client.readline() for _ in range(2)]
    assert b"* 4 EXISTS\r\n" in lines, lines
    client.send(b"DONE\r\n")
    while not (line := client.readline()).startswith(b"i1 "):
        pass
    assert line.startswith(b"i1 OK")
    assert client.search(None, "ALL")[1] == [b"1 2 3 4"]
    client.logout()


def test_an_oversized_literal_plus_is_never_run_as_commands(ctx):
    """The bytes of a refused {n+} literal are data: they must not expunge the INBOX (Thunderbird's APPEND)."""
    running = RunningMail(ctx, document(max_message_size=10_000))
    try:
        for n in range(3):
            running.service.accept_now("x@elsewhere.test", ["bob@example.com"], b"Subject: keep %d\r\n\r\nhi\r\n" % n)
        client = imap(running)
        client.select("INBOX")
        attack = b"x1 STORE 1:* +FLAGS (\\Deleted)\r\nx2 EXPUNGE\r\nx3 LOGOUT\r\n"
        literal = attack + b"x" * (10_001 - len(attack))
        client.send(b"a1 APPEND INBOX {%d+}\r\n" % len(literal) + literal + b"\r\n")
        replies = []
        while (line := client.readline()) and not line.startswith(b"a1 ") and len(replies) < 20:
            replies.append(line)
        assert not any(r.startswith((b"x1", b"x2", b"x3")) for r in replies), replies
        assert len(stored(running.ctx, "bob")) == 3
        assert line.startswith(b"a1 NO [LIMIT]"), line
        assert client.search(None, "ALL")[1] == [b"1 2 3"] and client.search(None, "DELETED")[1] == [b""]
        assert client.append("INBOX", None, None, b"Subject: fits\r\n\r\nsmall\r\n")[0] == "OK"
        client.logout()
        assert len(stored(running.ctx, "bob")) == 4
    finally:
        running.stop()


def test_a_huge_literal_plus_swallows_what_follows_as_data(mail):
    """Dovecot reads an announced literal to its end: the commands behind it are bytes of it, never run."""
    client = imap(mail)
    client.select("INBOX")
    client.sock.settimeout(2)
    client.send(b"a1 APPEND INBOX {900000000+}\r\nx1 STORE 1:* +FLAGS (\\Deleted)\r\nx2 EXPUNGE\r\n")
    replies = []
    try:
        while (line := client.readline()) and len(replies) < 10:
            replies.append(line)
    except TimeoutError:
        pass
    assert not any(r.startswith((b"x1", b"x2")) for r in replies), replies
    client.shutdown()
    other = imap(mail)
    other.select("INBOX")
    assert other.search(None, "ALL")[1] == [b"1 2 3"] and other.search(None, "DELETED")[1] == [b""]
    other.logout()
    assert len(stored(mail.ctx, "bob")) == 3
