"""Swagger UI and ReDoc served offline: `/docs` and `/redoc` work with no internet.

The assets (swagger-ui-dist 5, which reads the OpenAPI 3.1 document FastAPI serves, and ReDoc)
come from the maintained `fastapi-offline` package; swagger-ui-bundle 1.1.0 shipped Swagger UI
4.15, which renders only "Unable to render this definition" for OpenAPI 3.1.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            # The Authorize button keeps the bearer token across reloads of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, include_in_schema=False, methods=["GET"])
    app.add_api_route("/redoc", redoc, include_in_schema=False, methods=["GET"])
