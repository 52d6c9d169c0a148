"""Typed settings of a service, read from unprefixed environment variables at startup."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# "guest" is RabbitMQ's built-in account, the default AMQP_URL's password.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "change_me", "changeme", "secret", "password", "guest"}
)


class PlaceholderSecretError(ValueError):
    pass


def is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith("dev-")


def url_password(value: str) -> str | None:
    """The password in a URL's user info (``amqp://user:pw@host/``), if it has one."""
    if "://" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return None if password is None else unquote(password)


def _placeholders(name: str, value: object) -> Iterator[str]:
    """Names of the placeholder secrets in ``value``: secret strings, passwords in URLs, and
    both inside nested models, lists and mappings (``OIDC_PROVIDERS[0].CLIENT_SECRET``)."""
    if isinstance(value, SecretStr):
        if is_placeholder(value.get_secret_value()):
            yield name
    elif isinstance(value, str):
        password = url_password(value)
        if password is not None and is_placeholder(password):
            yield f"{name} (password in the URL)"
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _placeholders(f"{name}.{field.upper()}", getattr(value, field))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _placeholders(f"{name}[{i}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _placeholders(f"{name}[{key}]", item)


class ServiceSettings(BaseSettings):
    # An empty variable is an unset one: compose passes an optional `${X:-}` left blank as "",
    # which must mean "use the default", not an empty secret (refused) or an unparsable list.
    model_config = SettingsConfigDict(
        env_prefix="", extra="ignore", frozen=True, env_ignore_empty=True
    )

    environment: Literal["development", "test", "production"] = "development"
    mongodb_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongodb_db: str = "sonata"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    auth_jwks_url: str = "http://127.0.0.1:8001/.well-known/jwks.json"
    jwt_issuer: str = "sonata-auth"
    jwt_audience: str = "sonata"
    log_level: str = "INFO"
    root_path: str = ""
    jwks_cache_ttl_s: float = 300.0
    jwks_min_refresh_interval_s: float = 10.0
    relay_poll_interval_s: float = 1.0
    consumer_prefetch: int = 64

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment in ("development", "test"):
            return self
        bad = [
            found
            for name in type(self).model_fields
            for found in _placeholders(name.upper(), getattr(self, name))
        ]
        if bad:
            raise PlaceholderSecretError(
                f"placeholder secret(s) in {self.environment}: {', '.join(sorted(bad))}; "
                "set real values"
            )
        return self
