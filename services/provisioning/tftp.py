"""A read-only TFTP server (RFC 1350) for phones that only speak TFTP. Write requests are refused."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from appliance.aio import close_watched

log = logging.getLogger("officebox.provisioning")
RRQ, WRQ, DATA, ACK, ERROR = 1, 2, 3, 4, 5
BLOCK = 512
RETRIES = 5
TIMEOUT = 1.0
MAX_TRANSFERS = 32


def error(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode() + b"\0"


def parse_request(data: bytes) -> tuple[int, str, str]:
    """(opcode, filename, mode) of an RRQ/WRQ; ValueError if malformed."""
    if len(data) < 4:
        raise ValueError("too short")
    opcode = struct.unpack_from("!H", data)[0]
    fields = data[2:].split(b"\0")
    if len(fields) < 3:
        raise ValueError("no mode")
    filename, mode = fields[0].decode("ascii"), fields[1].decode("ascii").lower()
    if mode not in ("netascii", "octet"):
        raise ValueError(f"unsupported mode {mode}")
    return opcode, filename, mode


class TftpServer:
    def __init__(self, fetch) -> None:
        self.fetch = fetch
        self.sock: socket.socket | None = None
        self._host = "0.0.0.0"
        self._tasks: set[asyncio.Task] = set()

    def open(self, host: str, port: int) -> int:
        self._host = host
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)
        return sock.getsockname()[1]

    def close(self) -> None:
        if self.sock is not None:
            close_watched(self.sock)
            self.sock = None
        for task in self._tasks:
            task.cancel()

    def _on_readable(self) -> None:
        for _ in range(32):
            try:
                data, client = self.sock.recvfrom(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                opcode, filename, mode = parse_request(data)
            except (ValueError, UnicodeDecodeError) as exc:
                log.info("TFTP: dropped a malformed request from %s: %s", client[0], exc)
                self._reply(error(4, "illegal TFTP operation"), client)
                continue
            if opcode != RRQ:
                self._reply(error(2, "read only"), client)
                continue
            if len(self._tasks) >= MAX_TRANSFERS:
                self._reply(error(0, "busy, try again"), client)
                continue
            task = asyncio.ensure_future(self._send_file(filename, mode, client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _reply(self, data: bytes, client) -> None:
        try:
            self.sock.sendto(data, client)
        except OSError:
            pass

    async def _send_file(self, filename: str, mode: str, client) -> None:
        status, _ctype, body = self.fetch(filename, client[0], None, "tftp")
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a new port: the transfer ID
        sock.setblocking(False)
        try:
            sock.bind((self._host, 0))
            sock.connect(client)
            if status != 200:
                await loop.sock_sendall(sock, error(1 if status == 404 else 2, "file not found" if status == 404
                                                    else "access violation"))
                return
            if mode == "netascii":
                body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            block = 1
            for offset in range(0, len(body) + 1, BLOCK):
                chunk = body[offset:offset + BLOCK]
                packet = struct.pack("!HH", DATA, block & 0xFFFF) + chunk
                if not await self._send_block(loop, sock, packet, block & 0xFFFF):
                    log.info("TFTP transfer of %s to %s timed out", filename, client[0])
                    return
                block += 1
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sock.close()

    @staticmethod
    async def _send_block(loop, sock: socket.socket, packet: bytes, block: int) -> bool:
        for _ in range(RETRIES):
            await loop.sock_sendall(sock, packet)
            deadline = loop.time() + TIMEOUT
            while (remaining := deadline - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 516), remaining)
                except TimeoutError:
                    break
                if len(data) >= 4 and struct.unpack_from("!HH", data) == (ACK, block):
                    return True
                if len(data) >= 2 and struct.unpack_from("!H", data)[0] == ERROR:
                    return False
        return False
