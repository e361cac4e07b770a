"""What every service does before anything else: JSON logging, settings, the schema check.

A process that cannot start says why in one log line and exits: 2 for settings it cannot use
(the message names the setting, never its value), 1 for a database that is not migrated.
"""

from __future__ import annotations

import logging
import sys
from typing import TypeVar

from pydantic import ValidationError

from prequal.db.migrate import SchemaNotReadyError, check_at_head
from prequal.logging import configure_logging
from prequal.settings import BaseServiceSettings, DatabaseSettings, load_settings

S = TypeVar("S", bound=BaseServiceSettings)

EXIT_BAD_SETTINGS = 2
EXIT_SCHEMA_NOT_READY = 1


def start(service: str, settings_class: type[S]) -> S:
    """Configures logging for `service`, loads its settings and, for a service with a database,
    refuses to go on unless the schema is at the latest migration."""
    configure_logging(service)
    log = logging.getLogger(service.replace("-", "_"))
    try:
        settings = load_settings(settings_class)
    except ValidationError as exc:
        log.error("invalid settings: %s", exc)
        sys.exit(EXIT_BAD_SETTINGS)
    logging.getLogger().setLevel(settings.log_level)
    if isinstance(settings, DatabaseSettings):
        try:
            check_at_head(settings.database_url.get_secret_value())
        except SchemaNotReadyError as exc:
            log.error("refusing to start: %s", exc)
            sys.exit(EXIT_SCHEMA_NOT_READY)
    return settings
