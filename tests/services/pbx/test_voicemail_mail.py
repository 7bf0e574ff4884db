"""Voicemail to e-mail against the box's own mail service (SMTP in, Dovecot's IMAP out): bob (baresip)
leaves alice a message and alice's mailbox, read with imaplib and the email package, holds a mail with
caller, time and duration and the WAV attached, whose audio correlates with what bob said (10 ms RMS
envelopes: SAME/OTHER of test_channel.py, another sentence as the negative control). Also: notify-only
in French, a mail service that is down at first (the mail waits, the message is never lost, then it
goes and with "delete after mailing" leaves the box), and the 90 % warning once per crossing."""
from __future__ import annotations

import datetime
import email
import imaplib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from email.policy import default as email_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance import schema
from appliance.context import Context
from services.pbx.voicemail import for_core
from tests.services.mail.harness import PASSWORD, RunningMail, document, free_port, imap_session, password_hash

from . import test_channel as ch
from .baresip import have_baresip
from .conftest import ALICE, BOB, seed_prompts
from .pbxrunner import PbxRunner
from .test_trunks import wait
from .vmutil import put_message

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_baresip(), reason="baresip is not installed"),
              pytest.mark.skipif(ch.ESPEAK is None, reason="espeak-ng is not installed")]
BOB_PASSWORD = "bob-secret-22"


