"""The scheduled-backups page with an SMB share: its fields' errors all at once in the summary with the
input kept, the password never shown back nor in the change history, and the test button's outcome."""
from __future__ import annotations

from tests.webadmin.helpers import post
from tests.webadmin.test_backups import _form

SMB_PASSWORD = "nas-password-1"


def _smb(**changes):
    fields = {"kind": "smb", "host": "127.0.0.1", "share": "Backups", "user": "box", "domain": "OFFICE",
              "path": "office/backups", "smb_password": SMB_PASSWORD}
    return _form("", **{**fields, **changes})


def test_smb_fields_are_checked_together_and_the_input_is_kept(admin_client, runtime):
    before = runtime.store.current().id
    page = post(admin_client, "/backups/", _smb(share="", smb_password="", user="", host="nas.lan"))
    text = page.get_data(as_text=True)
    assert page.status_code == 400 and runtime.store.current().id == before
    assert 'id="error-summary"' in text and "The form has 3 problems" in text
    for field in ("share", "smb_password", "user"):
        assert f'id="e-{field}"' in text and f'href="#f-{field}"' in text
    assert 'value="nas.lan"' in text and 'value="office/backups"' in text and 'value="OFFICE"' in text
    bad = post(admin_client, "/backups/", _smb(share="Back/ups"))
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and runtime.store.current().id == before
    assert "like Backups" in text and "String should match" not in text  # the expected format, not the pattern
    assert 'value="Back/ups"' in text


def test_the_password_is_kept_hidden_and_the_test_button_tells_what_failed(admin_client, runtime, tmp_path):
    saved = post(admin_client, "/backups/", _smb())
    assert saved.status_code == 302, saved.get_data(as_text=True)
    dest = runtime.config.backups.destination
    assert (dest.kind, dest.share, dest.domain, dest.password_secret) == ("smb", "Backups", "OFFICE", SMB_PASSWORD)
    page = admin_client.get("/backups/").get_data(as_text=True)
    assert SMB_PASSWORD not in page and "Test the destination" in page
    history = admin_client.get("/history/").get_data(as_text=True)
    assert "scheduled backups" in history and SMB_PASSWORD not in history
    again = post(admin_client, "/backups/", _smb(keep="4", smb_password="", passphrase="", passphrase2=""))
    assert again.status_code == 302 and runtime.config.backups.destination.password_secret == SMB_PASSWORD

    failed = post(admin_client, "/backups/test", {}, form_path="/backups/")  # nothing listens there
    text = failed.get_data(as_text=True)
    assert failed.status_code == 400 and "The destination test failed" in text
    assert "the SMB server 127.0.0.1 cannot be reached" in text

    folder = tmp_path / "usb"
    folder.mkdir()
    assert post(admin_client, "/backups/", _form(folder)).status_code == 302
    assert runtime.config.backups.destination.password_secret == ""  # not kept for another kind
    works = post(admin_client, "/backups/test", {}, form_path="/backups/", follow_redirects=True)
    assert "The destination works" in works.get_data(as_text=True) and list(folder.iterdir()) == []


def test_the_smb_port_defaults_to_445_and_another_one_is_saved_and_used(admin_client, runtime):
    page = admin_client.get("/backups/").get_data(as_text=True)
    assert 'name="smb_port" type="number" value="445"' in page
    before = runtime.store.current().id
    bad = post(admin_client, "/backups/", _smb(smb_port="lots", share=""))
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and runtime.store.current().id == before
    assert 'href="#f-smb_port"' in text and 'href="#f-share"' in text and 'value="lots"' in text
    assert "a whole number from 1 to 65535" in text
    assert post(admin_client, "/backups/", _smb()).status_code == 302  # a form without the field: 445
    assert runtime.config.backups.destination.smb_port == 445
    assert post(admin_client, "/backups/", _smb(smb_port="4450")).status_code == 302
    assert runtime.config.backups.destination.smb_port == 4450
    assert 'name="smb_port" type="number" value="4450"' in admin_client.get("/backups/").get_data(as_text=True)
    failed = post(admin_client, "/backups/test", {}, form_path="/backups/").get_data(as_text=True)
    assert "the SMB server 127.0.0.1 (port 4450) cannot be reached" in failed
