"""Every refusal auth can give, with the status and code the error handler renders."""

from __future__ import annotations

from typing import Any


class AuthError(Exception):
    status: int = 400
    code: str = "bad_request"
    default_detail: str = "the request was refused"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = self.default_detail if detail is None else detail
        self.headers = headers or {}
        super().__init__(str(self.detail))


class InvalidCredentialsError(AuthError):
    status = 401
    code = "invalid_credentials"
    default_detail = "email or password is wrong"


class InvalidTokenError(AuthError):
    status = 401
    code = "invalid_token"
    default_detail = "the access token is not valid"


class InvalidRefreshTokenError(AuthError):
    status = 401
    code = "invalid_refresh_token"
    default_detail = "the refresh token is not valid"


class RefreshTokenReusedError(AuthError):
    status = 401
    code = "refresh_token_reused"
    default_detail = "this refresh token was already used; every session of its family is revoked"


class InvalidOneTimeTokenError(AuthError):
    status = 400
    code = "invalid_or_expired_token"
    default_detail = "the token is unknown, already used or expired"


class InvalidTotpCodeError(AuthError):
    status = 401
    code = "invalid_totp_code"
    default_detail = "the one-time code is wrong or was already used"


class InvalidPhoneCodeError(AuthError):
    status = 400
    code = "invalid_phone_code"
    default_detail = "the verification code is wrong"


class TooManyAttemptsError(AuthError):
    status = 429
    code = "too_many_attempts"
    default_detail = "too many attempts; ask for a new code"


class RateLimitedError(AuthError):
    status = 429
    code = "rate_limited"
    default_detail = "too many requests; retry later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class EmailNotVerifiedError(AuthError):
    status = 403
    code = "email_not_verified"
    default_detail = "verify your email address before logging in"


class ForbiddenError(AuthError):
    status = 403
    code = "forbidden"
    default_detail = "this action needs another role"


class NotFoundError(AuthError):
    status = 404
    code = "not_found"
    default_detail = "no such resource"


class ConflictError(AuthError):
    status = 409
    code = "conflict"
    default_detail = "the request conflicts with the current state"


class WeakPasswordError(AuthError):
    status = 422
    code = "weak_password"
    default_detail = "the password is too weak"


class TotpAlreadyEnabledError(AuthError):
    status = 409
    code = "totp_already_enabled"
    default_detail = "two-factor authentication is already enabled"


class TotpNotEnrolledError(AuthError):
    status = 409
    code = "totp_not_enrolled"
    default_detail = "start the TOTP enrolment first"


class UnknownProviderError(AuthError):
    status = 404
    code = "unknown_provider"
    default_detail = "no such OAuth provider is configured"


class RedirectUriMismatchError(AuthError):
    status = 400
    code = "redirect_uri_mismatch"
    default_detail = "redirect_uri does not exactly match a registered one"


class InvalidOAuthStateError(AuthError):
    status = 400
    code = "invalid_oauth_state"
    default_detail = "the OAuth state is unknown, already used or expired"


class OAuthFailedError(AuthError):
    status = 401
    code = "oauth_failed"
    default_detail = "the identity provider's answer was refused"


class ProviderUnavailableError(AuthError):
    status = 502
    code = "identity_provider_unavailable"
    default_detail = "the identity provider could not be reached"


class UnprocessableError(AuthError):
    status = 422
    code = "unprocessable"
    default_detail = "the request is well-formed but cannot be processed"


class EmailTakenError(ConflictError):
    code = "email_taken"
    default_detail = "an account already uses this email address"