@pytest.fixture(scope="module")
def top():
    """Outside pytest's tmp tree: vmail must reach the mailboxes (tests/services/mail/conftest.py)."""
    path = Path(tempfile.mkdtemp(prefix="ob-vmmail-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _doc(smtp_port: int, extensions: dict | None = None, alice_language: str = "en", **voicemail) -> dict:
    doc = document(lab_smtp_port=smtp_port)
    doc["users"] = [dict(ALICE, password_hash=password_hash("alice"), language=alice_language),
                    dict(BOB, password_hash=password_hash("bob"))]
    doc["pbx"] = {"lab_sip_port": 0, "lab_rtp_port_min": 23600, "lab_rtp_port_max": 23799, "codecs": ["PCMU"],
                  "digest_algorithms": ["MD5"], "extensions": extensions or {},
                  "voicemail": {"silence_stop": 2, **voicemail}}
    return doc


@pytest.fixture(scope="module")
def rig(top, prompt_set):
    seed_prompts(prompt_set, top / "pbx")  # made on first use otherwise: during the first test's call
    smtp = free_port()
    doc = _doc(smtp)
    with ExitStack() as stack:
        mail = RunningMail(Context(top / "var", lab=True), {k: v for k, v in doc.items() if k != "pbx"})
        stack.callback(mail.stop)
        pbx = stack.enter_context(PbxRunner(top / "pbx", schema.parse(doc)))
        yield {"mail": mail, "pbx": pbx, "smtp": smtp, "imap": mail.port("imap")}


@pytest.fixture
def box(rig):
    vm = for_core(rig["pbx"].svc.core)
    mailbox = rig["pbx"].sync(vm.box, "201")
    for path in mailbox.dir.rglob("*"):
        if path.is_file():
            path.unlink()
    for path in (vm.root / ".outbox").glob("*"):
        path.unlink()
    _clear_inbox(rig["imap"])
    return mailbox


def _reload(rig, doc: dict) -> None:
    rig["pbx"].reload(schema.parse(doc))


@contextmanager
def _imap(port: int) -> Iterator[imaplib.IMAP4]:
    with imap_session(port, "alice", PASSWORD) as imap:
        imap.select("INBOX")
        yield imap


def _clear_inbox(port: int) -> None:
    with _imap(port) as imap:
        nums = imap.search(None, "ALL")[1][0].split()
        for num in nums:
            imap.store(num, "+FLAGS", "\\Deleted")
        imap.expunge()


def _mails(port: int) -> list[email.message.EmailMessage]:
    with _imap(port) as imap:
        found = []
        for num in imap.search(None, "ALL")[1][0].split():
            found.append(email.message_from_bytes(imap.fetch(num, "(BODY.PEEK[])")[1][0][1], policy=email_policy))
        return found


def _deposit(rig, box, source: Path):
    return put_message(rig["pbx"], box.extension, source)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    said = ch.speech(d / "said.wav", "Hello Alice, this is Bob. Please call me back about the budget.")
    samples, _ = ch.read_wav(said)
    return {"said": said, "other": ch.speech(d / "other.wav", "The weather today is sunny with a light breeze."),
            "bob": ch.write_wav(d / "bob.wav", [0] * 8000 * 4 + samples + [0] * 8000 * 20)}


def test_a_message_left_by_phone_arrives_by_mail_with_the_recording(rig, box, audio, tmp_path):
    doc = _doc(rig["smtp"], {"201": {"voicemail_email": "attach"}})
    _reload(rig, doc)
    ch.write_wav(box.dir / "greet-unavailable.wav", [0] * 8000)  # a short greeting: the beep comes soon
    started = time.time()
    with ExitStack() as stack:
        bob = stack.enter_context(ch.AudioBaresip("bob", audio["bob"], user="202", password=BOB["sip_secret"],
                                                  registrar=rig["pbx"].registrar, codecs=("pcmu",)))
        bob.register()
        bob.dial("201")
        bob.wait_for("CALL_ESTABLISHED")
        wait(lambda: box.messages("INBOX"), timeout=40, what="the message in INBOX")
        bob.wait_for("CALL_CLOSED", timeout=20)
    [msg] = box.messages("INBOX")
    mails = wait(lambda: _mails(rig["imap"]), timeout=30, what="the mail in alice's mailbox")
    [mail] = mails
    assert mail["Subject"] == f"New voicemail from Bob Durand <202> ({int(round(msg.seconds)) // 60}:" \
                              f"{int(round(msg.seconds)) % 60:02d})"
    assert mail["To"].addresses[0].addr_spec == "alice@example.com"
    body = mail.get_body(("plain",)).get_content()
    assert "From: Bob Durand <202>" in body and "mailbox 201" in body
    zone = ZoneInfo(schema.SystemConfig().timezone)  # the mail gives the time in the box's zone
    stamp = datetime.datetime.fromtimestamp(msg.envelope["time"], zone).strftime("%Y-%m-%d %H:%M")
    assert started - 60 <= msg.envelope["time"] and stamp[:10] in body
    [wav] = [p for p in mail.iter_attachments()]
    assert wav.get_content_type() == "audio/wav" and wav.get_filename() == f"voicemail-{msg.id}.wav"
    attached = tmp_path / "attached.wav"
    attached.write_bytes(wav.get_content())
    got, rate = ch.read_wav(attached)
    assert rate == 8000 and abs(len(got) / rate - msg.seconds) <= 0.05
    said, _ = ch.read_wav(audio["said"])
    same, lag = ch.best_correlation(ch.envelope(said), ch.envelope(got), 600)
    other = ch.envelope(ch.read_wav(audio["other"])[0])
    different, _ = ch.best_correlation(other, ch.envelope(got), 600)
    assert same > ch.SAME, f"the attachment does not match what bob said ({same:.3f} at {lag * 10} ms)"
    assert different < ch.OTHER, f"another sentence matches as well ({different:.3f})"
    assert box.messages("INBOX"), "attach (without delete) keeps the voicemail"


def test_notify_only_in_the_users_language(rig, box, audio):
    _reload(rig, _doc(rig["smtp"], {"201": {"voicemail_email": "notify"}}, alice_language="fr"))
    _deposit(rig, box, audio["said"])
    [mail] = wait(lambda: _mails(rig["imap"]), timeout=30, what="the notice in alice's mailbox")
    assert mail["Subject"].startswith("Nouveau message vocal de Bob Durand <202> (")
    assert not list(mail.iter_attachments())
    assert "Durée :" in mail.get_body(("plain",)).get_content()


def test_off_mails_nothing(rig, box, audio):
    _reload(rig, _doc(rig["smtp"]))
    _deposit(rig, box, audio["said"])
    time.sleep(2.0)
    assert _mails(rig["imap"]) == [] and for_core(rig["pbx"].svc.core).mailer.waiting() == 0


def test_a_mail_service_that_is_down_keeps_the_mail_and_the_message(rig, box, audio, caplog):
    """Submitted to a port nobody listens on: the mail waits in the outbox (logged), the message stays;
    once the PBX is given the mail service, the mail goes and "delete after mailing" empties the box."""
    settings = {"201": {"voicemail_email": "attach", "voicemail_email_delete": True}}
    _reload(rig, _doc(free_port(), settings))
    mailer = for_core(rig["pbx"].svc.core).mailer
    msg = _deposit(rig, box, audio["said"])
    wait(lambda: "not sent yet" in caplog.text, timeout=20, what="the failed submission logged")
    assert mailer.waiting() == 1 and [m.id for m in box.messages("INBOX")] == [msg.id]
    assert _mails(rig["imap"]) == []
    _reload(rig, _doc(rig["smtp"], settings))
    [mail] = wait(lambda: _mails(rig["imap"]), timeout=30, what="the mail once the mail service is there")
    assert mail["X-Voicemail-Id"] == msg.id and len(list(mail.iter_attachments())) == 1
    wait(lambda: not box.messages("INBOX"), timeout=10, what="the message removed after mailing")
    assert mailer.waiting() == 0


def test_the_90_percent_warning_is_mailed_once_per_crossing(rig, box, audio):
    _reload(rig, _doc(rig["smtp"], limits={"max_messages": 10}))

    def warnings():
        return [m for m in _mails(rig["imap"]) if "almost full" in m["Subject"]]
    for _ in range(8):
        _deposit(rig, box, audio["said"])
    time.sleep(1.5)
    assert warnings() == []
    _deposit(rig, box, audio["said"])  # 9 of 10: 90 %
    [warning] = wait(warnings, timeout=30, what="the warning mail")
    assert warning["Subject"] == "Your voicemail box 201 is almost full"
    assert "90 % full (9 messages" in warning.get_body(("plain",)).get_content()
    _deposit(rig, box, audio["said"])  # 10: still above, no second mail
    time.sleep(2.0)
    assert len(warnings()) == 1
    for msg in box.messages("INBOX")[:3]:
        rig["pbx"].sync(box.delete, msg)  # 7 of 10: below again
    _deposit(rig, box, audio["said"])
    _deposit(rig, box, audio["said"])  # 9 again: a new crossing
    wait(lambda: len(warnings()) == 2, timeout=30, what="the second crossing's warning")


def _correlates(got_wav: Path, audio) -> float:
    got, _ = ch.read_wav(got_wav)
    said, _ = ch.read_wav(audio["said"])
    same, _ = ch.best_correlation(ch.envelope(said), ch.envelope(got), 600)
    different, _ = ch.best_correlation(ch.envelope(ch.read_wav(audio["other"])[0]), ch.envelope(got), 600)
    assert different < ch.OTHER, f"another sentence matches as well ({different:.3f})"
    return same


def test_a_recording_cut_by_a_crash_is_mailed_once_recovered(rig, box, audio, tmp_path):
    """What a kill -9 during a recording leaves (the envelope and the WAV so far, never deposited) is
    recovered at the next start (publish_all on fresh boxes) and mailed like any new message."""
    _reload(rig, _doc(rig["smtp"], {"201": {"voicemail_email": "attach"}}))
    vm = for_core(rig["pbx"].svc.core)

    def crash_then_start() -> str:
        pending = box.begin("202", "Bob Durand")
        shutil.copy(audio["said"], pending.wav)  # what the engine had written when the PBX was killed
        vm._boxes.clear()  # the next start opens every box afresh
        vm.publish_all()
        return pending.id
    ident = rig["pbx"].sync(crash_then_start)
    assert [m.id for m in box.messages("INBOX")] == [ident]
    [mail] = wait(lambda: _mails(rig["imap"]), timeout=30, what="the recovered message's mail")
    assert mail["X-Voicemail-Id"] == ident and mail["Subject"].startswith("New voicemail from Bob Durand <202>")
    [wav] = list(mail.iter_attachments())
    (tmp_path / "got.wav").write_bytes(wav.get_content())
    assert _correlates(tmp_path / "got.wav", audio) > ch.SAME


def test_a_compressed_copy_beside_the_wav_is_mailed_too(rig, box, audio, tmp_path):
    """voicemail_compressed: an MP3 (lame) beside the WAV, attached with it; decoded back (lame --decode)
    it correlates with what was said; it moves and goes with its message."""
    _reload(rig, _doc(rig["smtp"], {"201": {"voicemail_email": "attach", "voicemail_compressed": True}}))
    msg = _deposit(rig, box, audio["said"])
    [mail] = wait(lambda: _mails(rig["imap"]), timeout=30, what="the mail with both recordings")
    parts = {p.get_filename(): p for p in mail.iter_attachments()}
    assert set(parts) == {f"voicemail-{msg.id}.wav", f"voicemail-{msg.id}.mp3"}
    mp3 = parts[f"voicemail-{msg.id}.mp3"]
    assert mp3.get_content_type() == "audio/mpeg"
    copy = msg.wav.with_suffix(".mp3")
    assert copy.read_bytes() == mp3.get_content() and copy.stat().st_size < msg.wav.stat().st_size / 3
    (tmp_path / "got.mp3").write_bytes(mp3.get_content())
    subprocess.run(["lame", "--quiet", "--decode", str(tmp_path / "got.mp3"), str(tmp_path / "decoded.wav")],
                   check=True, timeout=60)
    same = _correlates(tmp_path / "decoded.wav", audio)
    print(f"MP3 copy {copy.stat().st_size} bytes for a {msg.wav.stat().st_size}-byte WAV; correlation {same:.3f}")
    assert same > ch.SAME
    moved = rig["pbx"].sync(box.move, msg, "Saved")
    assert moved.wav.with_suffix(".mp3").is_file() and not copy.exists()
    rig["pbx"].sync(box.delete, moved)
    assert not list(box.dir.rglob("*.mp3"))
