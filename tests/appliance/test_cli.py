"""The `officebox` command, run as an installer or admin would run it on the console."""
import json
import os
import subprocess
import sys

import pytest

from appliance import schema


@pytest.fixture
def ob(tmp_path):
    data = tmp_path / "var"

    def run(*args, stdin=None, ok=True):
        result = subprocess.run([sys.executable, "-m", "appliance.cli", "--data-dir", str(data), *args],
                                input=stdin, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": os.getcwd()})
        if ok:
            assert result.returncode == 0, result.stderr
        return result
    run.data = data
    return run


def test_set_history_diff_rollback(ob):
    assert "revision #2" in ob("config", "set", "system.company_name", "Acme Ltd", "-m", "our name").stdout
    ob("config", "set", "system.company_name", "Other")
    history = ob("config", "history").stdout.splitlines()
    assert history[0].startswith("*#3") and "our name" in history[1]
    assert '+    "company_name": "Acme Ltd"' in ob("config", "diff", "1", "2").stdout
    ob("config", "rollback", "2")
    assert json.loads(ob("config", "show", "--section", "system").stdout)["company_name"] == "Acme Ltd"


def test_invalid_value_is_explained_and_nothing_changes(ob):
    result = ob("config", "set", "network.lan.address", "192.168.1.300/24", ok=False)
    assert result.returncode == 1
    assert "network.lan.address" in result.stderr
    result = ob("config", "set", "network.lan.address", "192.168.1.0/24", ok=False)  # the wizard's rule too
    assert "network.lan.address: 192.168.1.0 is not a host address of 192.168.1.0/24" in result.stderr
    result = ob("config", "set", "system.no_such_thing", "1", ok=False)
    assert "no such setting" in result.stderr
    assert len(ob("config", "history").stdout.splitlines()) == 1


def test_secrets_are_masked_unless_asked(ob):
    doc = json.loads(ob("config", "show").stdout)
    doc_users = [{"login": "ann", "full_name": "Ann", "extension": "201", "sip_secret": "s3cretSIPpass"}]
    ob("config", "set", "users", json.dumps(doc_users))
    shown = ob("config", "show", "--section", "users").stdout
    assert "s3cretSIPpass" not in shown and "********" in shown
    assert "s3cretSIPpass" in ob("config", "show", "--show-secrets").stdout
    assert doc["schema_version"] == schema.SCHEMA_VERSION


def test_password_reset_from_console(ob):
    users = [{"login": "boss", "full_name": "The Boss", "role": "admin"}]
    ob("config", "set", "users", json.dumps(users))
    assert ob("user", "passwd", "boss", "--password-stdin", stdin="short\n", ok=False).returncode == 1
    ob("user", "passwd", "boss", "--password-stdin", stdin="a long enough password\n")
    from appliance.users import verify_password
    doc = json.loads(ob("config", "show", "--show-secrets").stdout)
    assert verify_password(doc["users"][0]["password_hash"], "a long enough password")


def test_backup_and_restore_commands(ob, tmp_path):
    ob("config", "set", "system.company_name", "Saved Name")
    ob("backup", str(tmp_path / "b.obx"))
    ob("config", "set", "system.company_name", "Changed")
    assert "restored as revision" in ob("restore", str(tmp_path / "b.obx")).stdout
    assert json.loads(ob("config", "show", "--section", "system").stdout)["company_name"] == "Saved Name"
    (tmp_path / "bad.obx").write_bytes(b"garbage")
    result = ob("restore", str(tmp_path / "bad.obx"), ok=False)
    assert result.returncode == 1 and "not a readable OfficeBox backup" in result.stderr


def test_encrypted_backup_from_the_console(ob, tmp_path):
    ob("config", "set", "system.company_name", "Secret Name")
    out = tmp_path / "enc.obx"
    assert "encrypted backup" in ob("backup", str(out), "--encrypt", "--passphrase-stdin",
                                    stdin="correct horse battery\n").stdout
    assert b"Secret Name" not in out.read_bytes()
    short = ob("backup", str(tmp_path / "x.obx"), "--encrypt", "--passphrase-stdin", stdin="short\n", ok=False)
    assert short.returncode == 1 and "at least 8" in short.stderr
    ob("config", "set", "system.company_name", "Changed")
    wrong = ob("restore", str(out), "--passphrase-stdin", stdin="wrong horse battery\n", ok=False)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert "restored as revision" in ob("restore", str(out), "--passphrase-stdin",
                                        stdin="correct horse battery\n").stdout
    assert json.loads(ob("config", "show", "--section", "system").stdout)["company_name"] == "Secret Name"


def test_firmware_image_is_built_signed_verified_and_installed(ob, tmp_path):
    from appliance.firmware import new_signing_key

    key = tmp_path / "release.key"
    public = new_signing_key(key)
    trust = ob.data / "trusted-keys"
    trust.mkdir(parents=True)
    (trust / "release.pub").write_text(public.read_text())
    built = subprocess.run([sys.executable, "-m", "images.build"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.getcwd(), "OFFICEBOX_SIGNING_KEY": str(key)})
    assert built.returncode == 0, built.stderr
    bundle = built.stdout.split(":")[0]
    assert "signature and checksum good" in ob("firmware", "verify", bundle).stdout
    assert "installed" in ob("firmware", "install", bundle).stdout
    assert ob("firmware", "status").stdout.startswith("running 0.1.0")
    assert (ob.data / "firmware" / "current" / "appliance" / "schema.py").exists()
    (trust / "release.pub").unlink()
    refused = ob("firmware", "install", bundle, ok=False)
    assert refused.returncode == 1 and "not signed by a trusted key" in refused.stderr


def test_make_run_command_line_is_accepted_and_means_lab_mode():
    """`make run` is the front door: the officebox command line in its recipe must parse as lab mode."""
    from pathlib import Path

    from appliance.cli import parser

    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    argv = recipe.split("officebox", 1)[1].split()
    args = parser().parse_args(argv)
    assert args.command == "run" and args.lab is True


def test_global_options_go_before_or_after_the_command():
    from appliance.cli import parser

    for argv in (["--lab", "--data-dir", "/d", "config", "show"], ["config", "show", "--lab", "--data-dir", "/d"],
                 ["--lab", "config", "show", "--data-dir", "/d"]):
        args = parser().parse_args(argv)
        assert (args.lab, args.data_dir, args.action) == (True, "/d", "show"), argv
    assert parser().parse_args(["status"]).lab is False
