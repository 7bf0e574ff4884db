"""Prompts: everything the box says, generated with espeak-ng in English, French and Mandarin (Taiwan),
stored as 16-bit PCM mono WAV at 8 and 16 kHz, each replaceable by an upload.

    lib = PromptLibrary(ctx.data_dir, config.pbx.prompt_language)
    lib.ensure()                                      # at start, in a thread: generates once per catalogue
    lib.prompt_path("vm-leave-message", "fr", 16000)  # -> Path; falls back to the box default, then English
    lib.say_number(71, "fr")                          # -> [soixante, et, onze] files (numbers.py rules)
    lib.say_digits("201#", "zh-TW")

The catalogue (keys and texts): catalogue.py; number rules: numbers.py; sox helpers: audio.py.
"""
from .audio import RATES, AudioError
from .catalogue import LANGUAGES
from .library import PromptError, PromptLibrary, PromptsUnavailable, normalise_language, speak
from .numbers import digit_keys, number_keys, number_words

__all__ = ["RATES", "LANGUAGES", "AudioError", "PromptError", "PromptLibrary", "PromptsUnavailable",
           "normalise_language", "speak", "digit_keys", "number_keys", "number_words"]
