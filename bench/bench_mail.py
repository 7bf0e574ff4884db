"""Mail benchmark: messages/s accepted over SMTP and delivered through Dovecot's LMTP (fsync'd before
the 250), then POP3 and IMAP (Dovecot) retrieval and sign-in.

The mail service runs in its own process as on the box (apply engine, supervisor with Dovecot as its
child; lab mode, loopback); the load comes from smtplib clients in this process: CLIENTS connections,
each sending messages back to back to one local mailbox, for small (1 KB) and 1 MB messages. Then POP3
and IMAP retrieval of the small messages, a text SEARCH, and IMAP sign-ins (argon2 via the auth socket).
Dovecot's ports are the mail service's pre-login gate (services/mail/prelogin.py: splices the bytes on
to Dovecot on ::1 with a PROXY v2 header): the 1 MB messages are fetched over IMAPS through the gate and
directly from Dovecot's listener behind it (this process sends the PROXY header itself), with the CPU
the service process (the gate) used meanwhile.

    python -m bench mail          # via the bench runner
    python -m bench.bench_mail    # alone, prints the rows
"""
from __future__ import annotations

import imaplib
import json
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
CLIENTS = 4
SMALL_SECONDS = 6.0
BIG_COUNT = 40
PASSWORD = "bench-password-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(data_dir: str) -> None:
    """Child process: run the mail service and its Dovecot until stdin closes."""
    import asyncio

    from appliance.apply import ApplyEngine
    from appliance.context import Context
    from appliance.store import ConfigStore
    from appliance.supervisor import Supervisor
    from appliance.users import hash_password
    from services.mail import MailService

    ports = {f"lab_{k}_port": 0 for k in ("smtp", "submission", "smtps")}
    ports.update({f"lab_{k}_port": _free_port() for k in ("pop3", "pop3s", "imap", "imaps")})
    document = {
        "system": {"hostname": "bench", "domain": "office.test", "mail_domain": "example.com"},
        "users": [{"login": "bench", "full_name": "Bench", "password_hash": hash_password(PASSWORD)}],
        "mail": {"max_message_size": 5 * 1024 * 1024, "quota_mb": 0, **ports}}
    ctx = Context(Path(data_dir), lab=True)
    service = MailService(ctx)
    store = ConfigStore(ctx.db_path)
    ApplyEngine(ctx, store, {"mail": service}).apply(document, "bench", "bench")

    async def main() -> None:
        supervisor = Supervisor(ctx, {"mail": service})
        await supervisor.start(store.current().config)
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(service.dovecot_ready) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the login processes
        print(json.dumps(service.ports), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await supervisor.stop()

    asyncio.run(main())


def _message(size: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    return b"Subject: bench\r\nFrom: a@elsewhere.test\r\n\r\n" + line * max(1, size // len(line))


def _smtp_load(port: int, body: bytes, *, seconds: float | None = None, count: int | None = None) -> tuple[int, float]:
    """CLIENTS parallel connections; returns (messages accepted, elapsed seconds)."""
    done = [0] * CLIENTS
    start = time.monotonic()
    per_client = None if count is None else max(1, count // CLIENTS)

    def client(slot: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            while True:
                if seconds is not None and time.monotonic() - start >= seconds:
                    return
                if per_client is not None and done[slot] >= per_client:
                    return
                smtp.sendmail("a@elsewhere.test", ["bench@example.com"], body)
                done[slot] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return sum(done), time.monotonic() - start


def _pop3_retrieve(port: int) -> tuple[int, float, int]:
    client = poplib.POP3_SSL("127.0.0.1", port, context=_no_verify(), timeout=60)
    client.user("bench")
    client.pass_(PASSWORD)
    count, _ = client.stat()
    count = min(count, 2000)
    start = time.monotonic()
    octets = 0
    for n in range(1, count + 1):
        octets += client.retr(n)[2]
    elapsed = time.monotonic() - start
    client.quit()
    return count, elapsed, octets


def _imap_fetch(port: int) -> tuple[int, float, float, int]:
    client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=_no_verify(), timeout=60)
    client.login("bench", PASSWORD)
    count = min(int(client.select("INBOX", readonly=True)[1][0]), 2000)
    start = time.monotonic()
    for n in range(1, count + 1):
        client.fetch(str(n), "(BODY.PEEK[])")
    elapsed = time.monotonic() - start
    search_start = time.monotonic()
    found = len(client.search(None, "TEXT", "nowhere-to-be-found")[1][0].split())
    search = time.monotonic() - search_start
    client.logout()
    return count, elapsed, search, found


def _imap_logins(port: int, count: int = 10) -> float:
    """Seconds per IMAPS connect + LOGIN + LOGOUT, one after the other."""
    start = time.monotonic()
    for _ in range(count):
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=_no_verify(), timeout=60)
        client.login("bench", PASSWORD)
        client.logout()
    return (time.monotonic() - start) / count


class _DirectIMAP(imaplib.IMAP4_SSL):
    """Dovecot's IMAPS listener behind the gate, with the PROXY v2 header the gate would send."""

    def _create_socket(self, timeout):
        from services.mail.prelogin import BACKEND_HOST, proxy_header

        sock = socket.create_connection((BACKEND_HOST, self.port), timeout)
        sock.sendall(proxy_header(("127.0.0.1", sock.getsockname()[1]), ("127.0.0.1", self.port)))
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _imap_big_fetch(port: int, direct: bool, service_pid: int) -> tuple[int, float, int, float]:
    """FETCH BODY[] of every message over 500 KB, one command each: (count, seconds, octets, service CPU s)."""
    kind = _DirectIMAP if direct else imaplib.IMAP4_SSL
    client = kind("127.0.0.1", port, ssl_context=_no_verify(), timeout=60)
    client.login("bench", PASSWORD)
    client.select("INBOX", readonly=True)
    numbers = client.search(None, "LARGER", "500000")[1][0].split()
    cpu, start = _cpu_seconds(service_pid), time.monotonic()
    octets = 0
    for n in numbers:
        octets += len(client.fetch(n, "(BODY.PEEK[])")[1][0][1])
    elapsed, cpu = time.monotonic() - start, _cpu_seconds(service_pid) - cpu
    client.logout()
    return len(numbers), elapsed, octets, cpu


def _no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-mail-") as top:
        os.chmod(top, 0o711)  # Dovecot's users must reach the mailboxes
        tmp = os.path.join(top, "var")
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen([sys.executable, "-m", "bench.bench_mail", "--serve", tmp], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ports = json.loads(proc.stdout.readline())
            maildir = Path(tmp) / "state" / "mail" / "bench" / "Maildir"
            n, elapsed = _smtp_load(ports["smtp"], _message(1024), seconds=SMALL_SECONDS)
            stored = len(os.listdir(maildir / "new")) + len(os.listdir(maildir / "cur"))
            rows.append({"area": "mail", "metric": "SMTP accept+deliver, 1 KB", "value": n / elapsed,
                         "unit": "msg/s", "note": f"{CLIENTS} connections, {n} msgs, {stored} in Maildir, fsync each"})
            count, elapsed, octets = _pop3_retrieve(ports["pop3s"])
            rows.append({"area": "mail", "metric": "POP3S RETR, 1 KB (Dovecot)", "value": count / elapsed,
                         "unit": "msg/s", "note": f"{count} msgs, one session"})
            count, elapsed, search, _found = _imap_fetch(ports["imaps"])
            rows.append({"area": "mail", "metric": "IMAPS FETCH BODY[], 1 KB (Dovecot)", "value": count / elapsed,
                         "unit": "msg/s", "note": f"{count} msgs, one command each, one session"})
            rows.append({"area": "mail", "metric": "IMAPS SEARCH TEXT (Dovecot)", "value": search * 1000,
                         "unit": "ms", "note": f"over {count} msgs, no index beforehand"})
            rows.append({"area": "mail", "metric": "IMAPS connect+LOGIN (Dovecot)",
                         "value": _imap_logins(ports["imaps"]) * 1000, "unit": "ms",
                         "note": "TLS, argon2 via the auth socket, one at a time"})
            n, elapsed = _smtp_load(ports["smtp"], _message(1024 * 1024), count=BIG_COUNT)
            rows.append({"area": "mail", "metric": "SMTP accept+deliver, 1 MB", "value": n / elapsed,
                         "unit": "msg/s", "note": f"{CLIENTS} connections, {n} msgs, "
                                                  f"{n * 1.0 / elapsed:.1f} MB/s"})
            for direct, how in ((False, "through the pre-login gate"), (True, "Dovecot directly, no gate")):
                count, elapsed, octets, cpu = _imap_big_fetch(ports["imaps"], direct, proc.pid)
                rows.append({"area": "mail", "metric": f"IMAPS FETCH 1 MB, {how}",
                             "value": octets / elapsed / 1e6, "unit": "MB/s",
                             "note": f"{count} msgs, one session; service process CPU {cpu:.2f} s "
                                     f"({cpu / elapsed * 100:.0f} % of one core)"})
        finally:
            try:
                proc.communicate("", timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        for row in run():
            print(f"{row['metric']:<32} {row['value']:10.1f} {row['unit']:<6} {row['note']}")
