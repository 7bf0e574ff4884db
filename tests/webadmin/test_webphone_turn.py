"""The browser phone through the box's TURN server: Chromium forced to relay-only ICE (the page's test
switch) calls a baresip desk phone and audio flows both ways, through coturn started as the PBX's
supervised child would be (its rendered file, its argv); coturn's log shows the signed-in user's
allocation and the credentials endpoint hands out TURN REST credentials."""
from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import os
import pwd
import re
import shutil
import time
from pathlib import Path

import pytest

from appliance import serviceusers
from appliance.certs import TLS_GROUP, box_certificate
from services.pbx import PbxService
from services.pbx.webrtc import turn
from tests.appliance.test_privileges import proc_status
from tests.services.pbx.baresip import have_baresip
from tests.services.pbx.test_turn import Client, TlsClient, start_coturn
from tests.webadmin.helpers import csrf_of
from tests.webadmin.test_account import signed_in
from tests.webadmin.test_browser import server  # noqa: F401 (fixture)
from tests.webadmin.test_pbx_pages import _until
from tests.webadmin.test_webphone import (
    FAKE_MEDIA,
    STATS_JS,
    TONE_HZ,
    RecordingBaresip,
    _browser,
    _tone_microphone,
    box,
    call_desk_phone,
    open_phone,
    peak_frequency,
)

__all__ = ["box"]  # the fixture

PAIR_JS = """async () => {
  const pc = window.webphone.session.sessionDescriptionHandler.peerConnection;
  const report = await pc.getStats();
  let local = null;
  report.forEach((r) => {
    if (r.type === "candidate-pair" && r.state === "succeeded" && r.nominated) local = r.localCandidateId;
  });
  let kind = null;
  report.forEach((r) => { if (r.id === local) kind = [r.candidateType, r.relayProtocol || null]; });
  return kind;
}"""


def _turns_only(route) -> None:
    """The credentials answer with only the turns: URL: the browser can reach coturn over TLS alone."""
    response = route.fetch()
    body = response.json()
    for ice in body["ice_servers"]:
        ice["urls"] = [u for u in ice["urls"] if u.startswith("turns:")]
    route.fulfill(response=response, json=body)


class Coturn:
    """coturn as the supervisor runs it: the service's rendered file where apply writes it, its argv."""

    def __init__(self, svc, config, log_path) -> None:
        files = svc.render(config)
        (svc.ctx.etc_dir("pbx") / "turnserver.conf").write_text(files["turnserver.conf"])
        serviceusers.prepare(svc.ctx, "pbx")  # what the PBX process's start does before its daemons start
        serviceusers.share_rendered(svc.ctx, "pbx")
        self.log_path = log_path
        (spec,) = svc.processes(config)
        self.proc = start_coturn(list(spec.argv), log_path)

    def text(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("turnserver") is None, reason="needs root and coturn")
def test_coturn_runs_as_the_pbx_user_with_no_capability_and_still_relays(box, tmp_path):
    coturn = Coturn(box.svc, box.config, tmp_path / "coturn.log")
    try:
        status = proc_status(coturn.proc.pid)  # setpriv and the launcher exec'd: this is turnserver
        assert status["Name"] == "turnserver"
        uid, gid = pwd.getpwnam("officebox-pbx").pw_uid, grp.getgrnam("officebox-pbx").gr_gid
        assert status["Uid"].split() == [str(uid)] * 4 and status["Gid"].split() == [str(gid)] * 4
        assert status["Groups"].split() == [str(grp.getgrnam(TLS_GROUP).gr_gid)]
        for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[caps], 16) == 0, (caps, status[caps])
        assert status["NoNewPrivs"] == "1"
        work = box.svc.ctx.state_dir("pbx") / "turn"
        assert all(p.stat().st_uid == uid for p in (work, work / "turndb", work / "turnserver.pid"))
        made = turn.credentials(turn.secret(box.svc.ctx.state_dir("pbx")), "alice")
        kind, attrs, _ = Client(turn.LAB_PORT).allocate(made["username"], made["credential"])
        assert kind == 0x0103, attrs  # an allocation from the unprivileged coturn
        cert, _key = box_certificate(box.svc.ctx.data_dir, box.config.system.hostname)
        kind, attrs, _ = TlsClient(turn.LAB_TLS_PORT, cert).allocate(made["username"], made["credential"])
        assert kind == 0x0103, attrs  # over TLS: it read the box key by its TLS group
    finally:
        coturn.close()


