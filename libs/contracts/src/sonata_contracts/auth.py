"""Events published by the auth service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime

from sonata_contracts.base import Event


class UserRegistered(Event):
    NAME: ClassVar[str] = "auth.user_registered.v1"

    user_id: str
    email: str
    display_name: str
    roles: list[str]
    locale: str
    timezone: str


class EmailVerificationRequested(Event):
    """Carries the token: notifications sends the verification link."""

    NAME: ClassVar[str] = "auth.email_verification_requested.v1"

    user_id: str
    email: str
    token: str
    verify_url: str
    expires_at: AwareDatetime


class PhoneVerificationRequested(Event):
    NAME: ClassVar[str] = "auth.phone_verification_requested.v1"

    user_id: str
    phone: str
    code: str
    expires_at: AwareDatetime


class PasswordResetRequested(Event):
    NAME: ClassVar[str] = "auth.password_reset_requested.v1"

    user_id: str
    email: str
    token: str
    reset_url: str
    expires_at: AwareDatetime


class UserRoleChanged(Event):
    NAME: ClassVar[str] = "auth.user_role_changed.v1"

    user_id: str
    old_roles: list[str]
    new_roles: list[str]
    changed_by: str


class UserDeleted(Event):
    """Every service erases this user's data when it sees this."""

    NAME: ClassVar[str] = "auth.user_deleted.v1"

    user_id: str
