"""The softphone QR code on the admin's setup sheet of a user and on the user's own account page: an SVG drawn
by qrencode from the SIP URI (checked by drawing the expected text again with qrencode: no QR decoder is
installed), with the password only while the sheet shows it; never to another staff user; never cached."""
from __future__ import annotations

import base64
import re
import subprocess

from tests.webadmin.helpers import post, sign_in
from tests.webadmin.test_users import ANNA

BOB = {**ANNA, "login": "bob", "full_name": "Bob B", "email": "", "extension": "202", "password": "bob-password-1",
       "password2": "bob-password-1"}


def qr_text_is(page: str, text: str) -> bool:
    """The page's softphone QR image is qrencode's drawing of `text`."""
    found = re.search(r'id="softphone-qr".*?<img class="qr" src="data:image/svg\+xml;base64,([^"]+)"', page, re.S)
    assert found, "no softphone QR code on the page"
    drawn = subprocess.run(["qrencode", "-t", "SVG", "-l", "M", "-o", "-"], input=text.encode(),
                           capture_output=True, check=True).stdout
    return base64.b64decode(found.group(1)) == drawn


def test_the_sheet_and_the_own_page_show_a_softphone_qr(admin_client, app, runtime):
    assert post(admin_client, "/users/new", ANNA).status_code == 302
    config = runtime.config
    secret = config.user("anna").sip_secret
    port = config.pbx.lab_sip_port if runtime.ctx.lab else config.pbx.sip_port
    where = f"{config.network.lan.address.ip}:{port};transport=udp"

    first = admin_client.get("/users/anna/sheet")
    assert first.headers["Cache-Control"] == "no-store"
    page = first.get_data(as_text=True)
    assert qr_text_is(page, f"sip:201:{secret}@{where}")
    assert f'alt="QR code of the SIP account sip:201@{where}"' in page
    again = admin_client.get("/users/anna/sheet").get_data(as_text=True)  # the password is shown once
    assert qr_text_is(again, f"sip:201@{where}") and not qr_text_is(again, f"sip:201:{secret}@{where}")

    assert post(admin_client, "/users/new", BOB).status_code == 302
    anna = app.test_client()
    assert sign_in(anna, "anna", ANNA["password"]).status_code == 302
    own = anna.get("/account/")
    assert own.status_code == 200 and own.headers["Cache-Control"] == "no-store"
    assert qr_text_is(own.get_data(as_text=True), f"sip:201@{where}")
    assert anna.get("/users/bob/sheet").status_code in (302, 403)  # staff never see another user's sheet
    assert "sip:202" not in own.get_data(as_text=True)


def test_a_password_with_reserved_characters_is_percent_encoded():
    from webadmin.qrcode import softphone_uri

    assert softphone_uri("201", "10.0.0.1", 5060, "a@b:c/d") == "sip:201:a%40b%3Ac%2Fd@10.0.0.1:5060;transport=udp"
    assert softphone_uri("201", "10.0.0.1", 5060) == "sip:201@10.0.0.1:5060;transport=udp"