@pytest.mark.slow
@pytest.mark.skipif(not have_baresip() or shutil.which("turnserver") is None, reason="needs baresip and coturn")
@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_relay_only_browser_call_has_audio_both_ways_through_coturn(box, server, tmp_path, transport):  # noqa: F811
    """Relay-only ICE with every TURN URL (the browser picks UDP) or with the turns: URL alone (TLS)."""

    coturn = Coturn(box.svc, box.config, tmp_path / "coturn.log")
    registrar = f"127.0.0.1:{box.svc.sip_port}"
    try:
        with _browser(server, FAKE_MEDIA + _tone_microphone(tmp_path)) as page, \
                RecordingBaresip("bob", user="202", password="bobsecret12", registrar=registrar) as bob:
            page.add_init_script("window.webphoneIcePolicy = 'relay';")
            if transport == "tls":
                page.route("**/webphone/credentials", _turns_only)
            bob.register()
            open_phone(page)
            call_desk_phone(page, bob)
            bob.wait_rtp(rx=150, tx=150, timeout=20)
            stats = _until(lambda: (s := page.evaluate(STATS_JS)) and s["packets"] > 100 and s["level"] > 0 and s)
            assert stats["energy"] > 0   # the desk phone's tone plays in the browser
            assert page.evaluate(PAIR_JS) == ["relay", transport]
            page.click("#phone-hangup")
            bob.wait_for("CALL_CLOSED")
        samples, rate = bob.heard()
        assert abs(peak_frequency(samples, rate) - TONE_HZ) <= 20   # bob heard the browser's tone
        log = coturn.text()
        assert re.search(r"user <\d+:alice>: incoming packet ALLOCATE processed, success", log), log[-3000:]
        assert re.search(r"user <\d+:alice>: incoming packet CHANNEL_BIND processed, success|"
                         r"user <\d+:alice>: incoming packet CREATE_PERMISSION processed, success", log)
    finally:
        coturn.close()


def test_credentials_carry_short_lived_turn_rest_credentials_and_the_port_opens_with_the_phone(box, runtime):
    alice = signed_in(runtime, "alice")
    body = alice.post("/webphone/credentials", headers={"X-CSRF-Token": csrf_of(alice, "/webphone/")}).get_json()
    (ice,) = body["ice_servers"]
    url = f"turn:localhost:{turn.LAB_PORT}"
    assert ice["urls"] == [f"{url}?transport=udp", f"{url}?transport=tcp",
                           f"turns:localhost:{turn.LAB_TLS_PORT}?transport=tcp"]
    expiry, login = ice["username"].split(":")
    assert login == "alice" and 0 < int(expiry) - time.time() <= turn.CREDENTIAL_TTL
    state = Path(box.svc.ctx.state_dir("pbx"))
    assert (state / turn.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    key = (state / turn.SECRET_FILE).read_text().encode()
    assert base64.b64decode(ice["credential"]) == hmac.new(key, ice["username"].encode(), hashlib.sha1).digest()
    assert key.decode() not in box.svc.processes(box.config)[0].argv  # the secret stays in the 0600 file
    # the firewall opens the TURN port only while the browser phone's media is served
    found = {(x.name, x.protocol, x.ports) for x in PbxService.contributes(box.config, lab=False)
             if hasattr(x, "protocol")}
    assert {("turn", "udp", (turn.PORT, turn.PORT)), ("turn", "tcp", (turn.PORT, turn.PORT)),
            ("turns", "tcp", (turn.TLS_PORT, turn.TLS_PORT))} <= found
    off = box.config.model_copy(update={"pbx": box.config.pbx.model_copy(update={"webrtc": False})})
    assert "turn" not in {getattr(x, "name", "") for x in PbxService.contributes(off, lab=False)}
    assert box.svc.processes(off) == [] and box.svc.render(off) == {}
