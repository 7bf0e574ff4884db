"""Auto attendant pages: an attendant and its menus made and edited through the forms (field errors for
unknown targets and loops), the greeting heard as served (typed text spoken by espeak-ng, then an
uploaded recording), time profiles with hours, breaks, the country's public holidays listed, company
dates typed and imported from an iCalendar file, and the night service switch."""
from __future__ import annotations

import io
import re
import shutil

import pytest

from tests.webadmin.helpers import csrf_of, post, sign_in
from tests.webadmin.test_voice import made, served, text

pytestmark = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                reason="espeak-ng and sox are needed")


def test_attendant_and_menus_through_the_forms(admin_client):
    assert post(admin_client, "/attendant/new", {"name": "main"}, "/attendant/").status_code == 302
    page = text(admin_client.get("/attendant/"))
    assert "attendant:main" in page and "Auto attendants" in page
    # a second menu, and key 1 of the first leads to it; key 2 to an unknown menu is a field error
    assert post(admin_client, "/attendant/main/menus/new", {"menu": "sales"}, "/attendant/main").status_code == 302
    bad = post(admin_client, "/attendant/main/menus/main", {"greeting_text": "Welcome to Acme.", "action_1": "menu",
               "target_1": "sales", "action_2": "menu", "target_2": "nowhere", "dial_extensions": "on"})
    assert bad.status_code == 400
    row = re.search(r'<tr id="key-2".*?</tr>', text(bad), re.S).group(0)
    assert "has-error" in row and "there is no menu" in row
    ok = post(admin_client, "/attendant/main/menus/main", {"greeting_text": "Welcome to Acme.", "action_1": "menu",
              "target_1": "sales", "action_0": "operator", "dial_extensions": "on",
              "state_text_closed": "We are closed.", "state_text_open": ""})
    assert ok.status_code == 302
    page = text(admin_client.get("/attendant/main/menus/main"))
    assert 'value="sales"' in page and "Welcome to Acme." in page
    assert re.search(r'name="state_text_closed"[^>]*>We are closed\.</textarea>', page)  # stored: the page shows it
    # the greeting as the listen button gets it: the typed text spoken (a second or more of speech)
    rate, seconds, loudest = served(admin_client, "/attendant/main/menus/main/greeting.wav")
    assert rate == 8000 and seconds > 0.8 and loudest > -30
    # attendant settings: an unknown entry menu is refused at its field
    bad = post(admin_client, "/attendant/main", {"entry_closed": "ghost", "timeout": "5", "attempts": "3",
                                                 "permission": "internal"})
    assert bad.status_code == 400 and "there is no menu" in text(bad)
    ok = post(admin_client, "/attendant/main", {"entry_closed": "sales", "timeout": "4", "attempts": "2",
                                                "permission": "national", "fallback": "voicemail:201"})
    assert ok.status_code == 302


def test_greeting_upload_replaces_the_spoken_text(admin_client, tmp_path):
    post(admin_client, "/attendant/new", {"name": "main"}, "/attendant/")
    tone = made(tmp_path, "tone.wav", "synth", "3", "sine", "440")
    token = csrf_of(admin_client, "/attendant/main/menus/main")
    response = admin_client.post("/attendant/main/menus/main/upload", content_type="multipart/form-data",
                                 data={"csrf_token": token, "audio": (io.BytesIO(tone), "tone.wav")})
    assert response.status_code == 302
    rate, seconds, _ = served(admin_client, "/attendant/main/menus/main/greeting.wav")
    assert rate == 8000 and abs(seconds - 3.0) < 0.05
    assert "Remove the recording" in text(admin_client.get("/attendant/main/menus/main"))
    token = csrf_of(admin_client, "/attendant/main/menus/main")
    junk = admin_client.post("/attendant/main/menus/main/upload", content_type="multipart/form-data",
                             data={"csrf_token": token, "audio": (io.BytesIO(b"not a sound file at all"), "x.wav")})
    assert junk.status_code == 302
    assert "The file was refused" in text(admin_client.get("/attendant/main/menus/main"))
    assert post(admin_client, "/attendant/main/menus/main/recording/delete", {},
                "/attendant/main/menus/main").status_code == 302
    _, seconds, _ = served(admin_client, "/attendant/main/menus/main/greeting.wav")
    assert abs(seconds - 3.0) > 0.1  # the generated welcome again


def test_loops_between_attendants_are_refused_by_the_form(admin_client):
    for name in ("a", "b"):
        post(admin_client, "/attendant/new", {"name": name}, "/attendant/")
    first = post(admin_client, "/attendant/a/menus/main", {"action_1": "attendant", "target_1": "b"})
    assert first.status_code == 302, re.findall(r'class="(?:error|banner[^"]*)"[^>]*>([^<]*)', text(first))
    bad = post(admin_client, "/attendant/b/menus/main", {"action_1": "attendant", "target_1": "a"})
    assert bad.status_code == 400 and "loop" in text(bad)


ICS = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20270802\r\nDTEND;VALUE=DATE:20270807\r\n" \
      b"SUMMARY:Summer closing\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


