"""A form that fails validation: a summary at the top lists every problem linked to its field, the fields
point at their message (aria-describedby), and what was typed is kept; references are offered as datalists."""
import re

from tests.webadmin.helpers import post
from tests.webadmin.test_users import ANNA


def summary_links(page: str) -> list[str]:
    match = re.search(r'<div class="banner banner-error error-summary" id="error-summary"[^>]*>(.*?)</div>', page, re.S)
    assert match, "no error summary"
    return re.findall(r'<a href="#f-([a-z_0-9]+)">', match.group(1))


def test_wrong_values_on_several_pages_show_the_summary_and_keep_the_input(admin_client, runtime):
    before = runtime.store.current_id()
    user = post(admin_client, "/users/new", {**ANNA, "extension": "2x", "email": "not-an-address"})
    page = user.get_data(as_text=True)
    assert user.status_code == 400 and set(summary_links(page)) == {"extension", "email"}
    assert 'aria-describedby="e-extension h-extension"' in page
    assert 'value="Anna Example"' in page and 'value="2x"' in page and 'value="not-an-address"' in page

    group = post(admin_client, "/pbx/groups/new", {"number": "7", "name": "Sales desk", "members": "201",
                                                   "timeout": "lots"})
    page = group.get_data(as_text=True)
    assert group.status_code == 400 and {"number", "timeout"} <= set(summary_links(page))
    assert 'value="Sales desk"' in page and 'value="lots"' in page

    dhcp = post(admin_client, "/lan/dhcp/pools", {"start": "192.168.1.300", "end": "192.168.1.199"},
                form_path="/lan/dhcp")
    page = dhcp.get_data(as_text=True)
    assert dhcp.status_code == 400 and "start" in summary_links(page)
    assert 'value="192.168.1.300"' in page and 'value="192.168.1.199"' in page
    assert runtime.store.current_id() == before


def test_a_page_without_problems_has_no_summary(admin_client):
    assert 'id="error-summary"' not in admin_client.get("/users/new").get_data(as_text=True)


def test_destinations_are_offered_from_the_configuration(admin_client):
    assert post(admin_client, "/users/new", ANNA).status_code == 302
    group = {"number": "600", "name": "Sales", "members": "201"}
    assert post(admin_client, "/pbx/groups/new", group).status_code == 302
    page = admin_client.get("/pbx/dids/new").get_data(as_text=True)
    assert 'list="dl-destinations"' in page
    datalist = re.search(r'<datalist id="dl-destinations">(.*?)</datalist>', page, re.S).group(1)
    assert '<option value="201">Anna Example</option>' in datalist
    assert '<option value="600">ring group Sales</option>' in datalist
    page = admin_client.get("/pbx/extensions/201").get_data(as_text=True)
    assert page.count('list="dl-destinations"') == 3 and '<datalist id="dl-destinations">' in page
