"""`prequal-api`: checks the schema, then serves the app with uvicorn until SIGTERM."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from prequal.db.migrate import SchemaNotReadyError, check_at_head
from prequal.logging import configure_logging
from prequal.settings import load_settings
from prequal_api.app import create_app
from prequal_api.settings import ApiSettings

log = logging.getLogger("prequal_api")


def main() -> int:
    configure_logging("prequal-api")
    try:
        settings = load_settings(ApiSettings)
    except ValidationError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    logging.getLogger().setLevel(settings.log_level)
    try:
        check_at_head(settings.database_url.get_secret_value())
    except SchemaNotReadyError as exc:
        log.error("refusing to start: %s", exc)
        return 1
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    log.info("listening on http://%s:%d", settings.api_host, settings.api_port)
    uvicorn.Server(config).run()  # handles SIGTERM: stops accepting, finishes requests
    return 0


if __name__ == "__main__":
    sys.exit(main())
