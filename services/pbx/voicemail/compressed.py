"""An MP3 copy of a message beside its WAV (<id>.mp3, made with lame: Debian package `lame`) for users
who chose it (pbx.extensions.<ext>.voicemail_compressed): a tenth of the size, to mail and to keep on a
phone. Made once, atomically (a reader sees a whole file or none). Blocking: call from a thread."""
from __future__ import annotations

import logging
import os
import secrets
import subprocess
from pathlib import Path

log = logging.getLogger("officebox.pbx.voicemail")
ENCODE_TIMEOUT = 120.0  # seconds; a message lasts at most a few minutes
QUALITY = "6"  # lame VBR quality (0 best .. 9 smallest): speech stays clear at about 24 kbit/s


def mp3_copy(wav: Path) -> Path | None:
    """The message's MP3 copy, made now if it is missing; None (logged) when lame cannot make it."""
    dest = wav.with_suffix(".mp3")
    if dest.is_file():
        return dest
    if not wav.is_file():
        return None
    temp = wav.with_name(f".{wav.stem}-{secrets.token_hex(3)}.mp3")
    try:
        done = subprocess.run(["lame", "--quiet", "-V", QUALITY, "-m", "m", str(wav), str(temp)],
                              capture_output=True, timeout=ENCODE_TIMEOUT)
        if done.returncode != 0 or not temp.is_file():
            log.warning("no MP3 copy of %s: lame said %s", wav.name, done.stderr.decode(errors="replace")[-200:])
            return None
        os.replace(temp, dest)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("no MP3 copy of %s: %s", wav.name, err)
        return None
    finally:
        temp.unlink(missing_ok=True)
    if not wav.is_file():  # moved or deleted while it was encoded: no copy left behind
        dest.unlink(missing_ok=True)
        return None
    return dest
