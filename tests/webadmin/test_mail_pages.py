"""Mail pages: domains, mailboxes, aliases and lists, smarthost, queue (real Runtime and apply engine)."""
import re

from services.mail.directory import Directory
from tests.webadmin.helpers import post


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', page)
    return match.group(1) if match else None


def test_every_mail_page_renders_and_is_in_the_navigation(admin_client):
    for path in ("/mail/", "/mail/mailboxes", "/mail/aliases", "/mail/smarthost", "/mail/queue"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert 'href="/mail/queue"' in response.get_data(as_text=True)


def test_anonymous_is_sent_to_sign_in(client):
    assert client.get("/mail/queue").status_code == 302


def test_domains_and_relay_rules(admin_client, runtime):
    response = post(admin_client, "/mail/", {"extra_domains": "Acme-Two.example\nacme.test",
                                             "max_message_size_mb": "10", "relay_networks": "10.8.0.0/24"})
    assert response.status_code == 302
    section = runtime.store.current().config.mail
    assert section.extra_domains == ["acme-two.example", "acme.test"]
    assert section.max_message_size == 10 * 1024 * 1024 and not section.relay_from_lan
    assert [str(n) for n in section.relay_networks] == ["10.8.0.0/24"]
    before = runtime.store.current_id()
    response = post(admin_client, "/mail/", {"extra_domains": "not a domain", "max_message_size_mb": "10",
                                             "relay_networks": "10.8.0.0/33"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "not a valid domain name" in field_error(page, "extra_domains")
    assert field_error(page, "relay_networks")
    response = post(admin_client, "/mail/", {"extra_domains": "", "max_message_size_mb": "9999"})
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "max_message_size_mb")
    assert runtime.store.current_id() == before


def test_trusted_devices_may_relay_and_the_whole_lan_is_off_by_default(admin_client, runtime):
    page = admin_client.get("/mail/").get_data(as_text=True)
    assert 'name="relay_devices"' in page and not runtime.store.current().config.mail.relay_from_lan
    response = post(admin_client, "/mail/", {"extra_domains": "", "max_message_size_mb": "25",
                                             "relay_devices": "192.168.1.20\n192.168.1.21"})
    assert response.status_code == 302
    section = runtime.store.current().config.mail
    assert [str(a) for a in section.relay_devices] == ["192.168.1.20", "192.168.1.21"]
    directory = Directory(runtime.store.current().config)
    assert directory.may_relay("192.168.1.20") and not directory.may_relay("192.168.1.22")
    response = post(admin_client, "/mail/", {"extra_domains": "", "max_message_size_mb": "25",
                                             "relay_devices": "printer"})
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "relay_devices")


def test_aliases_and_distribution_lists(admin_client, runtime):
    response = post(admin_client, "/mail/aliases", {"name": "Sales", "targets": "admin, partner@other.example",
                                                    "description": "sales team"}, form_path="/mail/aliases")
    assert response.status_code == 302
    [alias] = runtime.store.current().config.mail.aliases
    assert alias.name == "sales" and alias.targets == ["admin", "partner@other.example"]
    page = admin_client.get("/mail/aliases").get_data(as_text=True)
    assert 'id="alias-sales"' in page and "sales@acme.example" in page and "list" in page
    # edit: keep the name, change the members
    response = post(admin_client, "/mail/aliases", {"original": "sales", "name": "sales", "targets": "admin"},
                    form_path="/mail/aliases?edit=sales")
    assert response.status_code == 302
    assert runtime.store.current().config.mail.aliases[0].targets == ["admin"]
    # errors: unknown login, bad name, a user's login
    for data, field, text in (({"name": "info", "targets": "ghost"}, "targets", "no user 'ghost'"),
                              ({"name": "bad name!", "targets": "admin"}, "name", ""),
                              ({"name": "admin", "targets": "admin"}, "name", "same name as a user")):
        response = post(admin_client, "/mail/aliases", data, form_path="/mail/aliases")
        assert response.status_code == 400, data
        error = field_error(response.get_data(as_text=True), field)
        assert error is not None and text in error.replace("&#39;", "'"), (data, error)
    response = post(admin_client, "/mail/aliases/sales/delete", {}, form_path="/mail/aliases")
    assert response.status_code == 302 and runtime.store.current().config.mail.aliases == []


def test_smarthost_password_is_kept_and_never_shown(admin_client, runtime):
    data = {"host": "smtp.provider.example", "port": "587", "security": "starttls", "username": "box",
            "password": "provider-secret", "verify_certificate": "on", "retry_initial_seconds": "300",
            "retry_max_seconds": "3600", "queue_lifetime_hours": "48"}
    assert post(admin_client, "/mail/smarthost", data).status_code == 302
    host = runtime.store.current().config.mail.smarthost
    assert (host.host, host.port, host.username, host.password) == ("smtp.provider.example", 587, "box",
                                                                    "provider-secret")
    assert runtime.store.current().config.mail.queue_lifetime_seconds == 48 * 3600
    assert "provider-secret" not in admin_client.get("/mail/smarthost").get_data(as_text=True)
    assert post(admin_client, "/mail/smarthost", {**data, "password": "", "port": "465",
                                                  "security": "tls"}).status_code == 302
    host = runtime.store.current().config.mail.smarthost
    assert host.password == "provider-secret" and host.port == 465 and host.security == "tls"
    response = post(admin_client, "/mail/smarthost", {**data, "port": "x"})
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "port")
    response = post(admin_client, "/mail/smarthost", {**data, "port": "70000"})
    assert response.status_code == 400 and field_error(response.get_data(as_text=True), "port")


