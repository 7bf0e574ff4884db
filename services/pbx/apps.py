"""Applications: destinations the box answers itself (`voicemail:<ext>`, `attendant:<name>`,
`queue:<name>`, `conference:<room>`, `app:<name>`). One registry; call control runs the application
registered for a destination and knows nothing else of it:

    from services.pbx import apps
    async def voicemail(channel: apps.Channel) -> None: ...
    apps.register("voicemail", voicemail)     # a whole kind: every voicemail:<ext>
    apps.register("app:echo", echo)           # or one exact destination

An application gets a `Channel` (the caller's side of the call, endpoint.MediaEndpoint), answers it
(or not: returning unanswered rejects the call with 480) and returns when done; the call is hung up
then if the caller has not left. A destination nobody registered fails with 404 and the CDR says why
(end_reason "unknown_application"). An exception other than ChannelGone is logged and the CDR says
"application_failed".

The channel API (asyncio coroutines; an application reads like a script):

    async def attendant(ch: apps.Channel) -> None:
        if not await ch.answer():
            return
        key = await ch.play(prompts / "welcome.wav")          # interrupted by a key: returns it
        digits = (key or "") + await ch.collect(3, timeout=5, terminator="#")
        if digits and await ch.bridge(digits):                 # ring it; the caller is handed over
            return
        await ch.play(prompts / "sorry.wav", interruptible=False)

    channel.caller / .destination / .name   the SIP leg calling, "attendant:main", "main"
    await answer() -> bool          200 OK; the caller's media now ends in the media engine (a local
                                    endpoint of PCMU, PCMA or G.722 with telephone-event). False if the
                                    caller left or it was answered already.
    await play(path | Tone, interruptible=True) -> key | None
                                    a WAV (16-bit mono PCM, 8 or 16 kHz, converted on the fly) or a tone
                                    (Tone(freqs, seconds, on_ms, off_ms); BEEP, RINGBACK, BUSY), paced
                                    by the engine's clock. With `interruptible` a key pressed before or
                                    during it stops it and is returned (type-ahead). MediaError if the
                                    file cannot be played.
    await collect(max_digits, timeout=5, terminator="#", first_timeout=None) -> str
                                    keys until max_digits, a terminator (not returned) or `timeout`
                                    seconds without a key ("" if none came).
    await next_key(timeout) -> key | None;  flush_keys()
    await record(path, max_seconds=120, silence_stop=0, beep=True, terminators="#") -> Recording
                                    Recording(path, seconds, reason, key): reason "key" (key: which of
                                    `terminators`, e.g. "#0" for "# to finish, 0 for the operator"),
                                    "max", "silence" (silence_stop seconds of silence after speech).
                                    The WAV (8 kHz; 16 kHz with G.722) is written crash-safely: its
                                    header is patched every 0.5 s, so a crash keeps what was said.
                                    `path` must not exist (a recording never overwrites a file: record
                                    to a new name, then os.replace). MediaError (the file kept so far)
                                    on a full disk or an I/O error; the call goes on.
    send_dtmf(keys)                 keys to the caller as RFC 4733 events
    await bridge(target, timeout=30) -> bool
                                    ring `target` (extension, group or number, as the dial plan knows
                                    it); answered: the caller is handed over and the channel leaves the
                                    call (return then); False: nobody answered, the caller is still here
    hangup()                        BYE to the caller, the call ends
    await next_event(timeout) -> ChannelEvent | None
                                    "hold" / "resume" / "reinvite" (the caller's re-INVITE; `held`
                                    tells the state), "info" / "message" (other INFO / MESSAGE, also in
                                    `inbox`)
    await wait_gone(timeout) -> bool;  gone;  figures (the engine's counters for this channel)

Keys come as RFC 4733 telephone-events, SIP INFO (application/dtmf-relay, application/dtmf) or in-band
tones, all alike. The engine looks for tones in the audio when the caller negotiated no telephone-event,
or after `detect_inband()` (a phone set to send tones although it offers events; costs engine CPU).
The caller hanging up (or its media being lost) raises ChannelGone in whatever coroutine waits (with
`recording` set when it cut a recording short: the file is kept); it ends the application quietly.
Also: `say_number(n)`, `say_digits(text)`, `say_datetime(when)` play the prompt library's words in the
caller's language (endpoint.py); a party on hold hears music on hold (holdmusic.py). Conferences of
any number of parties: services/pbx/conference (`conference:<room>`, the engine's mixer media/mixer.py).
"""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from .config import APPLICATION
from .endpoint import BEEP, BUSY, RINGBACK, ChannelEvent, ChannelGone, MediaEndpoint, MediaError, Recording, Tone

KINDS = ("voicemail", "attendant", "assistant", "queue", "conference", "app")
DESTINATION = re.compile(APPLICATION)
ECHO_LIMIT = 600.0  # seconds an echo test may last

Channel = MediaEndpoint
__all__ = ["BEEP", "BUSY", "RINGBACK", "Application", "Channel", "ChannelEvent", "ChannelGone", "MediaError",
           "Recording", "Tone", "is_destination", "lookup", "register", "unregister"]
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


def _register_voicemail() -> None:
    from .voicemail import deposit, features, menu, recordprompt  # imports apps: registered once it is complete
    register("voicemail", deposit.deposit)
    register("app:voicemail-own", menu.own_box)
    register("app:voicemail-any", menu.any_box)
    register("app:prompt-record", recordprompt.record_prompt)
    for name in ("forward-on", "forward-off", "dnd-on", "dnd-off"):
        register(f"app:{name}", getattr(features, name.replace("-", "_")))


_register_voicemail()


def _register_conference() -> None:
    from .conference import app
    register("conference", app.room_app)
    register("app:conference-join", app.join_calls)


_register_conference()


def _register_attendant() -> None:
    from . import attendant  # attendant:<name>, assistant:<ext>, dial by name (services/pbx/attendant)
    attendant.register()


_register_attendant()
