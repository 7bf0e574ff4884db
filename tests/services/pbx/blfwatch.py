"""A scripted BLF watcher: a SipClient that SUBSCRIBEs to the dialog package of extensions, answers
every NOTIFY 200 and keeps their bodies, parsed (RFC 4235)."""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from services.pbx.sip.message import Request, Response, response_to

from .sipclient import SipClient

NS = {"d": "urn:ietf:params:xml:ns:dialog-info"}


def dialogs(body: bytes) -> list[dict]:
    """Each <dialog> of a dialog-info document: its attributes, state and local/remote targets."""
    out = []
    for d in ET.fromstring(body).findall("d:dialog", NS):
        local, remote = d.find("d:local/d:target", NS), d.find("d:remote/d:identity", NS)
        out.append({**d.attrib, "state": d.findtext("d:state", namespaces=NS),
                    "local_target": local.get("uri") if local is not None else None,
                    "remote": remote.text if remote is not None else None})
    return out


class Watcher:
    def __init__(self, client: SipClient, user: str, password: str) -> None:
        self.client, self.user, self.password = client, user, password
        self.notifies: dict[str, list[list[dict]]] = {}  # watched resource -> each NOTIFY's dialogs
        self.other: list = []  # messages that were no NOTIFY, for pump()

    async def subscribe(self, resource: str) -> int:
        x = self.client
        req = x.request("SUBSCRIBE", f"sip:{resource}@{x.server[0]}:{x.server[1]}", self.user,
                        headers={"Event": "dialog", "Expires": "300", "Accept": "application/dialog-info+xml"})
        x.send(req)
        resp = await self.pump(lambda m: isinstance(m, Response) and m.cseq[1] == "SUBSCRIBE" and m.status >= 200)
        if resp is None:
            raise AssertionError("no answer to SUBSCRIBE")
        if resp.status in (401, 407):
            x.answer_challenge(req, resp, self.user, self.password)
            resp = await self.pump(lambda m: isinstance(m, Response) and m.cseq[1] == "SUBSCRIBE" and m.status >= 200)
        return resp.status

    def _take(self, msg) -> bool:
        if isinstance(msg, Request) and msg.method == "NOTIFY":
            self.client.send(response_to(msg, 200))
            if msg.body:
                self.notifies.setdefault(_entity(msg.body), []).append(dialogs(msg.body))
            return True
        return False

    async def pump(self, wanted, timeout: float = 10.0):
        """Read until a message satisfying `wanted` (NOTIFYs answered and kept on the way); None on timeout."""
        for msg in list(self.other):
            if wanted(msg):
                self.other.remove(msg)
                return msg
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            try:
                msg = await self.client.recv(max(0.01, end - loop.time()))
            except TimeoutError:
                return None
            if self._take(msg) and not wanted(msg):
                continue
            if wanted(msg):
                return msg
            self.other.append(msg)
        return None

    async def states(self, resource: str, until: str, timeout: float = 10.0) -> list[str]:
        """The dialog states NOTIFYed for `resource` so far, read until one shows `until`."""
        def seen() -> list[str]:
            return [d["state"] for body in self.notifies.get(resource, []) for d in body]
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while until not in seen() and loop.time() < end:
            await self.pump(lambda m: False, timeout=min(0.2, max(0.01, end - loop.time())))
        return seen()


def _entity(body: bytes) -> str:
    entity = ET.fromstring(body).get("entity", "")
    return entity.partition(":")[2].partition("@")[0]
