"""A voicemail message put in a box as the deposit application leaves one (Voicemail.deposit: mailed,
counted against the 90 % warning), on the PBX runner's loop, for tests that do not need a caller."""
from __future__ import annotations

import shutil

from services.pbx.voicemail import for_core


def put_message(runner, ext: str, wav, caller: str = "202", name: str = "Bob Durand"):
    vm = for_core(runner.svc.core)

    def put():
        box = vm.box(ext)  # with the limits of the configuration now
        pending = box.begin(caller, name)
        shutil.copy(wav, pending.wav)
        return vm.deposit(box, pending)
    return runner.sync(put)
