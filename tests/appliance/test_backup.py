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
