"""Dovecot's checkpassword program: asks the appliance (auth socket) whether a sign-in is right.

    checkpassword.py <auth socket> <reply program>      (Dovecot adds the reply program)

Dovecot writes "user\\0password\\0" on fd 3 and names the client in TCPREMOTEIP and TCPREMOTEPORT, the
listener in TCPLOCALPORT (the pre-login gate learns from a correct password which connection signed in).
The appliance answers one line: "ok <login>", "no" or "busy". Exit 1: wrong (or unknown/disabled)
sign-in; 111: temporary (throttled, busy, appliance unreachable); success runs the reply program with USER
set to the login (the user database then gives the mail user's uid/gid, home and quota).
Standard library only: it runs under the system's Python as Dovecot's auth user.
"""
import json
import os
import socket
import sys

MAX_INPUT = 4096
TIMEOUT = 30


def read_request() -> tuple[str, str]:
    data = b""
    while len(data) < MAX_INPUT:
        chunk = os.read(3, MAX_INPUT - len(data))
        if not chunk:
            break
        data += chunk
    parts = data.split(b"\0")
    if len(parts) < 2:
        sys.exit(2)
    return parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")


def ask(path: str, user: str, password: str) -> str:
    request = {"user": user, "password": password, "ip": os.environ.get("TCPREMOTEIP", "?"),
               "port": os.environ.get("TCPREMOTEPORT", ""), "local_port": os.environ.get("TCPLOCALPORT", ""),
               "service": os.environ.get("SERVICE", "?")}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode() + b"\n")
        return sock.makefile("rb").readline(512).decode().strip()


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(2)
    user, password = read_request()
    try:
        answer = ask(argv[0], user, password)
    except OSError:
        sys.exit(111)
    verdict, _, login = answer.partition(" ")
    if verdict == "ok" and login:
        os.environ["USER"] = login
        os.execv(argv[1], argv[1:])
    sys.exit(1 if verdict == "no" else 111)


if __name__ == "__main__":
    main(sys.argv[1:])
