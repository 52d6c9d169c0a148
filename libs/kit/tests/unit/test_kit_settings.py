import pytest
from pydantic import Field, SecretStr, ValidationError
from sonata_kit import ServiceSettings


class StripeLikeSettings(ServiceSettings):
    mongodb_db: str = "payment"
    provider_api_key: SecretStr = SecretStr("change-me")
    optional_api_key: SecretStr | None = None
    callback_urls: list[str] = Field(default_factory=list)


@pytest.mark.parametrize("placeholder", ["", "change-me", "changeme", "secret", "dev-key-123"])
def test_production_refuses_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch, placeholder: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("PROVIDER_API_KEY", placeholder)
    with pytest.raises(ValidationError, match="PROVIDER_API_KEY"):
        StripeLikeSettings()


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_accept_placeholders(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.delenv("PROVIDER_API_KEY", raising=False)
    assert StripeLikeSettings().provider_api_key.get_secret_value() == "change-me"


def test_production_with_real_secret_and_unprefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("PROVIDER_API_KEY", "sk_live_9f8e7d6c5b4a")
    monkeypatch.setenv("MONGODB_URL", "mongodb://db.internal:27017/?replicaSet=rs0")
    monkeypatch.setenv("JWT_AUDIENCE", "sonata-prod")
    settings = StripeLikeSettings()
    assert settings.mongodb_url == "mongodb://db.internal:27017/?replicaSet=rs0"
    assert settings.jwt_audience == "sonata-prod"
    assert settings.mongodb_db == "payment"


def test_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    with pytest.raises(ValidationError, match="environment"):
        ServiceSettings()


def test_an_empty_variable_means_unset_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    # what compose passes for an optional `${X:-}` left blank in .env
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("PROVIDER_API_KEY", "sk_live_9f8e7d6c5b4a")
    monkeypatch.setenv("OPTIONAL_API_KEY", "")
    monkeypatch.setenv("CALLBACK_URLS", "")
    settings = StripeLikeSettings()
    assert settings.optional_api_key is None
    assert settings.callback_urls == []
