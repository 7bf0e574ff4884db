"""Sign-in defences shared by SMTP AUTH, POP3 and IMAP (smtplib, poplib, imaplib as clients): Dovecot asks
the appliance (checkpassword helper -> auth socket -> the same AuthGuard as SMTP). Dovecot adds its own
delay per failing address (auth_penalty), hence the long client timeouts."""
import imaplib
import poplib
import smtplib
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import argon2
import pytest

from services.mail.authguard import MAX_WAITING, WORKERS
from tests.services.mail.harness import PASSWORD, PASSWORDS, RunningMail, client_tls, document, stored


@pytest.fixture
def mail(ctx):
    running = RunningMail(ctx, document(auth_failures_per_ip=3, auth_failures_per_login=4, max_connections_per_ip=100))
    yield running
    running.stop()


def smtp_login(mail, user, password, source="127.0.0.1"):
    """The reply code to AUTH over submission from `source` (any 127/8 address is this machine)."""
    with smtplib.SMTP("127.0.0.1", mail.port("submission"), timeout=10, source_address=(source, 0)) as client:
        client.starttls(context=client_tls())
        client.ehlo()
        client.user, client.password = user, password
        try:
            client.auth("PLAIN", client.auth_plain)  # one attempt (login() would try PLAIN, then LOGIN)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code, exc.smtp_error
        return 235, b""


class SourcedIMAP4(imaplib.IMAP4_SSL):
    """IMAPS from a chosen local address."""

    def __init__(self, port: int, source: str) -> None:
        self.source = source
        super().__init__("127.0.0.1", port, ssl_context=client_tls(), timeout=60)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def imap_login(mail, user, password, source="127.0.0.1"):
    client = SourcedIMAP4(mail.port("imaps"), source)
    try:
        return client.login(user, password)[0]
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        client.shutdown()


def pop_login(mail, user, password):
    pop = poplib.POP3_SSL("127.0.0.1", mail.port("pop3s"), timeout=60, context=client_tls())
    try:
        pop.user(user)
        return pop.pass_(password).decode()
    except poplib.error_proto as exc:
        return str(exc)
    finally:
        pop.close()


def at_once(*sign_ins):
    """The sign-ins run concurrently, so Dovecot's delay per failing address (2 s, doubling per failure
    known when a sign-in starts) is paid once per step, not once per sign-in."""
    with ThreadPoolExecutor(len(sign_ins)) as pool:
        return [f.result(90) for f in [pool.submit(fn, *args) for fn, *args in sign_ins]]


def test_failed_sign_ins_from_one_address_are_throttled_across_connections_and_protocols(mail):
    smtp, imap, pop = at_once((smtp_login, mail, "bob", "wrong-1"), (imap_login, mail, "carol", "wrong-2"),
                              (pop_login, mail, "alice", "wrong-3"))
    assert smtp[0] == 535 and "AUTHENTICATIONFAILED" in imap and "[AUTH]" in pop
    # three failures from 127.0.0.1: now even the right password is not checked from there
    code, text = smtp_login(mail, "bob", PASSWORDS["bob"])
    assert code == 454 and b"4.7.0" in text and b"too many failed" in text
    imap, pop = at_once((imap_login, mail, "bob", PASSWORDS["bob"]), (pop_login, mail, "bob", PASSWORDS["bob"]))
    assert "UNAVAILABLE" in imap and "[SYS/TEMP]" in pop
    assert smtp_login(mail, "bob", PASSWORDS["bob"], source="127.0.0.9")[0] == 235  # others are not hit


def test_guessing_one_login_from_many_addresses_is_throttled_but_not_its_owner(mail):
    assert smtp_login(mail, "carol", PASSWORDS["carol"], source="127.0.0.50")[0] == 235  # her own PC
    for n in range(4):  # two guesses each from two addresses, then two more: under the per-address limit
        assert smtp_login(mail, "carol@example.com" if n % 2 else "CAROL", f"guess-{n}",
                          source=f"127.0.0.{10 + n // 2}")[0] == 535
    assert smtp_login(mail, "carol", PASSWORDS["carol"], source="127.0.0.20")[0] == 454
    assert "UNAVAILABLE" in imap_login(mail, "carol", PASSWORDS["carol"], source="127.0.0.21")
    assert smtp_login(mail, "carol", PASSWORDS["carol"], source="127.0.0.50")[0] == 235
    assert imap_login(mail, "bob", PASSWORDS["bob"], source="127.0.0.20") == "OK"


def test_unknown_logins_cost_the_same_argon2_check_as_known_ones(mail, monkeypatch):
    checks = []
    verify = argon2.PasswordHasher.verify

    def counted(self, hash_, password):
        checks.append(hash_)
        return verify(self, hash_, password)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counted)
    directory = mail.service.directory
    assert directory.authenticate("bob", "wrong password") is None
    for name in ("nobody", "nobody@example.com", "x@foreign.test", ""):
        assert directory.authenticate(name, "wrong password") is None
    assert len(checks) == 5 and len(set(checks[1:])) == 1
    assert checks[1] != checks[0] and checks[1].split("$")[:4] == checks[0].split("$")[:4]  # same cost
    assert directory.authenticate("bob", PASSWORDS["bob"]).login == "bob"


def test_a_sign_in_flood_is_bounded_and_delivery_goes_on(mail):
    count = 40  # more than the argon2 pool (at most 2 threads) and its waiting line (16) hold
    clients = []
    for _ in range(count):
        client = imaplib.IMAP4("127.0.0.1", mail.port("imap"), timeout=30)
        client.starttls(ssl_context=client_tls())
        clients.append(client)
    barrier = threading.Barrier(count + 1)
    results = []

    def sign_in(client):
        barrier.wait(30)
        try:
            results.append(client.login("bob", PASSWORDS["bob"])[0])
        except imaplib.IMAP4.error as exc:
            results.append(str(exc))
    threads = [threading.Thread(target=sign_in, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    barrier.wait(30)
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=30) as smtp:
        assert smtp.sendmail("x@elsewhere.test", ["carol@example.com"], b"Subject: during the flood\r\n\r\n.\r\n") == {}
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.shutdown()
    busy = [r for r in results if "[UNAVAILABLE]" in r]  # our "busy": Dovecot's temporary failure
    assert len(results) == count and len(busy) + results.count("OK") == count, results
    assert mail.service.auth.peak_pending <= WORKERS + MAX_WAITING
    assert len(stored(mail.ctx, "carol")) == 1
    assert imaplib.IMAP4_SSL("127.0.0.1", mail.port("imaps"), ssl_context=client_tls()).login(
        "alice", PASSWORD)[0] == "OK"
