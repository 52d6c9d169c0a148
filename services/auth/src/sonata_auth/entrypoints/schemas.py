"""Request and response bodies of auth's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from sonata_auth.domain.model import Role, TokenPair, User
from sonata_auth.service_layer.sessions import LoginResult, LoginStatus

# Bounded so nobody makes us hash a megabyte; the password policy gives the real limits.
Password = Field(min_length=1, max_length=1024)
Secret = Field(min_length=16, max_length=512)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(Body):
    email: EmailStr
    password: str = Password
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    locale: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    timezone: str = Field(default="UTC", min_length=1, max_length=64)


class Accepted(BaseModel):
    status: str
    detail: str


class TokenIn(Body):
    token: str = Secret


class LoginIn(Body):
    email: EmailStr
    password: str = Password


class TotpLoginIn(Body):
    challenge: str = Secret
    code: str = Field(pattern=r"^\s*\d{6}\s*$")


class RefreshIn(Body):
    refresh_token: str = Secret


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> TokenOut:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


class LoginOut(BaseModel):
    status: LoginStatus
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None
    # The handle for the next step when status is not "ok".
    challenge: str | None = None

    @classmethod
    def of(cls, result: LoginResult) -> LoginOut:
        if result.tokens is None:
            return cls(status=result.status, challenge=result.challenge)
        t = result.tokens
        return cls(
            status=result.status,
            access_token=t.access_token,
            refresh_token=t.refresh_token,
            token_type="Bearer",
            expires_in=t.expires_in,
        )


class MeOut(BaseModel):
    id: str
    email: str
    email_verified: bool
    display_name: str
    locale: str
    timezone: str
    roles: list[Role]
    phone: str | None
    phone_verified: bool
    totp_enabled: bool
    totp_required: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> MeOut:
        return cls(
            id=user.id,
            email=user.email,
            email_verified=user.email_verified,
            display_name=user.display_name,
            locale=user.locale,
            timezone=user.timezone,
            roles=list(user.roles),
            phone=user.phone,
            phone_verified=user.phone_verified,
            totp_enabled=user.totp_enabled,
            totp_required=user.requires_totp,
            created_at=user.created_at,
        )


class PasswordResetIn(Body):
    email: EmailStr


class PasswordResetConfirmIn(Body):
    token: str = Secret
    new_password: str = Password


class PhoneIn(Body):
    phone: str = Field(min_length=1, max_length=32)


class PhoneCodeIn(Body):
    code: str = Field(pattern=r"^\s*\d{6}\s*$")


class PhoneOut(BaseModel):
    phone: str
    phone_verified: bool


class TotpEnrolIn(Body):
    enrolment_token: str | None = Field(default=None, min_length=16, max_length=512)


class TotpEnrolOut(BaseModel):
    secret: str
    otpauth_uri: str


class TotpConfirmIn(Body):
    code: str = Field(pattern=r"^\s*\d{6}\s*$")
    enrolment_token: str | None = Field(default=None, min_length=16, max_length=512)


class TotpConfirmOut(BaseModel):
    status: str = "enabled"
    # Present when the enrolment finished a login that was waiting for it.
    tokens: TokenOut | None = None


class RolesIn(Body):
    roles: list[Role] = Field(min_length=1, max_length=4)


class AuditOut(BaseModel):
    at: datetime
    event: str
    ip: str | None
    detail: dict[str, Any]


class RotatedOut(BaseModel):
    kid: str


class OAuthCallbackIn(Body):
    code: str = Field(min_length=1, max_length=2048)
    state: str = Field(min_length=1, max_length=512)
    redirect_uri: str = Field(min_length=1, max_length=2048)
