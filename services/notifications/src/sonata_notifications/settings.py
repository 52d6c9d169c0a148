from datetime import datetime
from typing import Self

from pydantic import AwareDatetime, SecretStr, field_validator, model_validator
from sonata_kit import ServiceSettings


class NotificationsSettings(ServiceSettings):
    mongodb_db: str = "notifications"
    # Where users reach this service: unsubscribe links and Twilio's callbacks start with it.
    public_base_url: str = "http://127.0.0.1:8080/api/notifications"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "Sonata <no-reply@sonata.local>"

    # SMS is off (its notifications fail as not configured) until all three are set.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_url: str = "https://api.twilio.com"

    # Web push is off until a VAPID key pair is set (private key: PEM or base64url raw).
    vapid_private_key: SecretStr | None = None
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:support@sonata.local"

    dispatch_concurrency: int = 8
    dispatch_poll_interval_s: float = 0.5
    send_max_attempts: int = 5
    send_retry_base_s: float = 5.0
    send_retry_max_s: float = 600.0
    send_timeout_s: float = 15.0
    rate_limit_per_hour: int = 10
    scheduler_interval_s: float = 30.0
    assignment_due_lead_h: float = 24.0  # remind of an open assignment this long before
    # The scheduler's clock starts here and runs at real speed: for demos and tests only.
    scheduler_clock_start: AwareDatetime | None = None

    @field_validator(
        "smtp_username",
        "smtp_password",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_from_number",
        "vapid_private_key",
        "vapid_public_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # compose passes an unset optional variable as "": that means "channel off"
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_shifted_clock_in_production(self) -> Self:
        if self.environment == "production" and self.scheduler_clock_start is not None:
            raise ValueError("SCHEDULER_CLOCK_START is for development and tests only")
        return self

    def clock_offset(self, now: datetime) -> float:
        if self.scheduler_clock_start is None:
            return 0.0
        return (self.scheduler_clock_start - now).total_seconds()