def test_time_profiles_hours_holidays_dates_and_night_service(admin_client):
    assert post(admin_client, "/attendant/profiles/new", {"name": "office"}, "/attendant/profiles").status_code == 302
    page = text(admin_client.get("/attendant/profiles/office"))
    assert 'value="09:00-12:30, 14:00-18:00"' in page
    assert "Christmas Day" in page and "National Day" in page  # France's public holidays listed
    bad = post(admin_client, "/attendant/profiles/office", {"hours_mon": "09:00-12:00, 11:00-18:00", "country": "FR",
                                                          "public_holidays": "on", "dates": ""})
    assert bad.status_code == 400 and "overlaps" in text(bad)
    bad = post(admin_client, "/attendant/profiles/office", {"hours_mon": "9 to 5", "country": "FR", "dates": "soon"})
    assert bad.status_code == 400 and "09:00-12:00, 14:00-18:00" in text(bad) and "not a date line" in text(bad)
    ok = post(admin_client, "/attendant/profiles/office", {"hours_mon": "08:00-12:00, 13:00-17:00", "country": "DE",
              "public_holidays": "on", "dates": "2027-12-24 Christmas Eve\n2027-12-27..2027-12-31 Year end"})
    assert ok.status_code == 302
    page = text(admin_client.get("/attendant/profiles/office"))
    assert "2027-12-27..2027-12-31 Year end" in page and "Zweiter Weihnachtstag" not in page
    assert "Second Day of Christmas" in page  # Germany's, in English
    token = csrf_of(admin_client, "/attendant/profiles/office")
    response = admin_client.post("/attendant/profiles/office/ics", content_type="multipart/form-data",
                                 data={"csrf_token": token, "calendar": (io.BytesIO(ICS), "closing.ics")})
    assert response.status_code == 302
    assert "2027-08-02..2027-08-06 Summer closing" in text(admin_client.get("/attendant/profiles/office"))
    token = csrf_of(admin_client, "/attendant/profiles/office")
    admin_client.post("/attendant/profiles/office/ics", content_type="multipart/form-data",
                      data={"csrf_token": token, "calendar": (io.BytesIO(b"garbage"), "x.ics")})
    assert "The calendar was refused" in text(admin_client.get("/attendant/profiles/office"))
    # night service on, then off, from the list
    assert post(admin_client, "/attendant/profiles/office/night", {"on": "1"}, "/attendant/profiles").status_code == 302
    page = text(admin_client.get("/attendant/profiles"))
    assert "Switch off" in page and ">Closed<" in page
    assert post(admin_client, "/attendant/profiles/office/night", {}, "/attendant/profiles").status_code == 302
    assert "Switch on" in text(admin_client.get("/attendant/profiles"))


def _staff(admin_client, runtime_login="sam"):
    assert post(admin_client, "/users/new", {"login": runtime_login, "full_name": "Sam Staff", "extension": "230",
                                             "role": "staff", "password": "staff-pass-123",
                                             "password2": "staff-pass-123", "enabled": "on"}).status_code == 302
    admin_client.get("/logout")
    staff = admin_client.application.test_client()
    assert sign_in(staff, runtime_login, "staff-pass-123").status_code == 302
    return staff


def test_staff_set_their_personal_assistant_and_the_admin_sees_it(admin_client):
    staff = _staff(admin_client)
    assert "/assistant/" in text(staff.get("/account/"))
    bad = post(staff, "/assistant/", {"enabled": "on", "kind_0": "mobile", "kind_1": "colleague", "number_1": "999"})
    assert bad.status_code == 400 and "the mobile choice needs the mobile number" in text(bad)
    bad = post(staff, "/assistant/", {"enabled": "on", "mobile": "0612345678", "kind_0": "mobile",
                                      "kind_1": "colleague", "number_1": "999"})
    assert bad.status_code == 400
    row = re.search(r'<tr id="choice-2".*?</tr>', text(bad), re.S).group(0)
    assert "999 is not an extension" in row
    ok = post(staff, "/assistant/", {"enabled": "on", "mobile": "0612345678", "greeting_text": "Sam is out.",
                                     "kind_0": "voicemail", "kind_1": "mobile"})
    assert ok.status_code == 302
    rate, seconds, loudest = served(staff, "/assistant/230/greeting.wav")
    assert rate == 8000 and seconds > 0.5 and loudest > -30
    assert staff.get("/assistant/230").status_code in (302, 403)  # the admin's page is not theirs
    assert staff.get("/assistant/201/greeting.wav").status_code == 404
    admin = admin_client.application.test_client()
    assert sign_in(admin).status_code == 302
    assert "/assistant/230" in text(admin.get("/pbx/extensions/230"))  # linked from the extension form
    page = text(admin.get("/assistant/230"))
    assert "Sam is out." in page and 'value="0612345678"' in page
    assert post(admin, "/assistant/230", {"mobile": "0612345678", "kind_0": "voicemail"}).status_code == 302
    assert "Sam is out." not in text(admin.get("/assistant/230"))
