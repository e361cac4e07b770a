"""Schemathesis hooks for test_api_fuzz (loaded by the CLI through SCHEMATHESIS_HOOKS).

- `no_input_echoed`: an error body never repeats a string the request sent (a PAN, a name, a
  header), so a validation error cannot leak what a client typed into logs or browsers.
- `map_body`: the age rule and "consent not captured in the future" depend on today's date,
  which JSON Schema cannot state; generated dates that break them are moved inside them
  (deterministically, from the date itself), so a body the document allows is one the API
  takes (schemathesis' positive_data_acceptance check) and reaches the submission logic.
  Both rules have their own cases in test_api_contract.py and test_consent.py.
- `map_case` keeps generated webhook URLs out of the SSRF guard's way: a URL whose host
  is or resolves to a loopback, private, link-local or unspecified address is a 422 by contract
  (a rule about DNS, which no schema states); such a host becomes a public name, so the POST
  reaches the registration. test_webhook_endpoints.py has the refused cases.
- `map_case`: a valid `?wait=N` becomes 0 (a long poll of an undecided application would hold
  each case N seconds; test_long_poll.py has its own cases). An Idempotency-Key reused with
  another body is a 422 by contract (a rule about earlier requests, which no schema states); a
  generated key gets a digest of its body appended, so a key repeats only with its body (a
  replay) and the 422 keeps its own test.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, date, datetime
from typing import Any

import httpx
import schemathesis

from prequal import egress
from tests.applications import pan_from

# Shorter strings occur in any message by chance ("a", "id", "body").
_MIN_ECHO = 6


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@schemathesis.check
def no_input_echoed(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code < 400:
        return None
    sent = _strings(case.body) + _strings(case.headers or {}) + _strings(case.path_parameters or {})
    text = response.text
    for value in sent:
        stripped = value.strip()
        if len(stripped) >= _MIN_ECHO and stripped in text and stripped not in _OWN_WORDS:
            raise AssertionError(f"a {len(stripped)}-character input is echoed in the error body")
    return None


# Words of our own messages that a generated string may happen to equal.
_OWN_WORDS = {
    "application",
    "applications",
    "invalid",
    "fields",
    "Idempotency-Key",
    "consent",
}


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    return _consented_in_the_past(_of_age(_mostly_new_pan(body)))


_LOOKUP = egress.bounded(socket.getaddrinfo, timeout=2.0)


def _public_webhook_url(body: dict[str, Any]) -> dict[str, Any]:
    url = body.get("url")
    if not isinstance(url, str):
        return body
    try:
        egress.resolve(url, (), _LOOKUP)
    except egress.RefusedDestinationError:
        return {**body, "url": str(httpx.URL(url).copy_with(host="hooks.example.com"))}
    except Exception:  # noqa: BLE001 - not a URL the guard reads, or no answer: the API judges
        return body
    return body


def _mostly_new_pan(body: dict[str, Any]) -> dict[str, Any]:
    """Generation keeps returning to a few PANs (AAAAA0000A...), so most bodies met the 24-hour
    rule's 409. Three in four well-formed PANs become one derived from the whole body: more
    bodies reach the insert, the 202 and the status read; the rest still meet the 409."""
    pan = body.get("pan_number")
    if not isinstance(pan, str) or len(pan.strip()) != 10:
        return body
    # Not the consent: its generated times can be "now", and the PAN must not change per run.
    stable = {k: v for k, v in body.items() if k != "consent"}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).digest()
    if digest[0] % 4 == 0:
        return body
    return {**body, "pan_number": pan_from(digest[1:10])}


def _of_age(body: dict[str, Any]) -> dict[str, Any]:
    try:
        born = date.fromisoformat(body["date_of_birth"])
    except (KeyError, TypeError, ValueError):
        return body
    today = date.today()
    if 19 <= today.year - born.year <= 99:
        return body
    year = today.year - 19 - born.year % 80
    return {**body, "date_of_birth": born.replace(year=year, day=min(born.day, 28)).isoformat()}


def _consented_in_the_past(body: dict[str, Any]) -> dict[str, Any]:
    """A consent captured in the future is refused (the server's clock is the judge, which
    JSON Schema cannot state): generated times in the future are moved into the past."""
    consent = body.get("consent")
    if not isinstance(consent, dict) or not isinstance(consent.get("captured_at"), str):
        return body
    try:
        captured = datetime.fromisoformat(consent["captured_at"])
    except ValueError:
        return body
    if captured.tzinfo is None or captured <= datetime.now(UTC):
        return body
    past = captured.replace(year=2000 + captured.year % 26, day=min(captured.day, 28))
    return {**body, "consent": {**consent, "captured_at": past.isoformat()}}


_KEY_ROOM = 255 - 13


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    _no_long_poll(case)
    if isinstance(case.body, dict):  # here, not in map_body: the coverage phase skips that
        case.body = _public_webhook_url(case.body)
    headers = case.headers or {}
    name = next((h for h in headers if h.lower() == "idempotency-key"), None)
    key = headers.get(name) if name else None
    if not isinstance(key, str) or not key.strip() or len(key) > _KEY_ROOM:
        return case
    digest = hashlib.sha256(json.dumps(case.body, sort_keys=True, default=str).encode())
    headers[name] = f"{key}-{digest.hexdigest()[:12]}"
    return case


def _no_long_poll(case: Any) -> None:
    """A valid `?wait=N` on a PENDING application (the stateful phase reads the ones it just
    submitted, and nothing decides them here) would hold the case N seconds: valid waits become
    0, out-of-range values stay to be refused. test_long_poll.py covers waiting itself."""
    query = case.query or {}
    wait = query.get("wait")
    if isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= 30:
        query["wait"] = 0
