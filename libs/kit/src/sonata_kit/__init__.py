"""The service kit: settings, logs, errors, health, metrics, token verification, app factory."""

from sonata_kit.app import Runtime, RuntimeDep, create_service_app, get_runtime
from sonata_kit.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from sonata_kit.logging import configure_logging
from sonata_kit.settings import PlaceholderSecretError, ServiceSettings
from sonata_kit.tokens import (
    CurrentPrincipal,
    Principal,
    TokenVerifier,
    current_principal,
    require_roles,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "CurrentPrincipal",
    "Forbidden",
    "NotFound",
    "PlaceholderSecretError",
    "Principal",
    "Runtime",
    "RuntimeDep",
    "ServiceError",
    "ServiceSettings",
    "ServiceUnavailable",
    "TokenVerifier",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "configure_logging",
    "create_service_app",
    "current_principal",
    "get_runtime",
    "require_roles",
]
