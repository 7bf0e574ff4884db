"""The mail service's cross-checks name the exact field (FieldError paths), like pydantic's own errors,
so the web admin and the CLI show each next to its field."""
import pytest

from appliance.apply import ApplyEngine, ConfigError
from appliance.store import ConfigStore
from services.mail import MailService
from tests.services.mail.harness import document


def problems(ctx, **mail) -> dict[str, str]:
    engine = ApplyEngine(ctx, ConfigStore(ctx.db_path), {"mail": MailService(ctx)})
    with pytest.raises(ConfigError) as caught:
        engine.validate(document(**mail))
    return {path: message for path, message in caught.value.problems}


def test_cross_checks_name_the_field(ctx):
    found = problems(ctx, extra_domains=["other.example", "example.com"],
                     aliases=[{"name": "sales", "targets": ["alice", "ghost"]}, {"name": "bob", "targets": ["alice"]},
                              {"name": "sales", "targets": ["carol"]}],
                     user_quota_mb={"alice": 10, "gone": 5}, lab_imaps_port=0)
    assert set(found) == {"mail.extra_domains.1", "mail.aliases.0.targets.1", "mail.aliases.1.name",
                          "mail.aliases.2.name", "mail.user_quota_mb.gone", "mail.lab_imaps_port"}
    assert "no user 'ghost'" in found["mail.aliases.0.targets.1"]
    assert "same name as a user" in found["mail.aliases.1.name"]
    assert "only once" in found["mail.aliases.2.name"]


def test_quota_errors_are_per_user(ctx):
    found = problems(ctx, quota_mb=-1, user_quota_mb={"alice": 20_000_000, "Not A Login": 1})
    assert {"mail.quota_mb", "mail.user_quota_mb.alice"} <= set(found)
    assert any(path.startswith("mail.user_quota_mb.Not A Login") for path in found)
