"""Starting notifications as a real process beside local SMTP, Twilio and push doubles."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sonata_testing import ServiceProcess, free_port
from sonata_testing.smtp_sink import SmtpSink
from sonata_testing.twilio_double import TwilioDouble

TWILIO_FROM = "+15005550006"


def vapid_keys() -> tuple[str, str]:
    """(private, public) as base64url: raw scalar and uncompressed point."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return b64(raw), b64(public)


def notifications_env(
    mongo_url: str,
    amqp_url: str,
    smtp: SmtpSink,
    *,
    twilio: TwilioDouble | None = None,
    jwks_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "ENVIRONMENT": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"notifications_{uuid.uuid4().hex[:8]}",
        "AMQP_URL": amqp_url,
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "DISPATCH_POLL_INTERVAL_S": "0.1",
        "SEND_RETRY_BASE_S": "0.3",
        "SCHEDULER_INTERVAL_S": "0.5",
        "LOG_LEVEL": "WARNING",
    }
    if twilio is not None:
        env.update(
            TWILIO_ACCOUNT_SID=twilio.account_sid,
            TWILIO_AUTH_TOKEN=twilio.auth_token,
            TWILIO_FROM_NUMBER=TWILIO_FROM,
            TWILIO_API_URL=twilio.url,
        )
    if jwks_url is not None:
        env["AUTH_JWKS_URL"] = jwks_url
    env.update(extra or {})
    return env


def start_notifications(env: dict[str, str], log_dir: Path | None = None) -> ServiceProcess:
    port = free_port()
    env = {"PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **env}
    return ServiceProcess(
        "notifications", "sonata_notifications.main:create_app", env, port=port, log_dir=log_dir
    ).start()
