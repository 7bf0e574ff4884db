"""Small asyncio helpers the services share."""
from __future__ import annotations

import asyncio
import contextlib
import socket


def close_watched(sock: socket.socket) -> None:
    """Stop watching a socket given to loop.add_reader, then close it."""
    try:
        asyncio.get_running_loop().remove_reader(sock.fileno())
    except (RuntimeError, ValueError):  # no loop running here, or the socket is already closed
        pass
    sock.close()


async def cancel_and_wait(task: asyncio.Task) -> None:
    """Cancel a task and return once it has really finished."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
