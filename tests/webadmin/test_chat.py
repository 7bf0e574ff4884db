"""The web text chat through the Flask test client on the runtime's real PBX: a queue without chat is 404;
with no agent logged in the visitor is told so and offered the call-back form; a staff agent is offered the
chat, accepts and replies, and finds the transcript after the close; a script in a visitor's name and
message is shown as text on both pages; texts are cut at 1000 characters; another address's visitor cannot
read the chat without its token; the agent's forms need the CSRF token; the transcript asked for without an
address is refused; a chat flood from one address is refused."""
from __future__ import annotations

import re

import pytest

from tests.webadmin.helpers import post, sign_in
from tests.webadmin.test_callcentre import PEOPLE, _password
from tests.webadmin.test_pbx_pages import _LivePbx
from webadmin.blueprints import public

XSS = "<script>alert(1)</script>"


@pytest.fixture
def chat_site(admin_client, runtime, app, monkeypatch):
    def mutate(doc):
        doc["users"] += [dict(p) for p in PEOPLE]
        _password(doc, "bob", "bob-password-1")
        doc.setdefault("pbx", {})["lab_sip_port"] = 0
        doc["pbx"]["queues"] = [
            {"number": "600", "name": "sales", "title": "Sales", "members": [{"agent": "202"}], "chat": True,
             "web_callback": True, "web_callback_numbers": ["0ZXXXXXXXX"]},
            {"number": "601", "name": "phone", "members": [{"agent": "201"}]}]
    runtime.engine.update("admin", "chat queue", mutate)
    monkeypatch.setattr(public, "chat_limits", public.RateLimit(3, 600, 100))
    monkeypatch.setattr(public, "MIN_AGE", 0.0)
    return app


def start(client, text, name="Ann", email="", address="192.0.2.7", **form):
    page = client.get("/public/chat/sales")
    token = re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/public/chat/sales", data={"token": token, "name": name, "email": email, "text": text,
                                                   **form}, environ_base={"REMOTE_ADDR": address})


def test_chat_through_the_pages(chat_site, runtime):
    visitor, agent = chat_site.test_client(), chat_site.test_client()
    assert visitor.get("/public/chat/phone").status_code == 404
    with _LivePbx(runtime) as live:
        nobody = start(visitor, "hello")
        html = nobody.get_data(as_text=True)
        assert nobody.status_code == 503 and "No agent is available" in html
        assert 'href="/public/callback/sales"' in html  # the call-back offered instead
        assert live.svc.acd_agent_action("202", "login")["status"] == "available"
        no_address = start(visitor, "hello", mail="on", address="192.0.2.10")  # the transcript asked, no address
        assert no_address.status_code == 400 and "This is not an e-mail address" in no_address.get_data(as_text=True)
        assert 'id="f-mail" checked' in no_address.get_data(as_text=True)
        started = start(visitor, XSS + "x" * 2000, name=XSS, address="192.0.2.8")
        assert started.status_code == 303
        url = started.headers["Location"]
        page = visitor.get(url)
        assert page.headers["Referrer-Policy"] == "no-referrer"
        html = page.get_data(as_text=True)
        assert "Waiting for an agent" in html and XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert visitor.get("/public/chats/" + "A" * 32).status_code == 404  # a guessed token
        assert agent.get("/agent/").status_code == 302
        assert sign_in(agent, "bob", "bob-password-1").status_code == 302
        desk = agent.get("/agent/").get_data(as_text=True)
        assert "Accept the chat" in desk and XSS not in desk and "&lt;script&gt;" in desk
        chat_id = int(re.search(r'name="chat" value="(\d+)"', desk).group(1))
        assert agent.post("/agent/chats", data={"chat": chat_id, "action": "accept"}).status_code == 400  # no CSRF
        assert post(agent, "/agent/chats", {"chat": chat_id, "action": "accept"}, form_path="/agent/").status_code \
            == 302
        assert post(agent, "/agent/chats", {"chat": chat_id, "action": "reply", "text": "Hi <b>Ann</b>"},
                    form_path="/agent/").status_code == 302
        new = visitor.get(url + "/messages?after=1").get_json()
        assert new["state"] == "open" and [m["text"] for m in new["messages"]] == ["Hi <b>Ann</b>"]
        first = visitor.get(url + "/messages").get_json()["messages"][0]["text"]
        assert len(first) == 1000  # cut at the limit
        assert visitor.post(url, data={"action": "send", "text": "thanks"}).status_code == 303
        assert "thanks" in agent.get(f"/agent/chats/{chat_id}/messages?after=2").get_data(as_text=True)
        assert "Hi &lt;b&gt;Ann&lt;/b&gt;" in visitor.get(url).get_data(as_text=True)
        empty = visitor.post(url, data={"action": "send", "text": "  "})
        assert empty.status_code == 400 and "Please write a message" in empty.get_data(as_text=True)
        assert visitor.post(url, data={"action": "close"}).status_code == 303
        assert "This chat is closed" in visitor.get(url).get_data(as_text=True)
        assert agent.get(f"/agent/chats/{chat_id}/messages").get_json()["state"] == "closed"
        desk = agent.get("/agent/").get_data(as_text=True)  # the transcript kept, escaped
        assert "Your last chats" in desk and "You:</b> Hi &lt;b&gt;Ann&lt;/b&gt;" in desk and XSS not in desk
        flood = [start(visitor, "spam", address="192.0.2.9").status_code for _ in range(4)]
        assert flood == [303, 303, 303, 429]  # the fourth chat from one address is refused
