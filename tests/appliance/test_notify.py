"""Notifications: a trunk that stops registering when its carrier (a second PBX on 127.0.0.2) stops
mails the admin once (real SMTP into the box's mail service, Dovecot, read with imaplib) and raises a
banner condition; it clears, with one more mail, when the carrier is back. The disk, certificate and
restart conditions start and clear once each."""
import asyncio
import datetime
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance import notify, rpc
from appliance.clients import client_for
from appliance.context import Context
from appliance.notify import Notifier
from appliance.servicehost import IsolatedService
from appliance.supervisor import Supervisor
from services.pbx import PbxService
from services.pbx.core import PbxCore
from tests.appliance.probe_service import ProbeService
from tests.appliance.test_isolation import configure, until
from tests.appliance.test_runtime import reap, run_lab_box, stop, wait_for_line
from tests.netns import Lab, needs_netns
from tests.services.mail.harness import PASSWORD, RunningMail, document, free_port, imap_session
from tests.services.pbx.pbxrunner import PbxRunner, config, user

LINE = user("line", "5000", "linesecret99", "Office line")
ALICE_PHONE = user("alice", "201", "alicesecret1", "Alice Martin")


@pytest.fixture
def ctx():
    """Outside pytest's tmp root (vmail must reach the mailboxes: see tests/services/mail/conftest.py)."""
    top = Path(tempfile.mkdtemp(prefix="ob-notify-"))
    top.chmod(0o711)
    yield Context(top / "var", lab=True)
    shutil.rmtree(top, ignore_errors=True)


def udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def subjects(port: int) -> list[str]:
    with imap_session(port, "alice", PASSWORD) as imap:
        imap.select("INBOX", readonly=True)
        found = []
        for num in imap.search(None, "ALL")[1][0].split():
            header = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].decode()
            found.append(" ".join(header.split()[1:]))
        return found


@pytest.mark.slow
def test_trunk_down_mails_the_admin_once_and_clears_when_the_carrier_is_back(ctx, monkeypatch):
    monkeypatch.setattr(PbxCore, "register_time_scale", 0.1)  # refresh after 4.8 s, retry every 3 s
    carrier_port = udp_port("127.0.0.2")
    carrier_cfg = config([LINE], lab_sip_port=carrier_port, min_expires=10, max_expires=60)
    doc = document(lab_smtp_port=free_port())
    doc["system"]["admin_email"] = "alice@example.com"
    with ExitStack() as stack:
        mail = RunningMail(ctx, doc)
        stack.callback(mail.stop)
        carrier = PbxRunner(ctx.data_dir / "carrier", carrier_cfg, host="127.0.0.2").__enter__()
        box = stack.enter_context(PbxRunner(ctx.data_dir / "box", config(
            [ALICE_PHONE], trunks=[{"name": "carrier", "host": "127.0.0.2", "port": carrier_port, "username": "5000",
                                    "auth_password": LINE["sip_secret"], "registration": True,
                                    "register_expires": 60}])))
        notifier = Notifier(ctx, lambda: mail.config, lambda name: client_for(box.svc) if name == "pbx" else
                            client_for(mail.service), lambda: None, disk_threshold=100.1)
        until(lambda: box.svc.trunks()[0]["registered"], 10, "the trunk's registration")
        assert notifier.check() == [] and notifier.active() == []
        box.svc.core.stack.timers.T1 = 0.1  # a REGISTER without an answer times out (64 * T1) in 6.4 s

        carrier.__exit__(None, None, None)  # the carrier goes away: the refresh (at 4.8 s) times out
        started = until(notifier.check, 30, "the trunk-down notification")
        assert [(e["key"], e["state"]) for e in started] == [("trunk:carrier", "started")]
        assert "no answer from the carrier (SIP 408)" in notifier.active()[0]["message"]
        imap_port = mail.port("imap")
        down = until(lambda: subjects(imap_port), 20, "the notification in alice's mailbox")
        assert down == ["[box] Trunk carrier is not registered: no answer from the carrier (SIP 408)"]
        assert notifier.check() == [] and len(subjects(imap_port)) == 1  # told once, no storm

        carrier = stack.enter_context(PbxRunner(ctx.data_dir / "carrier", carrier_cfg, host="127.0.0.2"))
        cleared = until(notifier.check, 30, "the trunk's registration again")  # retried every 3 s
        assert [(e["key"], e["state"]) for e in cleared] == [("trunk:carrier", "cleared")]
        assert notifier.active() == []
        both = until(lambda: len(subjects(imap_port)) == 2 and subjects(imap_port), 20, "the resolved mail")
        assert both[1].startswith("[box] Resolved: Trunk carrier is not registered")


