"""Local delivery to Dovecot over LMTP (RFC 2033) on its Unix socket (blocking; worker threads).

Dovecot answers each recipient after DATA once the message is stored (mail_fsync = always: file and
folder fsynced), so a 250 here means the message is on disk."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT = 120.0
MAX_REPLY_LINE = 2048


class LMTPUnavailable(Exception):
    """Dovecot could not be reached or broke the conversation: try again later."""


@dataclass
class Outcome:
    delivered: list[str] = field(default_factory=list)
    temporary: dict[str, str] = field(default_factory=dict)  # login -> reply
    permanent: dict[str, str] = field(default_factory=dict)


def dot_stuffed(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


class _Conversation:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")

    def reply(self) -> tuple[int, str]:
        text = []
        while True:
            line = self.reader.readline(MAX_REPLY_LINE)
            if len(line) < 4 or not line[:3].isdigit():
                raise LMTPUnavailable(f"unexpected LMTP reply {line[:80]!r}")
            text.append(line[4:].decode("utf-8", "replace").strip())
            if line[3:4] != b"-":
                return int(line[:3]), " ".join(text)

    def command(self, line: str) -> tuple[int, str]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.reader.close()
        self.sock.close()


def deliver(path: Path, sender: str, logins: list[str], data: bytes, lhlo: str) -> Outcome:
    """Deliver one message to local mailboxes; raises LMTPUnavailable when nothing could be decided."""
    outcome = Outcome()
    try:
        talk = _Conversation(path)
    except OSError as exc:
        raise LMTPUnavailable(f"cannot reach Dovecot's LMTP socket: {exc}") from exc
    try:
        if talk.reply()[0] != 220 or talk.command(f"LHLO {lhlo}")[0] != 250:
            raise LMTPUnavailable("Dovecot's LMTP did not greet")
        code, text = talk.command(f"MAIL FROM:<{sender}>")
        if code != 250:
            raise LMTPUnavailable(f"LMTP refused the sender: {code} {text}")
        accepted = []
        for login in logins:
            code, text = talk.command(f"RCPT TO:<{login}>")
            if code == 250:
                accepted.append(login)
            else:
                (outcome.permanent if code >= 500 else outcome.temporary)[login] = f"{code} {text}"
        if accepted:
            code, text = talk.command("DATA")
            if code != 354:
                raise LMTPUnavailable(f"LMTP refused DATA: {code} {text}")
            talk.sock.sendall(dot_stuffed(data))
            for login in accepted:  # one reply per accepted recipient (RFC 2033 4.2)
                code, text = talk.reply()
                if code == 250:
                    outcome.delivered.append(login)
                else:
                    (outcome.permanent if code >= 500 else outcome.temporary)[login] = f"{code} {text}"
    except OSError as exc:
        raise LMTPUnavailable(f"LMTP conversation broke: {exc}") from exc
    finally:
        talk.close()
    return outcome
