"""What the API fuzz (test_api_fuzz.py) found, one named case each, against the real API.

- A body that is not JSON answered 422 naming a field "5" (FastAPI's character offset).
- A 404 repeated the application id of the request path (an input echoed in an error body).
- The document did not say what the API checks (the PAN's pattern, consent that must be true,
  amounts that are any string), listed no links and no headers for 401, 429 and 503, so
  generated bodies rarely reached the logic and a stateful run had nothing to follow.
- OPTIONS /webhooks/endpoints answered 405 with `Allow: POST`: the path has two routes and
  only the first one's methods were named.
- POST /webhooks/endpoints answered 413, not 422, to a `url` of 2,049 emoji (the document's
  maxLength was 2,048, over the body cap once JSON-escaped); and it trimmed a padded `url`
  that the document's pattern refuses.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.applications import application, synthetic_pan

ERROR_KEYS = {"error_code", "message", "details", "request_id"}


@pytest.mark.parametrize(
    "raw",
    [b'{"pan_number": ', b"\xff\xfe{}", b"{'single': 'quotes'}", b'{"a": 1,}', b"NaN-ish"],
    ids=["truncated", "not-utf8", "single-quotes", "trailing-comma", "bare-word"],
)
def test_a_body_that_is_not_json_is_422_malformed_body_naming_the_body(
    client: httpx.Client, raw: bytes
) -> None:
    response = client.post(
        "/applications", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "MALFORMED_BODY"
    assert [d["field"] for d in body["details"]] == ["body"]


def test_a_404_does_not_echo_the_application_id(client: httpx.Client) -> None:
    unknown = uuid.uuid4()
    response = client.get(f"/applications/{unknown}/status")
    assert response.status_code == 404
    assert str(unknown) not in response.text
    assert str(unknown).replace("-", "") not in response.text


def _document(client: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/openapi.json").json()
    return document


def test_the_document_lists_every_status_each_operation_answers(client: httpx.Client) -> None:
    paths = _document(client)["paths"]
    post = paths["/applications"]["post"]["responses"]
    get = paths["/applications/{application_id}/status"]["get"]["responses"]
    assert set(post) == {"202", "401", "403", "409", "413", "422", "429", "503"}
    assert set(get) == {"200", "401", "403", "404", "413", "422", "429", "503"}
    for responses in (post, get):
        assert "WWW-Authenticate" in responses["401"]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]


def test_the_document_links_a_submission_to_its_status(client: httpx.Client) -> None:
    post = _document(client)["paths"]["/applications"]["post"]
    for status in ("202", "409"):
        (link,) = post["responses"][status]["links"].values()
        assert link["operationId"] == "getApplicationStatus"
        assert link["parameters"] == {"application_id": "$response.body#/application_id"}


def test_the_document_states_the_pan_pattern_consent_and_amounts(client: httpx.Client) -> None:
    schemas = _document(client)["components"]["schemas"]
    fields = schemas["ApplicationRequest"]["properties"]
    pattern = re.compile(fields["pan_number"]["pattern"])
    assert pattern.match(synthetic_pan())
    assert not pattern.match("ABCD1234F")
    assert schemas["Consent"]["properties"]["soft_inquiry"]["const"] is True
    amount = {s["type"]: s for s in fields["requested_amount"]["anyOf"]}
    assert amount["integer"]["minimum"] == 1
    assert re.match(amount["string"]["pattern"], "250000.50")
    assert not re.match(amount["string"]["pattern"], "0")
    assert not re.match(amount["string"]["pattern"], "1.234")


def test_the_documented_example_application_is_accepted(client: httpx.Client) -> None:
    example = _document(client)["components"]["schemas"]["ApplicationRequest"]["examples"][0]
    # The example's PAN is the documented test PAN: a fresh one keeps this test repeatable.
    response = client.post("/applications", json={**example, "pan_number": synthetic_pan()})
    assert response.status_code == 202, response.text
    assert set(application()) <= set(example)


def test_a_405_names_the_allowed_methods(client: httpx.Client) -> None:
    # Found by schemathesis' unsupported_method check: the error handler dropped `Allow`.
    response = client.request("TRACE", "/applications")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error_code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "key", [b"", b"\xa0", b"k" * 256], ids=["empty", "no-break-space", "256-chars"]
)
def test_an_idempotency_key_the_document_refuses_is_422(client: httpx.Client, key: bytes) -> None:
    # Found by positive_data_acceptance: "" was a documented key that the API refused.
    parameter = _document(client)["paths"]["/applications"]["post"]["parameters"][0]
    (documented, _null) = parameter["schema"]["anyOf"]
    assert documented == {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"}
    response = client.post("/applications", json=application(), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert [d["field"].lower() for d in response.json()["details"]] == ["idempotency-key"]


@pytest.mark.parametrize("name", [" ", "\u00a0", "\u2003\u00a0 "], ids=["space", "nbsp", "mixed"])
def test_a_name_of_only_white_space_is_422_and_the_document_says_so(
    client: httpx.Client, name: str
) -> None:
    # Found by positive_data_acceptance: "\u00a0" matched the documented pattern, then the
    # trim left an empty name and the API refused what its document allowed.
    fields = _document(client)["components"]["schemas"]["ApplicationRequest"]["properties"]
    assert not re.match(fields["last_name"]["pattern"], name)
    assert re.match(fields["last_name"]["pattern"], "Rao Asha")
    response = client.post("/applications", json=application(last_name=name))
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["details"]] == ["last_name"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consent.captured_at", -286),
        ("consent.captured_at", 1_764_662_400),
        ("date_of_birth", 0),
        ("consent.soft_inquiry", "yes"),
        ("consent.soft_inquiry", 1),
    ],
    ids=["captured-at-negative-number", "captured-at-unix-seconds", "born-at-0", "yes", "one"],
)
def test_a_value_of_another_json_type_is_422_not_coerced(
    client: httpx.Client, field: str, value: object
) -> None:
    # Found by negative_data_rejection: pydantic took a number as Unix seconds, so a consent
    # "captured" at -286 (1969) was accepted; "yes" and 1 passed for `true`.
    body = application()
    if field.startswith("consent."):
        body["consent"] = {**body["consent"], field.split(".")[1]: value}  # type: ignore[dict-item]
    else:
        body[field] = value
    response = client.post("/applications", json=body)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]


def test_a_405_on_webhook_endpoints_names_every_method_the_document_declares(
    client: httpx.Client,
) -> None:
    # Found by unsupported_method (ST205): Starlette's 405 named only the first route's
    # methods, `Allow: POST`, though GET serves the same path.
    declared = {m.upper() for m in _document(client)["paths"]["/webhooks/endpoints"]}
    response = client.request("OPTIONS", "/webhooks/endpoints", json={"url": "http://0"})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == declared == {"GET", "POST"}
    assert response.json()["error_code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "url",
    [
        "\u008f\u00b5Ff$" + "\U0001f3fb" * 1025,
        "https://hooks.example.test/" + "a" * 1000,
        "https://h\u00f6oks.example.test/",
        "\ud83c\udffb" * 10,
        " https://hooks.example.test/prequal ",
        "ftp://hooks.example.test/",
        5,
        None,
    ],
    ids=[
        "emoji-over-max-length",
        "ascii-over-max-length",
        "non-ascii-host",
        "surrogates",
        "padded",
        "ftp",
        "number",
        "null",
    ],
)
def test_a_webhook_url_the_document_refuses_is_422_naming_url(
    client: httpx.Client, url: object
) -> None:
    # Found by negative_data_rejection (ST201): 1,025+ emoji, each 12 bytes JSON-escaped, went
    # over the 16 KiB body cap and were answered 413 before validation; a padded URL, which the
    # pattern refuses, was trimmed and registered.
    schema = _document(client)["components"]["schemas"]["EndpointRequest"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["url"]["maxLength"] == 1024
    body = json.dumps({"url": url}).encode()
    assert len(body) < 16 * 1024
    response = client.post(
        "/webhooks/endpoints", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == ["url"]


def test_a_webhook_body_with_an_extra_field_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/webhooks/endpoints", json={"url": "https://hooks.example.test/", "secret": "mine"}
    )
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == ["secret"]
