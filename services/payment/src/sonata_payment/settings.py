from pydantic import Field, SecretStr
from sonata_kit import ServiceSettings


class PaymentSettings(ServiceSettings):
    mongodb_db: str = "payment"
    stripe_api_key: SecretStr = SecretStr("dev-stripe-api-key")  # refused in production
    stripe_webhook_secret: SecretStr = SecretStr("dev-stripe-webhook-secret")
    # empty = Stripe's own API; tests and `make run` point the official client elsewhere
    stripe_api_base: str = ""
    stripe_webhook_tolerance_s: int = 300
    # catalogue item -> Stripe price id (premium_monthly, premium_yearly, lifetime, credits_*)
    stripe_prices: dict[str, str] = Field(
        default_factory=lambda: {
            "premium_monthly": "price_premium_monthly",
            "premium_yearly": "price_premium_yearly",
            "lifetime": "price_lifetime",
            "credits_10": "price_credits_10",
            "credits_50": "price_credits_50",
        }
    )
    checkout_success_url: str = (
        "http://127.0.0.1:8080/billing/success?session={CHECKOUT_SESSION_ID}"
    )
    checkout_cancel_url: str = "http://127.0.0.1:8080/billing/canceled"
    portal_return_url: str = "http://127.0.0.1:8080/billing"
    # how long a failed renewal keeps the paid plan while Stripe retries the card
    grace_period_s: float = 7 * 86_400
    grace_sweep_interval_s: float = 60.0
