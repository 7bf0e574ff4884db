"""The embedded factory configuration, for a box and for lab mode (`make run`)."""
from appliance import schema
from appliance.defaults import default_document
from services.dns import host_resolvers


def test_box_defaults_forward_to_the_wan_and_serve_dhcp():
    box = schema.parse(default_document(lab=False))
    assert box.dns.upstreams == [] and box.network.wan.mode == "dhcp" and box.dhcp.enabled


def test_lab_defaults_leave_the_lan_alone_and_resolve_through_the_host(tmp_path):
    lab = schema.parse(default_document(lab=True))
    assert not lab.dhcp.enabled
    assert lab.dns.upstreams == host_resolvers()
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.net\n"
                    "nameserver 192.0.2.54\nnameserver 192.0.2.55\nnameserver 192.0.2.56\nnameserver\n")
    assert host_resolvers(str(conf)) == ["192.0.2.53", "192.0.2.54", "192.0.2.55"]
    assert host_resolvers(str(tmp_path / "missing")) == []
