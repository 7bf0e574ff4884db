"""Squid's basic-auth helper. Squid runs it as the proxy user with the system's python3 (standard
library only): each line "login password" (URL-escaped by Squid) goes to the appliance's sign-in
socket (argv[1]), whose answer, OK or ERR, goes back to Squid."""
import socket
import sys

MAX_LINE = 4096


def ask(path: str, line: str) -> str:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(15)
            conn.connect(path)
            conn.sendall(line.encode("utf-8", "replace")[:MAX_LINE] + b"\n")
            reply = conn.makefile("rb").readline().strip()
    except OSError:
        return "ERR message=the sign-in service is not answering"
    return "OK" if reply == b"OK" else "ERR"


def main() -> None:
    path = sys.argv[1]
    for line in sys.stdin:
        sys.stdout.write(ask(path, line.rstrip("\r\n")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
