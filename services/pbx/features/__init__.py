"""Call features on top of call control: pickup (pickup.py), park (park.py), paging and intercom
(paging.py), feature codes keyed during a call (incall.py). Call control calls intercept() when a call
starts, taken() when a ringing call gets picked up and incall.watch() when a call is bridged; everything
else lives here."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import incall, paging, park, pickup
from .pickup import PICKED_UP, taken

if TYPE_CHECKING:
    from ..calls import Call

__all__ = ["PICKED_UP", "configure", "incall", "intercept", "taken"]


async def intercept(call: "Call") -> bool:
    """True when a feature has taken `call` over (a pickup, a page); an intercom call is changed and goes on."""
    return await pickup.intercept(call) or await paging.intercept(call)


def configure(cfg) -> None:
    """A new configuration: the applications of its park slots."""
    park.configure(cfg)
