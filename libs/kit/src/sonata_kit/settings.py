"""Typed settings of a service, read from unprefixed environment variables at startup."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password"})


class PlaceholderSecretError(ValueError):
    pass


def is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith("dev-")


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
            name.upper()
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
            and is_placeholder(value.get_secret_value())
        ]
        if bad:
            raise PlaceholderSecretError(
                f"placeholder secret(s) in {self.environment}: {', '.join(sorted(bad))}; "
                "set real values"
            )
        return self
