import json

import pytest
from pydantic import BaseModel, Field, SecretStr, ValidationError
from sonata_kit import ServiceSettings

REAL_AMQP_URL = "amqp://sonata:q8Zr2vLw5nTx@rabbitmq:5672/"


class StripeLikeSettings(ServiceSettings):
    mongodb_db: str = "payment"
    provider_api_key: SecretStr = SecretStr("change-me")
    optional_api_key: SecretStr | None = None
    callback_urls: list[str] = Field(default_factory=list)


class Provider(BaseModel):
    name: str
    client_secret: SecretStr


class NestedSettings(ServiceSettings):
    providers: list[Provider] = Field(default_factory=list)
    keys: dict[str, SecretStr] = Field(default_factory=dict)


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AMQP_URL", REAL_AMQP_URL)
    return monkeypatch


@pytest.mark.parametrize(
    "placeholder", ["", "change-me", "CHANGE_ME", "changeme", "secret", "dev-key-123"]
)
def test_production_refuses_placeholder_secrets(
    production: pytest.MonkeyPatch, placeholder: str
) -> None:
    production.setenv("PROVIDER_API_KEY", placeholder)
    with pytest.raises(ValidationError, match="PROVIDER_API_KEY"):
        StripeLikeSettings()


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_accept_placeholders(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.delenv("PROVIDER_API_KEY", raising=False)
    assert StripeLikeSettings().provider_api_key.get_secret_value() == "change-me"


def test_production_with_real_secret_and_unprefixed_env(production: pytest.MonkeyPatch) -> None:
    monkeypatch = production
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


def test_an_empty_variable_means_unset_in_production(production: pytest.MonkeyPatch) -> None:
    # what compose passes for an optional `${X:-}` left blank in .env
    monkeypatch = production
    monkeypatch.setenv("PROVIDER_API_KEY", "sk_live_9f8e7d6c5b4a")
    monkeypatch.setenv("OPTIONAL_API_KEY", "")
    monkeypatch.setenv("CALLBACK_URLS", "")
    settings = StripeLikeSettings()
    assert settings.optional_api_key is None
    assert settings.callback_urls == []


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:5672/",
        "amqp://sonata:CHANGE_ME@rabbitmq:5672/",
        "amqp://sonata:@rabbitmq:5672/",
        "amqp://sonata:dev-rabbit@rabbitmq:5672/",
    ],
)
def test_production_refuses_a_placeholder_password_in_a_url(
    production: pytest.MonkeyPatch, url: str
) -> None:
    production.setenv("AMQP_URL", url)
    with pytest.raises(ValidationError, match=r"AMQP_URL \(password in the URL\)"):
        ServiceSettings()


def test_production_without_an_amqp_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # the default is RabbitMQ's guest account on this machine
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("AMQP_URL", raising=False)
    with pytest.raises(ValidationError, match="AMQP_URL"):
        ServiceSettings()
    monkeypatch.setenv("AMQP_URL", "amqp://sonata:p%40ss%3Aw0rd-9f8e@rabbitmq:5672/")
    monkeypatch.setenv("MONGODB_URL", "mongodb://sonata:Zx81y2Qm@mongo:27017/?replicaSet=rs0")
    assert ServiceSettings().environment == "production"


def test_production_refuses_placeholders_inside_nested_settings(
    production: pytest.MonkeyPatch,
) -> None:
    providers = [{"name": "a", "client_secret": "9f8e7d6c5b"}, {"name": "b", "client_secret": ""}]
    production.setenv("PROVIDERS", json.dumps(providers))
    with pytest.raises(ValidationError, match=r"PROVIDERS\[1\]\.CLIENT_SECRET"):
        NestedSettings()
    production.setenv("PROVIDERS", '[{"name": "a", "client_secret": "9f8e7d6c5b"}]')
    production.setenv("KEYS", '{"signing": "secret"}')
    with pytest.raises(ValidationError, match=r"KEYS\[signing\]"):
        NestedSettings()
    production.setenv("KEYS", '{"signing": "4b3a29f8e7d6"}')
    assert NestedSettings().keys["signing"].get_secret_value() == "4b3a29f8e7d6"
    production.setenv("ENVIRONMENT", "development")
    production.setenv("KEYS", '{"signing": "secret"}')
    assert NestedSettings().keys["signing"].get_secret_value() == "secret"
