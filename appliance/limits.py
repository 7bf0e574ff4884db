"""Process limits checked at start: enough file descriptors for every listener's connection cap.

raise_open_files() lifts the soft RLIMIT_NOFILE to the hard limit (at most WANTED_FILES); children
inherit it. Below MIN_FILES the box cannot hold its listeners' caps: that is logged as an error
(the unit file sets LimitNOFILE= so it does not happen on the box).
"""
from __future__ import annotations

import logging
import resource

log = logging.getLogger("officebox.limits")
WANTED_FILES = 65536
MIN_FILES = 4096


def raise_open_files(wanted: int = WANTED_FILES) -> int:
    """The soft limit on open files after raising it as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError) as exc:
        log.error("cannot raise the open-file limit from %d: %s", soft, exc)
    if soft < MIN_FILES:
        log.error("open-file limit %d is below %d: listeners may refuse connections early", soft, MIN_FILES)
    return soft
