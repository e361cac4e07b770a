"""The API's settings: database, PAN keys, listen address and pool sizing."""

from __future__ import annotations

from prequal.settings import DatabaseSettings, KafkaSettings, PanKeySettings


class ApiSettings(DatabaseSettings, PanKeySettings, KafkaSettings):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    db_pool_min_size: int = 4
    db_pool_max_size: int = 16
    # How long a request waits for a database connection before it answers 503.
    db_pool_timeout_seconds: float = 2.0
    retry_after_seconds: int = 5
    service_name: str = "prequal-api"
