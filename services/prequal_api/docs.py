"""Swagger UI and ReDoc served offline: `/docs` and `/redoc` work with no internet.

The assets (swagger-ui-dist 5, which reads the OpenAPI 3.1 document FastAPI serves, and ReDoc)
come from the maintained `fastapi-offline` package; swagger-ui-bundle 1.1.0 shipped Swagger UI
4.15, which renders only "Unable to render this definition" for OpenAPI 3.1.

The document declares the OAuth2 client-credentials flow with the identity provider's token URL,
so the Authorize button gets a token itself (client id and secret typed in the dialog). Swagger
UI 5 posts `grant_type` and `scope` only (the client authenticated with HTTP Basic) and would put
`additionalQueryStringParams` in the token URL's query string, which Hydra ignores: it reads
`audience` from the form body only (fosite's access request uses `r.PostForm`). Without it the
token has no `aud` and this API refuses it. So the page's request interceptor adds
`audience=<OIDC_AUDIENCE>` to the body of requests to the token URL, and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from prequal_api.auth import SCHEME_NAME, SCOPE_READ, SCOPE_WRITE

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"


def _js(value: Any) -> str:
    """`value` as a JavaScript literal that cannot close the <script> element."""
    return json.dumps(value).replace("<", "\\u003c")


def swagger_ui_html(title: str, openapi_url: str, token_url: str, audience: str) -> str:
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        # The Authorize button keeps the token across reloads of the page.
        "persistAuthorization": True,
    }
    init_oauth = {"scopes": [SCOPE_WRITE, SCOPE_READ]}
    return f"""<!doctype html>
<html>
<head>
<title>{title}</title>
<link type="text/css" rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="shortcut icon" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
const tokenUrl = {_js(token_url)};
const audience = {_js(audience)};
window.ui = SwaggerUIBundle(Object.assign({_js(config)}, {{
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  // Hydra reads `audience` from the token request's body only (see prequal_api/docs.py).
  requestInterceptor: (request) => {{
    if (request.url.startsWith(tokenUrl) && typeof request.body === "string"
        && !/(^|&)audience=/.test(request.body)) {{
      request.body += "&audience=" + encodeURIComponent(audience);
    }}
    return request;
  }},
}}));
window.ui.initOAuth({_js(init_oauth)});
</script>
</body>
</html>
"""


def install_docs(app: FastAPI, token_url: str, audience: str) -> None:
    """/docs, /redoc and their assets; the document's client-credentials flow gets `token_url`."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # built once, then kept in app.openapi_schema
        flows = document["components"]["securitySchemes"][SCHEME_NAME]["flows"]
        flows["clientCredentials"]["tokenUrl"] = token_url
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    page = swagger_ui_html(f"{app.title} - API docs", openapi_url, token_url, audience)

    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

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