def test_disk_threshold_starts_and_clears_once_and_survives_a_restart(ctx):
    cfg = config([])
    notifier = Notifier(ctx, lambda: cfg, lambda name: None, lambda: None, disk_threshold=0.0)
    [event] = notifier.check()
    assert event["key"] == "disk" and event["state"] == "started" and "full" in event["message"]
    assert notifier.check() == []
    again = Notifier(ctx, lambda: cfg, lambda name: None, lambda: None, disk_threshold=0.0)
    assert again.check() == [] and [p["key"] for p in again.active()] == ["disk"]  # no repeat after a restart
    again.disk_threshold = 100.1
    assert [(e["key"], e["state"]) for e in again.check()] == [("disk", "cleared")]
    assert again.active() == [] and again.check() == []


def short_certificate(path: Path, days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "officebox")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_near_its_end(ctx):
    cfg = config([])
    cert = ctx.data_dir / "certs" / f"{cfg.system.hostname}.crt"
    short_certificate(cert, 3)
    notifier = Notifier(ctx, lambda: cfg, lambda name: None, lambda: None, disk_threshold=100.1)
    assert [e["key"] for e in notifier.check()] == ["certificate"]
    assert "expires on" in notifier.active()[0]["message"]
    short_certificate(cert, 365)
    assert [(e["key"], e["state"]) for e in notifier.check()] == [("certificate", "cleared")]


class FailingProbe(ProbeService):
    """Fails to start (the supervisor retries with backoff 1, 2, 4 s) until `fixed`."""
    fixed = False

    async def start(self, config):
        if not self.fixed:
            raise OSError("port in use")
        await super().start(config)


def test_a_service_that_keeps_failing_to_start(ctx):
    cfg = config([])
    probe = FailingProbe(ctx)
    supervisor = Supervisor(ctx, {"probe": probe})
    notifier = Notifier(ctx, lambda: cfg, lambda name: None, lambda: supervisor, disk_threshold=100.1)

    async def scenario():
        await supervisor.start(cfg)
        try:
            for _ in range(100):
                if supervisor.units["probe"].failures >= notify.RESTARTS:
                    break
                await asyncio.sleep(0.1)
            started = await asyncio.to_thread(notifier.check)
            probe.fixed = True
            for _ in range(100):
                if supervisor.units["probe"].state == "running":
                    break
                await asyncio.sleep(0.1)
            return started, await asyncio.to_thread(notifier.check)
        finally:
            await supervisor.stop()

    started, cleared = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [e["message"] for e in started] == ["The probe service keeps restarting: port in use"]
    assert [(e["key"], e["state"]) for e in cleared] == [("restarts:probe", "cleared")]


@needs_netns
@pytest.mark.slow
def test_the_running_appliance_notices_a_trunk_down_through_the_pbx_process(data, monkeypatch):
    """`officebox run --lab` (PBX in its own process): its loop runs the notifier, which reads the trunks
    through the typed client; the dashboard's summary crosses the RPC as JSON."""
    monkeypatch.setenv("OFFICEBOX_SIP_T1", "0.05")  # the REGISTER to nobody is a 408 after 3.2 s, not 32 s
    monkeypatch.setenv("OFFICEBOX_NOTIFY_INTERVAL", "1")  # a check each second, not each 15 s
    with Lab() as lab:
        box = lab.host("box")
        proc = run_lab_box(box, data)
        try:
            wait_for_line(proc, r"web admin: ")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                dead = s.getsockname()[1]  # closed again: nothing answers there (in the box's namespace)
            trunk = {"name": "carrier", "host": "127.0.0.1", "port": dead, "username": "5000",
                     "auth_password": "linesecret99", "registration": True}
            configure(data, ("pbx.trunks", json.dumps([trunk])))
            state = data / "state" / "core" / "notify.json"

            def active():
                return state.exists() and json.loads(state.read_text())["active"]
            found = until(lambda: "trunk:carrier" in (active() or {}) and active(), 90, "the trunk-down condition")
            assert found["trunk:carrier"]["message"].endswith("no answer from the carrier (SIP 408)")
            summary = rpc.call_sync(data / "run" / "pbx" / "service.sock",
                                    {"op": "call", "method": "summary", "args": [time.time() - 3600]}, 10)
            assert summary["calls_per_hour"] == [0] * 24 and summary["active_calls"] == 0
            assert [(t["name"], t["registered"]) for t in summary["trunks"]] == [("carrier", False)]
            stop(proc)
        finally:
            reap(proc)


