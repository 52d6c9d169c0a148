from sonata_kit import ServiceSettings


class MetricsSettings(ServiceSettings):
    mongodb_db: str = "metrics"
