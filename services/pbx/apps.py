"""Applications: destinations the box answers itself (`voicemail:<ext>`, `attendant:<name>`,
`queue:<name>`, `conference:<room>`, `app:<name>`). One registry; call control runs the application
registered for a destination and knows nothing else of it:

    from services.pbx import apps
    async def voicemail(channel: apps.Channel) -> None: ...
    apps.register("voicemail", voicemail)     # a whole kind: every voicemail:<ext>
    apps.register("app:echo", echo)           # or one exact destination

An application gets a `Channel` (the caller's side of the call, see endpoint.MediaEndpoint), answers
it (or not: returning unanswered rejects the call with 480), uses the media engine through it and
returns when done; the call is hung up then if the caller has not left. A destination nobody
registered fails with 404 and the CDR says why (end_reason "unknown_application").
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from .config import APPLICATION
from .endpoint import MediaEndpoint

KINDS = ("voicemail", "attendant", "queue", "conference", "app")
DESTINATION = re.compile(APPLICATION)
ECHO_LIMIT = 600.0  # seconds an echo test may last

Channel = MediaEndpoint
Application = Callable[[MediaEndpoint], Awaitable[None]]
_registry: dict[str, Application] = {}


def is_destination(text: str) -> bool:
    return bool(DESTINATION.match(text or ""))


def register(name: str, app: Application) -> None:
    """`name`: a kind ("voicemail") or one destination ("app:echo")."""
    if name not in KINDS and not is_destination(name):
        raise ValueError(f"{name!r} is neither an application kind nor a destination")
    _registry[name] = app


def unregister(name: str) -> None:
    _registry.pop(name, None)


def lookup(destination: str) -> Application | None:
    m = DESTINATION.match(destination or "")
    if m is None:
        return None
    return _registry.get(destination) or (_registry.get(m.group(1)) if m.group(1) != "app" else None)


async def echo(channel: MediaEndpoint) -> None:
    """Echo test: answer, send the caller's own audio back (the media engine reflects it), until the
    caller hangs up or ECHO_LIMIT."""
    if not await channel.answer():
        return
    channel.echo()
    await channel.wait_gone(ECHO_LIMIT)


async def silence(channel: MediaEndpoint, seconds: float = 30.0) -> None:
    """`app:silence`: answer, send nothing, hang up after `seconds` (a line test that holds a channel)."""
    if await channel.answer():
        await channel.wait_gone(seconds)


register("app:echo", echo)
register("app:silence", silence)
