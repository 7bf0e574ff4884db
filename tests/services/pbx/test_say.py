"""say_digits / say_number / say_datetime on the channel (endpoint.MediaEndpoint): what baresip hears is
the prompt library's files for it, one after the other, in the box's prompt language (no called user
here: app:script), compared by RMS-envelope correlation as in test_channel.py. Negative control: the same
digits in another language, or other digits, at the same places correlate clearly less.

Thresholds: one word's envelope is a simple shape, so two different one-word prompts of the same voice
correlate up to 0.87 (measured: English 4 against French 4, French 9 against 4...), while the very file
through PCMU correlates above 0.9999 (measured); WORD = 0.98 separates them."""
from __future__ import annotations

import datetime
import shutil
from contextlib import ExitStack

import pytest

from services.pbx.prompts import PromptLibrary

from .baresip import have_baresip
from .conftest import ALICE, BOB, CAROL, DAVE
from .pbxrunner import PbxRunner, config
from .test_channel import ESPEAK, _phone, best_correlation, envelope, read_wav, script, write_wav  # noqa: F401

WORD = 0.98  # see the docstring
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ESPEAK is None or not shutil.which("sox"), reason="espeak-ng and sox are needed")]


@pytest.fixture
def frpbx(tmp_path, script):  # noqa: F811 (the fixture imported above)
    cfg = config([ALICE, BOB, CAROL, DAVE], application_numbers={"*50": "app:script"},
                 digest_algorithms=["MD5"], codecs=["PCMU"], prompt_language="fr")
    with PbxRunner(tmp_path / "pbx", cfg) as runner:
        yield runner


def _joined(files) -> list[int]:
    return [x for path in files for x in read_wav(path)[0]]


def in_turn(files, heard: list[int]) -> list[tuple[float, int]]:
    """Each file's best envelope correlation with what was heard, searched one after the other: the first
    anywhere in the first 3 s, each next one within 0.5 s after the end of the one before (the engine
    starts the next play when the last ends). [(correlation, lag in 10 ms windows)]"""
    sig = envelope(heard)
    found, start, span = [], 0, 300
    for path in files:
        ref = envelope(read_wav(path)[0])
        corr, lag = best_correlation(ref, sig[start:], span)
        found.append((corr, start + lag))
        start, span = max(0, start + lag + len(ref) - 5), 55
    return found


def at(path, heard: list[int], lag: int) -> float:
    """The envelope correlation of a file with what was heard from window `lag` on."""
    return best_correlation(envelope(read_wav(path)[0]), envelope(heard)[lag:], 0)[0]


def _heard(pbx, script, tmp_path, run) -> list[int]:  # noqa: F811
    script.run = run
    with ExitStack() as stack:
        ua = _phone(stack, pbx, write_wav(tmp_path / "quiet.wav", [0] * 8000 * 30), codecs=("pcmu",))
        script.outcome(60)
        ua.wait_for("CALL_CLOSED", 10)
        heard, rate = read_wav(ua.heard())
    assert rate == 8000
    return heard


def test_say_digits_plays_the_digit_prompts_in_the_box_language(frpbx, script, tmp_path):  # noqa: F811
    library = PromptLibrary(frpbx.ctx.data_dir, "en")
    library.ensure()  # made before the call (about 20 s the first time), as the box does at start
    french, english = library.say_digits("42", "fr"), library.say_digits("42", "en")
    assert [p.parent.name for p in french] == ["fr", "fr"]

    async def run(ch):
        await ch.answer()
        assert ch.language() == "fr"
        key = await ch.say_digits("42", interruptible=False)
        await ch.wait_gone(1.0)
        return key
    heard = _heard(frpbx, script, tmp_path, run)
    assert script.error is None and script.result is None
    assert len(heard) > len(_joined(french))
    same = in_turn(french, heard)
    assert all(c > WORD for c, _ in same), f"what baresip heard is not the French digits 4, 2 ({same})"
    lags = [lag for _, lag in same]  # negative controls: other prompts where the digits were heard
    other = [at(f, heard, lag) for f, lag in zip(english + library.say_digits("97", "fr"), lags * 2, strict=True)]
    print(f"say_digits 42: fr {same}, en 4 2 then fr 9 7 at the same places: {other}")
    assert max(other) < WORD - 0.05, f"other prompts match as well ({other}): the check proves nothing"


def test_say_number_and_datetime(frpbx, script, tmp_path):  # noqa: F811
    library = PromptLibrary(frpbx.ctx.data_dir, "en")
    library.ensure()
    when = datetime.datetime(2026, 12, 1, 14, 30)
    expected = library.say_number(1200, "fr") + [f for n in (1, 12, 14, 30) for f in library.say_number(n, "fr")]

    async def run(ch):
        await ch.answer()
        await ch.say_number(1200, interruptible=False)
        await ch.say_datetime(when, interruptible=False)
        await ch.wait_gone(1.0)
    heard = _heard(frpbx, script, tmp_path, run)
    assert script.error is None
    same = in_turn(expected, heard)
    print(f"say_number + say_datetime: {same}")
    assert all(c > WORD for c, _ in same), f"what baresip heard is not 1200 then 1 12 14 30 ({same})"
