"""The port helper for listeners named in a document before they are bound."""
import socket

from tests.ports import _range, listen_port


def test_ports_are_distinct_below_the_ephemeral_range_and_bindable_on_both_loopbacks():
    low, high = _range()
    ports = [listen_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(low <= p < high for p in ports)
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as sock:
            sock.bind((host, ports[-1]))
            sock.listen()


def test_a_port_held_by_a_listener_is_not_handed_out(monkeypatch):
    import tests.ports as ports
    port, other = listen_port(), listen_port()
    ports._GIVEN.difference_update({port, other})
    picks = iter([port, other])
    monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(picks))
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        assert ports.listen_port() == other
