"""SafeText: free text that reaches a rendered file or a wire protocol (names, labels, trunk user names).

Refuses every control character (C0 including CR, LF, TAB and NUL; DEL; C1) and the Unicode line and
paragraph separators, so a value can never start a new line in a SIP header, a phone configuration
file or a daemon's configuration. Use it as a field type, with Field() for lengths:

    full_name: SafeText = Field(min_length=1, max_length=100)
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MESSAGE = "must not contain line breaks, tabs or other control characters"


def no_controls(value: str) -> str:
    if CONTROL.search(value):
        raise ValueError(MESSAGE)
    return value


SafeText = Annotated[str, AfterValidator(no_controls)]
