"""The public call-centre pages on a port of their own (pbx.public_web, opened from the WAN by the PBX's
"public-web" Listener): the same Flask app as the web admin, behind PublicOnly, which passes on only the
public routes (/public/...) and the few static files their pages load; everything else (sign-in, admin and
staff pages, the API) answers 404 there. PublicSite starts, moves and stops that listener as the
configuration says, with the box's certificate."""
from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

log = logging.getLogger("officebox.webadmin")
PREFIX = "/public/"
STATIC = frozenset(f"/static/{name}" for name in ("officebox.css", "favicon.svg", "forms.js", "chat.js"))
NOT_FOUND = b"Not found.\n"
FOLLOW_SECONDS = 1.0  # how often the configuration is looked at


def allowed(path: str) -> bool:
    """A public page (no dot segment, no empty segment) or one of their static files."""
    if path in STATIC:
        return True
    parts = path[len(PREFIX):].split("/") if path.startswith(PREFIX) else []
    return bool(parts) and all(p not in ("", ".", "..") for p in parts)


class PublicOnly:
    """WSGI middleware: the public routes of `app`, 404 for any other path."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        if allowed(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(NOT_FOUND))), ("Cache-Control", "no-store")])
        return [NOT_FOUND]


def wanted(config, lab: bool) -> tuple[str, int] | None:
    """(host, port) the public pages are served on, or None when they are not."""
    pbx = getattr(config, "pbx", None)
    if pbx is None or not pbx.enabled or not pbx.public_web:
        return None
    return ("127.0.0.1", pbx.lab_public_web_port) if lab else ("0.0.0.0", pbx.public_web_port)


class PublicSite:
    def __init__(self, app, certificate, lab: bool) -> None:
        self.app = PublicOnly(app)
        self.certificate = certificate  # config -> (cert, key) paths
        self.lab = lab
        self.server = None
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._failed: tuple[str, int] | None = None

    @property
    def port(self) -> int | None:
        return self.server.port if self.server is not None else None

    def sync(self, config) -> None:
        """Start, move or stop the listener to match `config` (a port in use is logged and tried again)."""
        target = wanted(config, self.lab)
        if target == self.address:
            return
        self.stop()
        if target is None:
            return
        from webadmin.server import AdminServer
        cert, key = self.certificate(config)
        server = AdminServer(target[0], target[1], self.app, cert, key)
        try:
            server.prepare()
        except OSError as exc:
            if self._failed != target:  # logged once, tried again each time
                log.error("public call-centre pages not served on port %d: %s", target[1], exc)
            self._failed = target
            return
        self._failed = None
        self.server, self.address = server, target
        self._thread = threading.Thread(target=server.serve, name="webpublic", daemon=True)
        self._thread.start()
        log.warning("public call-centre pages served on port %d", server.port)

    def reload_certificate(self, cert: Path | str, key: Path | str) -> None:
        if self.server is not None:
            self.server.reload_certificate(cert, key)

    def stop(self) -> None:
        server, thread = self.server, self._thread
        self.server, self.address, self._thread = None, None, None
        if server is not None:
            server.stop()
            if thread is not None:
                thread.join(5)

    async def follow(self, current_config) -> None:
        """Keep the listener matching the configuration (`current_config()`), until cancelled (then stop())."""
        while True:
            try:
                config = await asyncio.to_thread(current_config)
                await asyncio.to_thread(self.sync, config)
            except Exception:
                log.exception("public call-centre pages: could not follow the configuration")
            await asyncio.sleep(FOLLOW_SECONDS)
