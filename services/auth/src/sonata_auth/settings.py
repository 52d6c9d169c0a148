"""auth's settings: the fleet's common ones plus keys, links, OAuth providers and limits."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from sonata_kit import ServiceSettings

from sonata_auth.adapters.hashing import MEMORY_KIB, TIME_COST


class OidcProviderSettings(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    issuer: str
    client_id: str
    client_secret: SecretStr
    scope: str = "openid email profile"
    discovery_url: str | None = None


class AuthSettings(ServiceSettings):
    mongodb_db: str = "auth"
    # Encrypts signing keys and TOTP secrets at rest; the previous value still decrypts.
    key_encryption_secret: SecretStr = SecretStr("dev-auth-key-encryption-secret")
    key_encryption_secret_previous: SecretStr | None = None
    email_verification_url: str = "http://127.0.0.1:8080/verify-email?token={token}"
    password_reset_url: str = "http://127.0.0.1:8080/reset-password?token={token}"
    # OAuth: the front-end pages a provider may send the browser back to, matched exactly.
    oauth_redirect_uris: list[str] = Field(default_factory=list)
    oidc_providers: list[OidcProviderSettings] = Field(default_factory=list)
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    login_ip_limit: int = Field(default=30, ge=1)
    login_account_limit: int = Field(default=10, ge=1)
    login_window_s: int = Field(default=300, ge=1)
    reset_ip_limit: int = Field(default=10, ge=1)
    reset_account_limit: int = Field(default=3, ge=1)
    reset_window_s: int = Field(default=3600, ge=1)
    # Seconds a reset request takes at least, so a known address cannot be told by its timing.
    reset_answer_floor_s: float = Field(default=0.3, ge=0, le=5)
    argon2_memory_kib: int = Field(default=MEMORY_KIB, ge=MEMORY_KIB)
    argon2_time_cost: int = Field(default=TIME_COST, ge=TIME_COST)
