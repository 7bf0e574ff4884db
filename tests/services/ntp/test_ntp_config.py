"""The ntp section and the chrony.conf it renders, checked by the real chronyd (-p)."""
from __future__ import annotations

import asyncio
import os
import sys

import pytest
from pydantic import ValidationError

from appliance import schema
from appliance.context import Context
from appliance.service import ApplyError
from services.ntp import SERVICE
from tests.netns import Lab, have_netns


def config(**ntp):
    return schema.parse({"network": {"lan": {"interface": "lan0", "address": "192.0.2.1/24"},
                                      "voice": {"enabled": True, "vlan_id": 42, "address": "10.78.0.1/24"}},
                         "ntp": ntp})


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_box_serves_the_lan_networks_and_follows_the_upstreams(tmp_path):
    svc = SERVICE(Context(tmp_path / "var", lab=False))
    lines = directives(svc.render(config(servers=["198.51.100.1", "Time.Example.NET."]))["chrony.conf"])
    assert "pool 2.debian.pool.ntp.org iburst maxsources 4" in lines  # the default
    assert "server 198.51.100.1 iburst" in lines and "server time.example.net iburst" in lines
    assert "allow 192.0.2.0/24" in lines and "allow 10.78.0.0/24" in lines
    assert [x for x in lines if x.startswith("allow")] == ["allow 192.0.2.0/24", "allow 10.78.0.0/24"]
    assert "port 123" in lines and "local stratum 10" in lines


def test_only_the_box_itself_sets_the_clock(tmp_path):
    from services.ntp.chronyconf import Paths, render

    box = render(config(), Paths(tmp_path), lab_only=False, sets_clock=True)
    assert "makestep 1.0 3" in box and "rtcsync" in box
    assert "makestep" not in render(config(), Paths(tmp_path), lab_only=False, sets_clock=False)


@pytest.mark.skipif(not have_netns(), reason="needs root and iproute2 for network namespaces")
def test_a_box_in_a_test_namespace_never_sets_the_hosts_clock(tmp_path):
    """`officebox run` in a namespace (tests/appliance/test_box_mode.py) is not lab mode, yet the
    clock it would set is the host's."""
    probe = ("import sys; from appliance import schema; from appliance.context import Context; "
             "from services.ntp import SERVICE; svc = SERVICE(Context(sys.argv[1], lab=False)); "
             "print(svc.sets_clock, svc.processes(schema.parse({}))[0].argv[-1])")
    with Lab() as lab:
        out = lab.host("box").run(sys.executable, "-c", probe, str(tmp_path / "var"), check=False,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.split() == ["False", "--no-clock"], out.stderr


def test_lab_mode_sends_nothing_anywhere(ctx):
    lines = directives(SERVICE(ctx).render(config(servers=["198.51.100.1"]))["chrony.conf"])
    assert not [x for x in lines if x.split()[0] in ("pool", "server", "peer", "makestep", "rtcsync")]
    assert "bindaddress 127.0.0.1" in lines and "port 10123" in lines and "allow 127.0.0.1" in lines
    spec = SERVICE(ctx).processes(config())[0]
    assert "--no-clock" in spec.argv  # never sets this machine's clock


@pytest.mark.parametrize("bad", ["pool.ntp.org\nallow all", "a b", "-x", "x" * 300, "host;rm", "..."])
def test_bad_upstream_names_are_refused(bad):
    with pytest.raises(ValidationError, match="host name or IPv4"):
        config(servers=[bad])


def test_a_changed_configuration_changes_the_argv(ctx):
    svc = SERVICE(ctx)
    assert svc.processes(config(lab_port=10123)) != svc.processes(config(lab_port=10124))
    assert svc.processes(config()) == svc.processes(config())


def test_chronyd_checks_the_staged_file(tmp_path):
    svc = SERVICE(Context(tmp_path / "var", lab=False))
    staged = tmp_path / "gen"
    staged.mkdir()
    (staged / "chrony.conf").write_text(svc.render(config())["chrony.conf"])
    asyncio.run(svc.check(config(), staged))
    (staged / "chrony.conf").write_text("allow 192.0.2.0/24\nserve-everyone yes\n")
    with pytest.raises(ApplyError, match="Invalid directive at line 2"):
        asyncio.run(svc.check(config(), staged))
