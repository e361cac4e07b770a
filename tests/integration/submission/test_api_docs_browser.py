"""/docs in a real browser (headless Chromium from Debian): the operations render, offline, and
the Authorize button gets a token from the real Hydra (CORS, client credentials, audience).

This module runs its own Hydra whose CORS origin is this module's API, on a port chosen first."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from devstack.hydra import AUDIENCE, SCOPES, Hydra, OAuthClient
from devstack.net import LOOPBACK, free_port
from devstack.postgres import Postgres
from prequal_api.auth import SCHEME_NAME, SCOPE_ERASE, SCOPE_READ, SCOPE_WEBHOOKS, SCOPE_WRITE
from tests.applications import application
from tests.devtools import CHROMIUM, open_page
from tests.integration.submission.conftest import ApiProcess, start_api
from tests.tokens import Oidc

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: run `make tools`"
)


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def oidc(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory, api_port: int
) -> Iterator[Oidc]:
    """Hydra answering CORS for this module's API origin (overrides the session's)."""
    hydra = Hydra(
        tmp_path_factory.mktemp("hydra-docs"),
        postgres,
        database="hydra_docs",
        cors_origins=(f"http://{LOOPBACK}:{api_port}",),
    )
    try:
        hydra.start()
        yield Oidc(hydra, hydra.register_client("client-a"), hydra.register_client("client-b"))
    finally:
        hydra.stop()


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, api_env: dict[str, str], oidc: Oidc, api_port: int
) -> Iterator[ApiProcess]:
    proc = start_api(tmp_path_factory.mktemp("api"), api_env, token=oidc.token(), port=api_port)
    try:
        yield proc
    finally:
        proc.process.stop()


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # we run as root in CI
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,1800",
            "--virtual-time-budget=15000",  # let Swagger UI fetch /openapi.json and render
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_chromium
def test_swagger_ui_renders_every_operation_and_the_authorize_button(
    api: ApiProcess, tmp_path: Path
) -> None:
    screenshot = tmp_path / "docs.png"
    shot = _chromium(f"--screenshot={screenshot}", f"{api.url}/docs")
    assert screenshot.exists(), shot.stderr[-2000:]
    dom = _chromium("--dump-dom", f"{api.url}/docs").stdout
    assert "Unable to render this definition" not in dom
    assert 'class="btn authorize' in dom  # the OAuth2 scheme is documented
    for path in ("/applications", "/applications/{application_id}/status"):
        assert f'data-path="{path}"' in dom, f"{path} not rendered (screenshot: {screenshot})"
    redoc = _chromium("--dump-dom", f"{api.url}/redoc").stdout
    assert "Submit a loan application" in redoc


def test_the_document_declares_the_client_credentials_flow_at_the_token_url(
    api: ApiProcess, oidc: Oidc
) -> None:
    document = httpx.get(f"{api.url}/openapi.json", timeout=10).json()
    scheme = document["components"]["securitySchemes"][SCHEME_NAME]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == oidc.token_url
    assert set(flow["scopes"]) == {SCOPE_WRITE, SCOPE_READ, SCOPE_ERASE, SCOPE_WEBHOOKS}
    operations = document["paths"]
    assert operations["/applications"]["post"]["security"] == [{SCHEME_NAME: [SCOPE_WRITE]}]
    status = operations["/applications/{application_id}/status"]["get"]
    assert status["security"] == [{SCHEME_NAME: [SCOPE_READ]}]
    erase = operations["/applications/{application_id}"]["delete"]
    assert erase["security"] == [{SCHEME_NAME: [SCOPE_ERASE]}]


def test_hydra_answers_the_preflight_of_the_api_origin_only(api: ApiProcess, oidc: Oidc) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            oidc.token_url,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-requested-with",
            },
            timeout=10,
        )

    allowed = preflight(api.url)
    assert allowed.headers.get("access-control-allow-origin") == api.url
    assert "x-requested-with" in allowed.headers.get("access-control-allow-headers", "").lower()
    other = preflight("http://evil.example")
    assert "access-control-allow-origin" not in other.headers


# Clicks Authorize, types the client's id and secret, ticks the scopes, clicks Authorize in the
# dialog and waits for Swagger UI to hold a token (or show an error).
AUTHORIZE = """
(async (clientId, clientSecret) => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const dialog = () => (document.querySelector(".modal-ux") || {}).innerText || "";
  const find = async (selector) => {
    for (let i = 0; i < 150; i++) {
      const found = document.querySelector(selector);
      if (found) return found;
      await sleep(100);
    }
    throw new Error("not rendered: " + selector + "; dialog: " + dialog());
  };
  const type = (input, value) => {
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(input, value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  };
  (await find(".btn.authorize")).click();
  type(await find('.modal-ux input[id^="client_id_"]'), clientId);
  type(await find('.modal-ux input[id^="client_secret_"]'), clientSecret);
  for (const box of document.querySelectorAll('.modal-ux input[type="checkbox"]')) {
    if (!box.checked) box.click();
  }
  (await find(".modal-ux .btn.modal-btn.auth.authorize")).click();
  for (let i = 0; i < 150; i++) {
    const token = window.ui.authSelectors.authorized().getIn([SCHEME, "token", "access_token"]);
    if (token) return token;
    await sleep(100);
  }
  throw new Error("no token after Authorize; dialog: " + dialog());
})
"""


@needs_chromium
def test_authorize_in_swagger_ui_gets_a_token_the_api_accepts(
    api: ApiProcess, oidc: Oidc, tmp_path: Path
) -> None:
    # Swagger UI sends the secret as HTTP Basic: Hydra takes that only from such a client.
    docs_client: OAuthClient = oidc.hydra.register_client(auth_method="client_secret_basic")
    script = AUTHORIZE.replace("SCHEME", json.dumps(SCHEME_NAME))
    call = f"{script}({json.dumps(docs_client.client_id)}, {json.dumps(docs_client.secret)})"
    with open_page(f"{api.url}/docs", tmp_path / "chromium") as page:
        token = page.evaluate(call)
        page.screenshot(tmp_path / "authorized.png")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == [AUDIENCE]  # the page's interceptor put the audience in the body
    assert set(claims["scp"]) == set(SCOPES.split())  # what the docs client may ask for
    with api.client(token=token) as http:
        posted = http.post("/applications", json=application())
        assert posted.status_code == 202, posted.text
        status = http.get(f"/applications/{posted.json()['application_id']}/status")
        assert status.status_code == 200, status.text


def test_hydra_reads_the_audience_from_the_body_not_the_query_string(oidc: Oidc) -> None:
    """Why /docs' page adds `audience` to the body: Swagger UI's `additionalQueryStringParams`
    would put it in the token URL's query string, where Hydra (fosite: r.PostForm) ignores it."""
    client = oidc.client
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.secret,
        "scope": SCOPE_READ,
    }
    in_query = httpx.post(oidc.token_url, params={"audience": AUDIENCE}, data=form, timeout=10)
    in_body = httpx.post(oidc.token_url, data={**form, "audience": AUDIENCE}, timeout=10)
    for response in (in_query, in_body):
        assert response.status_code == 200, response.text
    audiences = [
        jwt.decode(r.json()["access_token"], options={"verify_signature": False})["aud"]
        for r in (in_query, in_body)
    ]
    assert audiences == [[], [AUDIENCE]]
