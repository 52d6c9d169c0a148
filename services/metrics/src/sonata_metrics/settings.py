from pydantic import Field
from sonata_kit import ServiceSettings

from sonata_metrics.domain.kpis import PlanPrice


def _catalogue() -> dict[str, PlanPrice]:
    # payment's subscription plans (services/payment/README.md), in euro cents
    return {
        "premium_monthly": PlanPrice(999, "month"),
        "premium_yearly": PlanPrice(9900, "year"),
    }


class MetricsSettings(ServiceSettings):
    mongodb_db: str = "metrics"
    # JSON {"plan": {"amount_cents": 999, "interval": "month"|"year"}}: what MRR counts per plan
    plan_prices: dict[str, PlanPrice] = Field(default_factory=_catalogue)
    # how often the KPI gauges are recomputed from the database
    kpi_refresh_interval_s: float = Field(default=15.0, gt=0)
