"""squid.conf rendering, validated by the real `squid -k parse` through the apply engine (lab mode)."""
from __future__ import annotations

import shutil

import pytest

from appliance import schema
from appliance.apply import ApplyEngine, ApplyError, ConfigError
from appliance.store import ConfigStore
from appliance.users import hash_password
from services.proxy.service import ProxyService
from services.proxy.squidconf import squid_domains

needs_squid = pytest.mark.skipif(shutil.which("squid") is None, reason="needs squid")

FULL = {
    "transparent": True,
    "blocked_domains": ["Casino.example", "*.ads.example", "www.casino.example"],
    "blocked_patterns": [r"\.exe$", "/banner/"],
    "allowed_hours": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:30", "end": "19:00"}],
    "groups": [
        {"name": "interns", "sources": ["192.168.1.128/25"], "blocked_domains": ["video.example"],
         "blocked_patterns": ["game"], "allowed_hours": [
             {"days": ["mon", "tue"], "start": "09:00", "end": "12:00"},
             {"days": ["sat"], "start": "00:00", "end": "24:00"}]},
        {"name": "kiosk", "sources": ["192.168.1.5/32"], "web_access": False},
    ],
    "hosts": [{"name": "intranet.office.lan", "address": "192.168.1.20"}],
    "dns_servers": ["192.0.2.53"],
    "ftp": False,
}


@pytest.fixture
def engine(ctx):
    return ApplyEngine(ctx, ConfigStore(ctx.db_path), {"proxy": ProxyService(ctx)})


@needs_squid
def test_every_feature_passes_squid_parse(engine, ctx):
    engine.apply({"proxy": FULL}, "test", "full")
    etc = ctx.etc_dir("proxy")
    conf = (etc / "squid.conf").read_text()
    assert "http_port 127.0.0.1:13128 name=ob_explicit\n" in conf  # lab ports
    assert "http_port 127.0.0.1:13129 intercept" in conf
    assert "acl ob_all_sites dstdomain .ads.example .casino.example" in conf  # subdomain entry folded
    assert "acl ob_g1_hours time MT 09:00-12:00" in conf and "acl ob_g1_hours time A 00:00-24:00" in conf
    assert "http_access deny ob_g1 !ob_g1_hours" in conf
    assert "http_access deny ob_g2 ob_g2_all" in conf
    assert "acl ob_default_hours time MTWHF 07:30-19:00" in conf
    assert "http_access deny ob_clients !ob_default_hours" in conf
    assert conf.rstrip().endswith("http_access allow ob_clients\nhttp_access deny all")
    assert "cache_effective_user proxy" in conf and "dns_nameservers 192.0.2.53" in conf
    page = (etc / "errors" / "ERR_OB_OB_G1_HOURS").read_text()
    assert "Blocked by your company's Internet policy" in page
    assert "Mon, Tue 09:00-12:00; Sat 00:00-24:00 (group interns)" in page
    assert (etc / "hosts").read_text() == "192.168.1.20 intranet.office.lan\n"


@needs_squid
def test_box_mode_listens_on_the_real_ports(ctx):
    svc = ProxyService(ctx, netns="anything")
    conf = svc.render(schema.parse({"proxy": {"transparent": True}}))["squid.conf"]
    assert "http_port 3128 name=ob_explicit\n" in conf and "http_port 3129 intercept" in conf


@needs_squid
def test_what_squid_refuses_is_never_applied(engine, ctx):
    engine.apply({"proxy": {"blocked_domains": ["casino.example"]}}, "test", "good")
    before = (ctx.etc_root / "current").readlink()
    with pytest.raises(ApplyError, match="Squid refused.*Compile failed|Squid refused"):
        engine.update("test", "bad", lambda d: d["proxy"].update(blocked_patterns=["(?i)casino"]))
    assert (ctx.etc_root / "current").readlink() == before
    assert "casino" not in "".join((ctx.etc_dir("proxy") / "squid.conf").read_text().split("dstdomain")[0])


@pytest.mark.parametrize("proxy, field", [
    ({"blocked_domains": ["not a domain"]}, "blocked_domains"),
    ({"blocked_patterns": ["([a"]}, "blocked_patterns"),
    ({"blocked_patterns": ["two words"]}, "blocked_patterns"),
    ({"blocked_patterns": ['"/etc/passwd"']}, "blocked_patterns"),
    ({"blocked_patterns": ["page#top"]}, "blocked_patterns"),
    ({"allowed_hours": [{"start": "18:00", "end": "08:00"}]}, "allowed_hours"),
    ({"allowed_hours": [{"start": "25:00"}]}, "allowed_hours"),
    ({"groups": [{"name": "x", "sources": []}]}, "groups"),
    ({"groups": [{"name": "x", "sources": ["10.0.0.0/8"]}, {"name": "x", "sources": ["10.0.0.0/8"]}]}, "proxy"),
    ({"port": 3128, "intercept_port": 3128}, "proxy"),
])
def test_bad_values_are_field_errors(engine, proxy, field):
    with pytest.raises(ConfigError) as err:
        engine.apply({"proxy": proxy}, "test", "bad")
    assert any(key.startswith(f"proxy.{field}") or key == f"proxy.{field}" or key == "proxy"
               for key in err.value.errors), err.value.errors


def test_domains_are_normalised_for_squid():
    assert squid_domains(["example.com", "www.example.com", "other.org"]) == [".example.com", ".other.org"]


def test_the_admin_port_is_not_for_the_proxy(engine):
    with pytest.raises(ConfigError, match="web admin listens there"):
        engine.validate({"system": {"admin_port": 3128}})
    engine.validate({"system": {"admin_port": 3128}, "proxy": {"enabled": False}})


@needs_squid
def test_sign_in_and_groups_of_logins_pass_squid_parse(engine, ctx):
    users = [{"login": login, "full_name": login.title(), "password_hash": hash_password("pw-" + login * 3)}
             for login in ("ann", "bob")]
    groups = [{"name": "sales", "users": ["Ann"], "sources": ["192.168.1.64/26"], "blocked_domains": ["video.example"]},
              {"name": "night", "users": ["bob"], "web_access": False}]
    engine.apply({"users": users, "proxy": {"sign_in": True, "transparent": True, "groups": groups}}, "test", "sign-in")
    conf = (ctx.etc_dir("proxy") / "squid.conf").read_text()
    assert f"auth_param basic program /usr/bin/python3 {ctx.state_dir('proxy')}/squid/pages/ob-basic-auth.py" in conf
    assert "http_access deny ob_explicit !ob_signed_in" in conf
    assert conf.index("http_access deny !ob_clients") < conf.index("http_access deny ob_explicit !ob_signed_in")
    assert "acl ob_g1_login proxy_auth ann" in conf and "acl ob_g1 any-of ob_g1_src ob_g1_user" in conf
    assert "acl ob_g2_user all-of ob_explicit ob_g2_login" in conf and "acl ob_g2 any-of ob_g2_user" in conf


def test_groups_of_logins_need_sign_in_and_known_logins(engine):
    with pytest.raises(ConfigError) as err:
        engine.apply({"proxy": {"groups": [{"name": "sales", "users": ["ann"]}]}}, "test", "no sign-in")
    assert "need sign-in" in str(err.value.errors)
    with pytest.raises(ConfigError) as err:
        engine.apply({"proxy": {"sign_in": True, "groups": [{"name": "sales", "users": ["nobody"]}]}}, "test", "x")
    assert "no user with the login nobody" in str(err.value.errors)
