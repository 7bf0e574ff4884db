"""Call features on top of call control: pickup (pickup.py), park (park.py), paging and intercom
(paging.py), feature codes keyed during a call (incall.py; the three-party conference: threeway.py). Call
control calls intercept() when a call starts, taken() when a ringing call gets picked up, incall.watch()
when a call is bridged, leaving() when a party hangs up and reoffer() on a party's new offer; everything
else lives here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import bridging, incall, paging, park, pickup, threeway
from .pickup import PICKED_UP, taken

if TYPE_CHECKING:
    from ..calls import Call

__all__ = ["PICKED_UP", "bridging", "configure", "incall", "intercept", "leaving", "reoffer", "taken"]


async def intercept(call: "Call") -> bool:
    """True when a feature has taken `call` over (a pickup, a page); an intercom call is changed and goes on."""
    return await pickup.intercept(call) or await paging.intercept(call)


def leaving(call: "Call", leg) -> bool:
    """`leg` hung up: True when `call` goes on without it (two parties of a three-party conference stay)."""
    return threeway.leaving(call, leg)


def reoffer(call: "Call", leg, tx, req) -> bool:
    """`leg`'s re-INVITE/UPDATE offer: True when a feature answered it (a party of a three-party conference)."""
    return threeway.reoffer(call, leg, tx, req)


def configure(cfg) -> None:
    """A new configuration: the applications of its park slots."""
    park.configure(cfg)
