"""The staff voicemail page's side in the PBX process (PbxService.voicemail_* -> appliance/clients.py
PbxClient): a user's box as JSON, its audio in pieces, heard / save / delete, greetings put and removed.
Every call names the extension; the web admin passes only the signed-in user's own. An unknown message id
is None (the page answers 404). Greetings come already converted (16-bit mono PCM WAV, 8 or 16 kHz)."""
from __future__ import annotations

import base64
import binascii
import io
import os
import secrets
import wave

from .store import FOLDERS, GREETINGS, Mailbox

AUDIO_PIECE = 4 * 1024 * 1024  # bytes of WAV per answer (base64 in JSON: well under the RPC line limit)
GREETING_MAX_SECONDS = 120.0
ACTIONS = {"heard": "Old", "save": "Saved"}


def box_summary(box: Mailbox) -> dict:
    count, seconds = box.used()
    folders = {folder: [{"id": m.id, "caller": m.envelope.get("caller", ""),
                         "caller_name": m.envelope.get("caller_name", ""), "time": m.envelope.get("time", 0.0),
                         "duration": m.seconds, "size": _size(m.wav),
                         "forwarded_by": m.envelope.get("forwarded_by")}
                        for m in reversed(box.messages(folder))] for folder in FOLDERS}  # newest first
    return {"extension": box.extension, "folders": folders,
            "greetings": {kind: box.greeting(kind) is not None for kind in GREETINGS},
            "used": {"messages": count, "seconds": round(seconds, 1), "fill": round(box.fill(), 3)},
            "limits": {"messages": box.limits.max_messages, "minutes": box.limits.storage_minutes}}


def audio_piece(box: Mailbox, ident: str, offset: int) -> dict | None:
    """{"data": base64 of up to AUDIO_PIECE bytes from `offset`, "size", "next": offset or None}."""
    msg = box.find(ident)
    if msg is None:
        return None
    with open(msg.wav, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, int(offset)))
        data = f.read(AUDIO_PIECE)
    end = max(0, int(offset)) + len(data)
    return {"data": base64.b64encode(data).decode(), "size": size, "next": end if end < size else None}


def act(box: Mailbox, ident: str, action: str) -> bool:
    msg = box.find(ident)
    if msg is None:
        return False
    if action == "delete":
        box.delete(msg)
    elif action in ACTIONS:
        box.move(msg, ACTIONS[action])
    else:
        raise ValueError(f"unknown action {action!r}")
    return True


def put_greeting(box: Mailbox, kind: str, data_b64: str) -> None:
    """Store an uploaded greeting (ValueError with the reason when it is not a usable WAV)."""
    if kind not in GREETINGS:
        raise ValueError(f"no greeting {kind!r}")
    try:
        data = base64.b64decode(data_b64, validate=True)
        with wave.open(io.BytesIO(data), "rb") as w:
            params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
            seconds = w.getnframes() / float(w.getframerate())
    except (binascii.Error, wave.Error, EOFError, ZeroDivisionError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from None
    if params not in ((1, 2, 8000), (1, 2, 16000)) or not 0.3 <= seconds <= GREETING_MAX_SECONDS:
        raise ValueError("a greeting is 16-bit mono PCM at 8 or 16 kHz, 0.3 s to 2 minutes")
    temp = box.dir / f".greet-{secrets.token_hex(4)}.wav"
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    box.save_greeting(kind, temp)


def _size(path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
