"""`prequal-api`: checks the schema, then serves the app with uvicorn until SIGTERM."""

from __future__ import annotations

import logging
import sys

import uvicorn
from prometheus_client import start_http_server

from prequal.startup import start
from prequal_api.app import create_app
from prequal_api.settings import ApiSettings

log = logging.getLogger("prequal_api")


def main() -> int:
    settings = start("prequal-api", ApiSettings)
    app = create_app(settings)
    # Its own port and a thread of its own (prometheus_client's server), so the API port
    # serves only the public routes and a scrape never waits behind API requests.
    metrics_server, _thread = start_http_server(
        settings.api_metrics_port, settings.api_host, registry=app.state.services.metrics.registry
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        limit_concurrency=settings.api_limit_concurrency,
        timeout_keep_alive=settings.api_timeout_keep_alive_seconds,
        timeout_graceful_shutdown=settings.api_timeout_graceful_shutdown_seconds,
    )
    log.info(
        "listening on http://%s:%d (metrics on :%d)",
        settings.api_host,
        settings.api_port,
        settings.api_metrics_port,
    )
    try:
        uvicorn.Server(config).run()  # handles SIGTERM: stops accepting, finishes requests
    finally:
        metrics_server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
