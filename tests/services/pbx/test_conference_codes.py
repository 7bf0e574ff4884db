"""Codes keyed during a conference, with real baresip phones sending DTMF (RFC 4733) and each its own
tone, recording what they hear: the count key says how many take part (the prompt replaces the room
for who asked), a leader locks the room (a newcomer hears it is locked and is hung up; a participant
who is no leader cannot), removes the one who joined last (no longer heard), unlocks it again; the mute
key takes a phone out of what the others hear and puts it back."""
from __future__ import annotations

import logging
import time
from contextlib import ExitStack

import pytest

from services.pbx.prompts import PromptLibrary

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL
from .pbxrunner import PbxRunner, config, user
from .test_conference import FREQS, HEARD, OWN, _join, _participants, _phone, _so_far
from .test_conference_mixer import spectrum_peaks
from .test_trunks import wait

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
ERIN = user("erin", "205", "erinsecret12", "Erin Blanc")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return ch.tone_files(tmp_path_factory.mktemp("tones"), FREQS[:4])


@pytest.fixture(scope="module")
def pbx(tmp_path_factory):
    data = tmp_path_factory.mktemp("pbx")
    rooms = [{"number": "800", "name": "main", "alone": "prompt", "leaders": ["201"]}]
    cfg = config([ALICE, BOB, CAROL, ERIN], digest_algorithms=["MD5"], conference_rooms=rooms)
    with PbxRunner(data, cfg) as runner:
        PromptLibrary(data, "en").ensure()
        yield runner


def _logged(caplog, text: str, timeout: float = 5.0) -> None:
    wait(lambda: any(text in r.getMessage() for r in caplog.records), timeout=timeout, what=repr(text))


def _hears(ua, seconds: float = 1.5) -> dict[float, float]:
    return spectrum_peaks(*_so_far(ua, seconds), FREQS[:4])


def test_count_lock_remove_and_mute_codes(pbx, tones, caplog):
    caplog.set_level(logging.INFO, "officebox.pbx.conference")
    alice_f, bob_f, carol_f = FREQS[:3]
    with ExitStack() as stack:
        alice, bob, carol = (_phone(stack, pbx, who, tones[i]) for i, who in enumerate((ALICE, BOB, CAROL)))
        _join(pbx, [alice, bob, carol])
        time.sleep(2.0)
        assert _hears(bob)[alice_f] > HEARD

        bob.send_dtmf("1")  # the count: said to bob, instead of the room
        _logged(caplog, "202 hears the count (3)")
        time.sleep(1.2)
        during = _hears(bob, 1.0)
        assert during[alice_f] < HEARD and during[carol_f] < HEARD, during
        assert max(ch.envelope(_so_far(bob, 1.0)[0])) > 300, "bob hears no prompt"
        assert _hears(alice, 1.0)[bob_f] > HEARD  # the others still hear bob

        bob.send_dtmf("2")  # bob is no leader: the room stays open
        _logged(caplog, "202 keyed a leader's code (lock)")
        alice.send_dtmf("2")
        _logged(caplog, "main locked by 201")
        erin = _phone(stack, pbx, ERIN, tones[3])
        erin.dial("800")
        erin.wait_for("CALL_ESTABLISHED")
        erin.wait_for("CALL_CLOSED", timeout=15)
        assert [p["label"] for p in _participants(pbx, "main")] == ["201", "202", "203"]

        alice.send_dtmf("3")  # the last one in goes
        carol.wait_for("CALL_CLOSED", timeout=10)
        _logged(caplog, "201 removed 203 (the last one in)")
        assert [p["label"] for p in _participants(pbx, "main")] == ["201", "202"]
        time.sleep(3.0)
        heard = _hears(bob)
        assert heard[alice_f] > HEARD and heard[carol_f] < OWN, heard

        bob.send_dtmf("*")  # muted: alice no longer hears him; again: she does
        wait(lambda: [p["muted"] for p in _participants(pbx, "main")] == [False, True], timeout=5, what="bob muted")
        time.sleep(2.0)
        assert _hears(alice)[bob_f] < OWN
        bob.send_dtmf("*")
        wait(lambda: [p["muted"] for p in _participants(pbx, "main")] == [False, False], timeout=5,
             what="bob unmuted")
        time.sleep(2.0)
        assert _hears(alice)[bob_f] > HEARD

        alice.send_dtmf("2")  # unlocked: erin gets in
        _logged(caplog, "main unlocked by 201")
        erin.dial("800")
        erin.wait_for("CALL_ESTABLISHED")
        wait(lambda: len(_participants(pbx, "main")) == 3, timeout=10, what="erin in the room")
        for ua in (alice, bob, erin):
            ua.hangup()
            ua.wait_for("CALL_CLOSED")
    wait(lambda: _participants(pbx, "main") == [], timeout=5, what="the room to empty")
