"""Call queue configuration: defaults, field errors (unknown agent, a number clashing with an extension or a
ring group, an overflow to itself), and the queue's number in the dial plan."""
import pytest
from pydantic import ValidationError

from appliance import schema
from services.pbx import SERVICE
from services.pbx.config import CallQueue

USERS = [{"login": "alice", "full_name": "Alice", "extension": "201"},
         {"login": "bob", "full_name": "Bob", "extension": "202"}]


def _errors(**queue) -> dict[str, str]:
    q = {"number": "600", "name": "sales", "members": [{"agent": "201"}]} | queue
    cfg = schema.parse({"users": USERS, "pbx": {"queues": [q], "groups": [{"number": "700", "members": ["201"]}]}})
    return {e.path: e.message for e in SERVICE.validate(SERVICE.__new__(SERVICE), cfg)}


def test_defaults_and_the_dial_plan():
    q = CallQueue(number="600", name="sales")
    assert (q.strategy, q.max_wait, q.wrap_up, q.agent_timeout, q.callback_every) == ("longest_idle", 300, 10, 15, 0)
    cfg = schema.parse({"users": USERS, "pbx": {"queues": [{"number": "600", "name": "sales"}]}})
    assert cfg.pbx.application_for("600") == "queue:sales"
    assert cfg.pbx.application_for("*51") == "app:agent-login"
    assert schema.parse({}).pbx.queues == []  # an old document stays valid


def test_field_errors_name_the_problem():
    assert _errors() == {}
    assert "unknown agent 299" in _errors(members=[{"agent": "201"}, {"agent": "299"}])["pbx.queues.0.members"]
    assert "extension" in _errors(number="202")["pbx.queues.0.number"]
    assert "ring group" in _errors(number="700")["pbx.queues.0.number"]
    assert "itself" in _errors(overflow="queue:sales")["pbx.queues.0.overflow"]
    assert "twice" in _errors(members=[{"agent": "201"}, {"agent": "201"}])["pbx.queues.0.members"]


def test_bad_values_are_refused():
    with pytest.raises(ValidationError):
        CallQueue(number="600", name="sales", strategy="random")
    with pytest.raises(ValidationError):
        CallQueue(number="600", name="sales", members=[{"agent": "201", "skill": 11}])
    with pytest.raises(ValidationError, match="not a phone number"):
        CallQueue(number="600", name="sales", vip_callers=["06 12"])
    with pytest.raises(ValidationError, match="unique"):
        schema.parse({"pbx": {"queues": [{"number": "600", "name": "a"}, {"number": "600", "name": "b"}]}})
    with pytest.raises(ValidationError, match="different number"):
        schema.parse({"pbx": {"feature_codes": {"agent_login": "*97"}}})