def test_mailboxes_show_usage_and_quota(admin_client, runtime):
    maildir = runtime.services["mail"].paths.home("admin") / "Maildir"
    for sub, name in (("new", "1.M1.box,S=2097152"), (".Sent/cur", "2.M2.box,S=1048576:2,S")):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        (maildir / sub / name).write_bytes(b"Subject: hi\n\nhello\n")
    page = admin_client.get("/mail/mailboxes").get_data(as_text=True)
    row = page[page.index('id="mailbox-admin"'):]
    assert "admin@acme.example" in row and "<td>2</td>" in row and "<td>3.0 MB</td>" in row
    assert "<td>2048 MB</td>" in row


def test_mailbox_quotas_are_set_for_every_box_and_per_user_with_errors_by_field(admin_client, runtime):
    page = admin_client.get("/mail/mailboxes").get_data(as_text=True)
    assert 'name="quota_mb" type="text" value="2048"' in page and 'name="quota_admin"' in page
    response = post(admin_client, "/mail/mailboxes", {"quota_mb": "500", "quota_admin": "50"})
    assert response.status_code == 302
    section = runtime.store.current().config.mail
    assert section.quota_mb == 500 and section.user_quota_mb == {"admin": 50}
    row = admin_client.get("/mail/mailboxes").get_data(as_text=True)
    row = row[row.index('id="mailbox-admin"'):]
    assert "<td>50 MB</td>" in row and 'value="50"' in row
    before = runtime.store.current_id()
    for data, field in (({"quota_mb": "lots", "quota_admin": ""}, "quota_mb"),
                        ({"quota_mb": "500", "quota_admin": "-3"}, "quota_admin"),
                        ({"quota_mb": "500", "quota_admin": "99999999"}, "quota_admin"),
                        ({"quota_mb": "99999999", "quota_admin": ""}, "quota_mb")):
        response = post(admin_client, "/mail/mailboxes", data)
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and field_error(page, field), data
        assert runtime.store.current_id() == before
    assert post(admin_client, "/mail/mailboxes", {"quota_mb": "0", "quota_admin": ""}).status_code == 302
    section = runtime.store.current().config.mail
    assert section.quota_mb == 0 and section.user_quota_mb == {}


def test_queue_lists_retries_and_deletes(admin_client, runtime):
    queue = runtime.services["mail"].queue
    entry = queue.enqueue("admin@acme.example", ["friend@other.example"], b"Subject: out\r\n\r\nx\r\n")
    entry.next_attempt = 9e9
    entry.attempts = 3
    entry.last_error = "smarthost unreachable: connection refused"
    queue.save(entry)
    page = admin_client.get("/mail/queue").get_data(as_text=True)
    assert f'id="queued-{entry.id}"' in page and "connection refused" in page
    response = post(admin_client, f"/mail/queue/{entry.id}/retry", {}, form_path="/mail/queue")
    assert response.status_code == 302 and queue.get(entry.id).next_attempt == 0
    response = post(admin_client, f"/mail/queue/{entry.id}/delete", {}, form_path="/mail/queue")
    assert response.status_code == 302 and queue.entries() == []
    page = admin_client.get("/mail/queue").get_data(as_text=True)
    assert "deleted" in page and "queue is empty" in page
    response = post(admin_client, "/mail/queue/..%2Fetc/delete", {}, form_path="/mail/queue")
    assert response.status_code in (302, 404)
