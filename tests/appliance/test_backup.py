import gzip
import io
import json
import os
import stat
import tarfile

import pytest

from appliance import backup, schema
from appliance.users import hash_password
from tests.appliance.conftest import set_company


def add_user(doc):
    doc["users"].append({"login": "ann", "full_name": "Ann Smith", "extension": "201",
                         "password_hash": hash_password("correct horse")})


def test_round_trip_restores_config_and_state(engine, ctx, tmp_path):
    engine.update("admin", "company", set_company("Acme"))
    engine.update("admin", "user", add_user)
    (ctx.state_dir("mail") / "ann").mkdir()
    (ctx.state_dir("mail") / "ann" / "msg1").write_bytes(b"Subject: hi\r\n\r\nhello\r\n")
    target = tmp_path / "box.obx"
    manifest = backup.create_backup(ctx, engine, target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "state/mail/ann/msg1" in manifest["files"]

    engine.update("admin", "oops", set_company("Wrong"))
    (ctx.state_dir("mail") / "ann" / "msg1").unlink()
    rev = backup.restore_backup(ctx, engine, target, "admin")
    config = engine.current_config()
    assert config.system.company_name == "Acme"
    assert config.user("ann").check_password("correct horse")
    assert (ctx.state_dir("mail") / "ann" / "msg1").read_bytes().endswith(b"hello\r\n")
    assert engine.store.revision(rev).summary.startswith("restore of the backup made")


def rewrite(source, target, edit):
    """Copy a backup, letting `edit(name, data) -> data` change members (a tampering attacker)."""
    with tarfile.open(source, "r:gz") as tar:
        members = {i.name: tar.extractfile(i).read() for i in tar}
    with tarfile.open(target, "w:gz") as tar:
        for name, data in members.items():
            data = edit(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def good_backup(engine, ctx, tmp_path):
    engine.update("admin", "company", set_company("Acme"))
    path = tmp_path / "good.obx"
    backup.create_backup(ctx, engine, path)
    engine.update("admin", "later", set_company("Later"))
    return path


def assert_refused(engine, ctx, path, message):
    before = engine.store.current_id()
    with pytest.raises(backup.BackupError, match=message):
        backup.restore_backup(ctx, engine, path, "admin")
    assert engine.store.current_id() == before
    assert engine.current_config().system.company_name == "Later"


def test_truncated_backup_is_refused(engine, ctx, good_backup, tmp_path):
    bad = tmp_path / "truncated.obx"
    bad.write_bytes(good_backup.read_bytes()[:200])
    assert_refused(engine, ctx, bad, "corrupt or truncated")


def test_random_bytes_are_refused(engine, ctx, tmp_path):
    bad = tmp_path / "junk.obx"
    bad.write_bytes(gzip.compress(b"not a tar at all" * 100))
    engine.update("admin", "later", set_company("Later"))
    assert_refused(engine, ctx, bad, "not a readable OfficeBox backup")


def test_tampered_member_is_refused(engine, ctx, good_backup, tmp_path):
    bad = tmp_path / "tampered.obx"
    rewrite(good_backup, bad, lambda n, d: d.replace(b"Acme", b"Evil") if n == "config.json" else d)
    assert_refused(engine, ctx, bad, "fails its checksum")


def test_backup_from_a_newer_firmware_is_refused(engine, ctx, good_backup, tmp_path):
    def newer(name, data):
        if name != backup.MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["schema_version"] = schema.SCHEMA_VERSION + 1
        return json.dumps(manifest).encode()
    bad = tmp_path / "newer.obx"
    rewrite(good_backup, bad, newer)
    assert_refused(engine, ctx, bad, "newer firmware")


def test_path_traversal_is_refused(engine, ctx, good_backup, tmp_path):
    bad = tmp_path / "evil.obx"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    assert_refused(engine, ctx, bad, "unexpected entry")


def test_staged_restore_is_checked_first_then_restored_at_the_next_start(engine, ctx, good_backup, tmp_path):
    bad = tmp_path / "bad.obx"
    rewrite(good_backup, bad, lambda name, data: data.replace(b"Acme", b"Evil"))
    with pytest.raises(backup.BackupError, match="checksum"):
        backup.stage_restore(ctx, engine, bad)
    assert not (ctx.data_dir / backup.PENDING).exists()
    assert backup.restore_pending(ctx, engine) is None

    backup.stage_restore(ctx, engine, good_backup)
    staged = ctx.data_dir / backup.PENDING
    assert stat.S_IMODE(os.stat(staged).st_mode) == 0o600
    assert engine.current_config().system.company_name == "Later"  # nothing changes before the restart
    rev = backup.restore_pending(ctx, engine)
    assert engine.current_config().system.company_name == "Acme" and engine.store.current_id() == rev
    assert not staged.exists() and backup.restore_pending(ctx, engine) is None


def test_a_staged_restore_that_fails_keeps_the_box_as_it_was(engine, ctx, good_backup):
    staged = ctx.data_dir / backup.PENDING
    staged.write_bytes(good_backup.read_bytes()[:200])  # damaged on disk after it was checked
    before = engine.store.current_id()
    with pytest.raises(backup.BackupError):
        backup.restore_pending(ctx, engine)
    assert engine.store.current_id() == before and engine.current_config().system.company_name == "Later"
    assert not staged.exists() and (ctx.data_dir / backup.FAILED).exists()


def test_a_restore_whose_configuration_fails_to_apply_leaves_state_and_configuration_as_they_were(
        engine, ctx, tmp_path):
    """Before: the state folders were swapped in first, so a failing apply left the backup's mailboxes
    beside the old configuration."""
    mail = ctx.state_dir("mail")
    (mail / "from-backup").write_bytes(b"old mail")
    doc = engine.store.current().document
    target = tmp_path / "fails.obx"
    backup.create_backup(ctx, engine, target)
    engine.update("admin", "later", set_company("Later"))
    (mail / "from-backup").unlink()
    (mail / "live").write_bytes(b"today's mail")

    refused = json.dumps({**doc, "system": {**doc["system"], "company_name": "BADCHECK"}}).encode()

    def badcheck(name, data):  # valid for the schema, refused by the probe daemon's check at apply
        if name == "config.json":
            return refused
        if name == backup.MANIFEST:
            manifest = json.loads(data)
            manifest["files"]["config.json"] = backup.hashlib.sha256(refused).hexdigest()
            return json.dumps(manifest).encode()
        return data
    bad = tmp_path / "badcheck.obx"
    rewrite(target, bad, badcheck)
    before = engine.store.current_id()
    with pytest.raises(Exception, match="refused its configuration"):
        backup.restore_backup(ctx, engine, bad, "admin")
    assert engine.store.current_id() == before and engine.current_config().system.company_name == "Later"
    assert (mail / "live").read_bytes() == b"today's mail" and not (mail / "from-backup").exists()
    assert not [p for p in ctx.data_dir.iterdir() if p.name.startswith(".restore-")]


def test_encrypted_backup_round_trip_and_refusals(engine, ctx, tmp_path):
    engine.update("admin", "company", set_company("Acme"))
    engine.update("admin", "user", add_user)
    mail = b"secret mail " + os.urandom(200_000)  # incompressible: several cipher chunks
    (ctx.state_dir("mail") / "msg").write_bytes(mail)
    target = tmp_path / "box.obx"
    manifest = backup.create_backup(ctx, engine, target, passphrase="long passphrase")
    assert manifest["encrypted"] and backup.is_encrypted(target)
    data = target.read_bytes()
    assert b"secret mail" not in data and b"$argon2" not in data and b"Acme" not in data
    engine.update("admin", "later", set_company("Later"))
    with pytest.raises(backup.BackupError, match="give its passphrase"):
        backup.restore_backup(ctx, engine, target, "admin")
    with pytest.raises(backup.BackupError, match="wrong passphrase"):
        backup.restore_backup(ctx, engine, target, "admin", passphrase="guess")
    for name, altered in (("flipped", data[:100] + bytes([data[100] ^ 1]) + data[101:]),
                          ("cut at a chunk", data[:len(backup.cryptstream.MAGIC) + 23 + 65552]),
                          ("cut", data[:-5]), ("extended", data + data[-40:])):
        bad = tmp_path / f"{name}.obx"
        bad.write_bytes(altered)
        with pytest.raises(backup.BackupError):
            backup.restore_backup(ctx, engine, bad, "admin", passphrase="long passphrase")
        assert engine.current_config().system.company_name == "Later", name
    backup.stage_restore(ctx, engine, target, passphrase="long passphrase")
    assert not backup.is_encrypted(ctx.data_dir / backup.PENDING)  # kept decrypted; no passphrase stored
    backup.restore_pending(ctx, engine)
    assert engine.current_config().system.company_name == "Acme"
    assert (ctx.state_dir("mail") / "msg").read_bytes() == mail


def test_backup_and_restore_stream_in_bounded_memory(engine, ctx, tmp_path):
    """Before: every member was read into memory whole, both ways."""
    import tracemalloc
    big = ctx.state_dir("mail") / "big"
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1024 * 1024))
    target = tmp_path / "big.obx"
    tracemalloc.start()
    try:
        backup.create_backup(ctx, engine, target, passphrase="pw for the big one")
        _, made = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        big.unlink()
        backup.restore_backup(ctx, engine, target, "admin", passphrase="pw for the big one")
        _, restored = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert big.stat().st_size == 48 * 1024 * 1024
    assert made < 12 * 1024 * 1024 and restored < 12 * 1024 * 1024, (made, restored)


def test_a_format_1_backup_with_the_manifest_first_is_still_restored(engine, ctx, tmp_path):
    engine.update("admin", "company", set_company("Acme"))
    config = json.dumps(engine.store.current().document).encode()
    state = b"old format mail"
    files = {"config.json": config, "state/mail/m1": state}
    manifest = {"format": backup.FORMAT, "format_version": 1, "schema_version": schema.SCHEMA_VERSION,
                "created": 1.0e9, "revision": 1, "hostname": "officebox",
                "files": {n: backup.hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    old = tmp_path / "v1.obx"
    with tarfile.open(old, "w:gz") as tar:
        for name, data in [(backup.MANIFEST, json.dumps(manifest).encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine.update("admin", "later", set_company("Later"))
    backup.restore_backup(ctx, engine, old, "admin")
    assert engine.current_config().system.company_name == "Acme"
    assert (ctx.state_dir("mail") / "m1").read_bytes() == state
