"""The two Redis roles in the settings: each falls back to redis_url, credentials go into the URL."""

from __future__ import annotations

import pytest

from ragfleet.common.config import ServiceSettings, with_credentials


def test_both_roles_fall_back_to_redis_url() -> None:
    settings = ServiceSettings(redis_url="redis://one:6379/0")
    assert settings.state_redis == settings.cache_redis == "redis://one:6379/0"


def test_each_role_has_its_own_url_and_password() -> None:
    settings = ServiceSettings(
        redis_url="redis://unused:6379/0",
        state_redis_url="redis://state:6390/0",
        cache_redis_url="redis://cache:6391/2",
        state_redis_password="s3cret/with:odd@chars",
        cache_redis_username="cache-user",
        cache_redis_password="pw",
    )
    assert settings.state_redis == "redis://:s3cret%2Fwith%3Aodd%40chars@state:6390/0"
    assert settings.cache_redis == "redis://cache-user:pw@cache:6391/2"


def test_password_setting_overrides_the_one_in_the_url_and_keeps_the_rest() -> None:
    assert with_credentials("rediss://u:old@host:6380/1?ssl_cert_reqs=none", "new") == (
        "rediss://u:new@host:6380/1?ssl_cert_reqs=none"
    )
    assert with_credentials("redis://:p%40ss@host/0", None) == "redis://:p%40ss@host/0"
    assert with_credentials("redis://:p%40ss@host/0", None, "acl") == "redis://acl:p%40ss@host/0"


@pytest.mark.parametrize("role", ["state", "cache"])
def test_passwords_are_secrets_in_the_settings_repr(role: str) -> None:
    settings = ServiceSettings(**{f"{role}_redis_password": "hunter2-hunter2"})  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings)
    assert "hunter2" in settings.redis_role_url(role)  # type: ignore[arg-type]


def test_env_names_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGFLEET_STATE_REDIS_URL", "redis://state:1/0")
    monkeypatch.setenv("RAGFLEET_STATE_REDIS_PASSWORD", "pw")
    monkeypatch.setenv("RAGFLEET_CACHE_REDIS_URL", "redis://cache:2/0")
    settings = ServiceSettings()
    assert (settings.state_redis, settings.cache_redis) == ("redis://:pw@state:1/0", "redis://cache:2/0")
