"""Dovecot's sendmail program: Sieve's outgoing mail (vacation replies, rejections, redirects) handed to
the appliance (send socket), which delivers it locally or queues it for the smarthost.

    sendmail.py <send socket> [-i] [-f <sender>] [--] <recipient>...     (Dovecot adds the options)

Sends one JSON line {"sender", "recipients", "size"}, then the message; the appliance answers
"ok <queue id>" or "no <reason>". Exit 0 when accepted, 75 (EX_TEMPFAIL) when it could not be handed
over, 65 (EX_DATAERR) when refused. Standard library only: it runs under the system's Python as vmail.
"""
import json
import socket
import sys

MAX_MESSAGE = 64 * 1024 * 1024
TIMEOUT = 60


def parse(args: list[str]) -> tuple[str, list[str]]:
    sender, recipients, i = "", [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            recipients += args[i + 1:]
            break
        if arg == "-f" and i + 1 < len(args):
            sender, i = args[i + 1], i + 2
            continue
        if arg.startswith("-f") and len(arg) > 2:
            sender = arg[2:]
        elif not arg.startswith("-"):
            recipients.append(arg)
        i += 1
    return sender.strip("<>"), recipients


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(64)
    sender, recipients = parse(argv[1:])
    data = sys.stdin.buffer.read(MAX_MESSAGE + 1)
    if not recipients or len(data) > MAX_MESSAGE:
        sys.exit(65)
    head = {"sender": sender, "recipients": recipients, "size": len(data)}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(argv[0])
            sock.sendall(json.dumps(head).encode() + b"\n" + data)
            answer = sock.makefile("rb").readline(512).decode("utf-8", "replace").strip()
    except OSError as exc:
        print(f"sendmail: cannot reach the appliance: {exc}", file=sys.stderr)
        sys.exit(75)
    if answer.startswith("ok"):
        return
    print(f"sendmail: {answer or 'no answer'}", file=sys.stderr)
    sys.exit(65 if answer.startswith("no") else 75)


if __name__ == "__main__":
    main(sys.argv[1:])