@pytest.mark.slow
def test_a_mail_that_cannot_go_now_waits_and_one_refused_for_good_is_dropped(ctx):
    doc = document(lab_smtp_port=free_port())
    doc["system"]["admin_email"] = "alice@example.com"
    mail = RunningMail(ctx, doc)
    try:
        real = mail.config
        closed = real.model_copy(update={"mail": real.mail.model_copy(update={"lab_smtp_port": free_port()})})
        current = [closed]
        notifier = Notifier(ctx, lambda: current[0], lambda name: client_for(mail.service) if name == "mail" else None,
                            lambda: None, disk_threshold=0.0)
        notifier.check()  # nothing listens on that port: the mail waits
        assert json.loads(notifier.path.read_text())["outbox"][0]["key"] == "disk"
        assert notifier.path.stat().st_mode & 0o777 == 0o600
        current[0] = real
        assert notifier.check() == []  # no new event; the waiting mail goes now
        assert until(lambda: subjects(mail.port("imap")), 20, "the late mail")[0].startswith("[box] The data disk is")
        assert json.loads(notifier.path.read_text())["outbox"] == []

        outside = real.model_copy(update={"system": real.system.model_copy(update={"admin_email": "ops@far.test"})})
        current[0] = outside
        notifier.disk_threshold = 100.1
        assert [e["state"] for e in notifier.check()] == ["cleared"]  # 554 relay denied: dropped, not retried
        assert json.loads(notifier.path.read_text())["outbox"] == []
    finally:
        mail.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_data_disk_over_90_percent_on_a_small_tmpfs(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data)], check=True)
    try:
        box = Context(data, lab=True)
        cfg = config([])
        notifier = Notifier(box, lambda: cfg, lambda name: None, lambda: None)  # the real 90 % threshold
        assert notifier.check() == []
        filler = data / "filler"
        filler.write_bytes(b"\0" * int(3.8 * 2**20))
        [event] = notifier.check()
        assert event["key"] == "disk" and event["message"].startswith("The data disk is 9")
        filler.unlink()
        assert [(e["key"], e["state"]) for e in notifier.check()] == [("disk", "cleared")]
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_a_pbx_process_restarting_neither_clears_nor_repeats_a_trunk_down(ctx):
    """Between two processes of the PBX the appliance's own copy knows no trunk: that is no news."""
    cfg = config([])
    pbx = IsolatedService(PbxService(ctx), ctx.run_dir("core") / "bus.sock")  # its process is not running
    client = client_for(pbx)
    down = {"name": "carrier", "register": True, "registered": False, "last_status": 408}
    before = Notifier(ctx, lambda: cfg, lambda name: None, lambda: None, disk_threshold=100.1)
    before._sources = lambda: {"trunk": lambda: notify.trunk_problems([down])}  # the PBX as it answered before
    assert [e["key"] for e in before.check()] == ["trunk:carrier"]
    after = Notifier(ctx, lambda: cfg, lambda name: client if name == "pbx" else None, lambda: None,
                     disk_threshold=100.1)
    assert client.isolated and not pbx.alive and client.trunks() == []
    assert after.check() == [] and [p["key"] for p in after.active()] == ["trunk:carrier"]


def test_the_mail_is_written_in_the_admins_language_else_the_boxs():
    """Before, every notification mail was English whatever the admin's or the box's language."""
    from appliance import schema

    doc = {"system": {"admin_email": "amelie@acme.example", "language": "zh_TW", "hostname": "box"},
           "users": [user("amelie", "201", "secret201", email="amelie@acme.example", language="fr")]}
    cfg = schema.parse(doc)
    args = {"name": "carrier", "reason": notify.trunk_reason(408), "status": 408}
    event = {"key": "trunk:carrier", "state": "started", "time": 0, "kind": "trunk", "args": args,
             "message": notify.describe("trunk", args)}
    notifier = Notifier.__new__(Notifier)
    french = notifier._message(event, cfg)
    assert french["Subject"].startswith("[box] ") and "carrier" in french["Subject"]
    assert "pas enregistrée" in french["Subject"] and "pas de réponse de l’opérateur" in french["Subject"].lower()
    assert french["Content-Language"] == "fr" and "Trunk" not in french.get_content()
    doc["users"][0]["language"] = "en"
    doc["users"][0]["email"] = "other@acme.example"  # the address is nobody's: the box's language
    chinese = notifier._message({**event, "state": "cleared"}, schema.parse(doc))
    assert chinese["Content-Language"] == "zh-TW" and "carrier" in chinese["Subject"]
    assert not any("a" <= ch.lower() <= "z" for ch in chinese.get_content().split("(")[0])  # the state line
    old = {k: v for k, v in event.items() if k not in ("kind", "args")}  # a mail queued by the old firmware
    assert notifier._message(old, cfg)["Subject"] == f"[box] {event['message']}"
