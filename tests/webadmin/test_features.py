"""Feature codes page (show, edit, clashes named at their field) and the staff phone guide (every code
with what it does, park slots, paging groups; translated; linked from the account page; print CSS)."""
from __future__ import annotations

from services.pbx.config import FeatureCodes
from tests.webadmin.helpers import post, sign_in


def text(response) -> str:
    return response.get_data(as_text=True)


def codes(**changed) -> dict:
    return {**FeatureCodes().model_dump(), **changed}


def test_codes_are_shown_and_saved(admin_client, runtime):
    page = text(admin_client.get("/features/"))
    assert 'value="*8"' in page and 'value="*70"' in page and "Pick up an extension" in page
    response = post(admin_client, "/features/", codes(pickup="*88", park="*71"))
    assert response.status_code == 302
    saved = runtime.store.current().config.pbx.feature_codes
    assert (saved.pickup, saved.park, saved.voicemail) == ("*88", "*71", "*97")


def test_clashes_are_refused_at_their_field(admin_client, runtime):
    response = post(admin_client, "/features/", codes(park="*97", intercom="**5", pickup="8x"))
    page = text(response)
    assert response.status_code == 400
    assert 'id="e-pickup"' in page and "1 to 32 of 0-9" in page
    response = post(admin_client, "/features/", codes(park="*97", intercom="**5"))
    page = text(response)
    assert response.status_code == 400
    assert 'id="e-park"' in page and "*97 is already the code of Voicemail" in page
    assert 'id="e-intercom"' in page and "starts with the code of Pick up an extension" in page
    assert 'id="e-voicemail"' not in page
    assert runtime.store.current().config.pbx.feature_codes == FeatureCodes()  # nothing saved


def test_phone_guide_for_staff_translated_and_printable(admin_client, runtime):
    post(admin_client, "/users/new", {"login": "bob", "full_name": "Bob Durand", "password": "bobs-password-1",
                                      "password2": "bobs-password-1", "role": "staff", "extension": "202",
                                      "enabled": "on"})
    doc = runtime.engine.current_config().model_dump(mode="json")
    doc["pbx"]["paging_groups"] = [{"number": "650", "name": "Shop floor", "members": ["202"]}]
    runtime.engine.apply(doc, "admin", "a paging group")
    admin_client.post("/logout")
    staff = admin_client.application.test_client()
    assert sign_in(staff, "bob", "bobs-password-1").status_code == 302
    account = text(staff.get("/account/"))
    assert 'href="/features/guide"' in account
    assert staff.get("/features/").status_code == 403  # the editing page is for admins
    guide = text(staff.get("/features/guide"))
    for number in FeatureCodes().model_dump().values():
        assert f"{number}" in guide
    assert "701–709" in guide and "Shop floor" in guide and "Your extension: 202" in guide
    assert 'href="/static/phoneguide.css"' in guide
    css = staff.get("/static/phoneguide.css")
    assert b"@media print" in css.data and b"size: A4" in css.data
    assert "Answer a call ringing on a colleague" in guide
    post(staff, "/account/language", {"language": "fr"}, form_path="/account/")
    guide_fr = text(staff.get("/features/guide"))
    assert 'lang="fr"' in guide_fr and "Guide du téléphone" in guide_fr and "Décrocher" in guide_fr


def test_park_settings_and_paging_groups_are_edited(admin_client, runtime):
    response = post(admin_client, "/features/park", {"first_slot": "800", "slots": "5", "timeout": "60",
                                                    "ring_back": "15", "fallback": ""}, form_path="/features/")
    assert response.status_code == 302
    park = runtime.store.current().config.pbx.park
    assert (park.numbers(), park.timeout, park.ring_back, park.fallback) == (
        ["800", "801", "802", "803", "804"], 60, 15, None)
    response = post(admin_client, "/features/park", {"first_slot": "8", "slots": "500", "timeout": "60",
                                                    "ring_back": "15", "fallback": ""}, form_path="/features/")
    page = text(response)
    assert response.status_code == 400 and 'id="e-park_first_slot"' in page and 'id="e-park_slots"' in page
    response = post(admin_client, "/pbx/paging_groups/new", {"number": "650", "name": "Shop floor", "members": "",
                                                            "max_seconds": "60"})
    assert response.status_code == 302
    assert [(g.number, g.name) for g in runtime.store.current().config.pbx.paging_groups] == [("650", "Shop floor")]
    assert "650 (Shop floor)" in text(admin_client.get("/features/"))
