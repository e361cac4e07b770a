"""`prequalctl demo`: submit the dev log's sample applications and the test PANs, print outcomes.

Against a running platform (`make run`): the API URL comes from `--api-url`, else `API_URL`,
else `.run/env`, else http://127.0.0.1:8000. The bearer token comes from one client_credentials
POST to `OIDC_TOKEN_URL` as `OIDC_CLIENT_ID` / `OIDC_CLIENT_SECRET` (environment, else
`.run/env`, which `make run` writes), or from `--token`. The dev log's second sample PAN is
replaced by a random well-formed one generated here (only the two documented test PANs are
ever written down). A second run within 24 hours meets the duplicate rule: those rows show `409`.
Each answer is awaited with a long poll (`?wait=`), and a receiver on loopback, registered as
the client's webhook endpoint for the demo, shows the first decision delivered and signed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from prequalctl.demo_webhook import DemoReceiver, registered_receiver

DEFAULT_API_URL = "http://127.0.0.1:8000"
CONSENT_TEXT_VERSION = "soft-inquiry-v1"
FINAL = {"PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"}


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="Submit sample applications to a running platform and print their final status",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--api-url", help="base URL of prequal-api")
    demo.add_argument("--env-file", type=Path, default=Path(".run/env"))
    demo.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per answer")
    demo.add_argument("--token", help="a bearer token (default: get one with OIDC_* settings)")
    demo.set_defaults(handler=_demo)


def setting(wanted: str, env_file: Path) -> str | None:
    """`wanted` from the environment, else from the shell assignments in `env_file`."""
    if os.environ.get(wanted):
        return os.environ[wanted]
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == wanted and value.strip():
                return value.strip().strip("'\"")
    return None


def api_url(explicit: str | None, env_file: Path) -> str:
    if explicit:
        return explicit.rstrip("/")
    return (setting("API_URL", env_file) or DEFAULT_API_URL).rstrip("/")


def bearer_token(env_file: Path, timeout: float) -> str:
    """One standard client_credentials POST to the identity provider."""
    names = ("OIDC_TOKEN_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET")
    token_url, client_id, secret = (setting(n, env_file) for n in names)
    if not (token_url and client_id and secret):
        raise SystemExit(
            f"error: set {', '.join(names)} (make run writes them to {env_file}) or pass --token"
        )
    answer = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": setting("OIDC_SCOPE", env_file)
            or "applications:write applications:read webhooks:manage",
            "audience": setting("OIDC_AUDIENCE", env_file) or "prequal-api",
        },
        timeout=timeout,
    )
    if answer.status_code != 200:
        raise SystemExit(f"error: the token endpoint answered {answer.status_code}")
    return str(answer.json()["access_token"])


def random_pan() -> str:
    letters = string.ascii_uppercase
    return (
        "".join(secrets.choice(letters) for _ in range(5))
        + "".join(secrets.choice(string.digits) for _ in range(4))
        + secrets.choice(letters)
    )


def consent() -> dict[str, Any]:
    """The applicant's consent to a soft inquiry, captured now (required by the API)."""
    return {
        "soft_inquiry": True,
        "text_version": CONSENT_TEXT_VERSION,
        "captured_at": datetime.now(UTC).isoformat(),
        "channel": "WEB",
    }


def offer_summary(status: dict[str, Any]) -> str:
    offer = (status.get("decision") or {}).get("offer")
    if not offer:
        return "-"
    return (
        f"{offer['amount']} {offer['currency']} / {offer['term_months']} months at "
        f"{offer['annual_rate']}, EMI {offer['emi']}, fee {offer['processing_fee']}, "
        f"APR {offer['apr']}"
    )


def sample_applications() -> list[tuple[str, dict[str, Any]]]:
    """(label, request body): the dev log's two samples (with income and loan type, which the
    dev log's API never asked for) and an applicant with the second test PAN."""
    return [
        (
            "dev log sample 1 (test PAN ABCDE1234F)",
            {
                "pan_number": "ABCDE1234F",
                "first_name": "Rajesh",
                "last_name": "Kumar",
                "date_of_birth": "1985-06-15",
                "email": "rajesh.kumar@example.com",
                "phone_number": "9876543210",
                "requested_amount": 500000,
                "monthly_income": 85000,
                "loan_type": "PERSONAL",
                "consent": consent(),
            },
        ),
        (
            "dev log sample 2 (random PAN)",
            {
                "pan_number": random_pan(),
                "first_name": "Priya",
                "last_name": "Sharma",
                "date_of_birth": "1990-03-20",
                "email": "priya.sharma@example.com",
                "phone_number": "9123456789",
                "requested_amount": 7500000,
                "monthly_income": 60000,
                "loan_type": "HOME",
                "consent": consent(),
            },
        ),
        (
            "test PAN FGHIJ5678K",
            {
                "pan_number": "FGHIJ5678K",
                "first_name": "Test",
                "last_name": "Applicant",
                "date_of_birth": "1992-01-01",
                "email": "test.applicant@example.com",
                "phone_number": "9000000001",
                "requested_amount": 300000,
                "monthly_income": 50000,
                "loan_type": "AUTO",
                "consent": consent(),
            },
        ),
    ]


def _outcome(http: httpx.Client, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    answer = http.post("/applications", json=body)
    if answer.status_code != 202:
        error = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        return {"http": answer.status_code, "status": error.get("error_code", "ERROR")}
    application_id = answer.json()["application_id"]
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {"status": "PENDING"}
    while time.monotonic() < deadline:
        # A long poll: the API answers when the decision commits.
        wait = max(1, min(30, int(deadline - time.monotonic())))
        status = http.get(
            f"/applications/{application_id}/status", params={"wait": wait}, timeout=wait + 10
        ).json()
        if status["status"] in FINAL:
            break
    return {"http": 202, "application_id": application_id, **status}


def _webhook_line(receiver: DemoReceiver | str, rows: list[dict[str, Any]], timeout: float) -> str:
    if isinstance(receiver, str):
        return receiver
    decided = next((r for r in rows if r["status"] in FINAL), None)
    if decided is None:
        return "no webhook: no application was decided"
    delivery = receiver.wait_for(str(decided["application_id"]), timeout)
    if delivery is None:
        return f"no webhook arrived within {timeout:g} s (is webhook-dispatcher running?)"
    verified = "signature verified" if delivery.verified else "SIGNATURE DID NOT VERIFY"
    return (
        f"webhook delivered: loan.application.decided.v1 {delivery.status} for "
        f"{delivery.application_id} ({verified})"
    )


def _demo(args: argparse.Namespace) -> int:
    url = api_url(args.api_url, args.env_file)
    print(f"submitting to {url}")
    rows: list[tuple[str, ...]] = []
    results: list[dict[str, Any]] = []
    try:
        token = args.token or bearer_token(args.env_file, args.timeout)
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=url, timeout=args.timeout, headers=headers) as http,
            registered_receiver(http) as receiver,
        ):
            for label, body in sample_applications():
                result = _outcome(http, body, args.timeout)
                results.append(result)
                rows.append(
                    (
                        label,
                        str(result.get("pan_masked") or "-"),
                        str(result["http"]),
                        str(result["status"]),
                        str(result.get("credit_score") or "-"),
                        offer_summary(result),
                        str(result.get("decision_reason") or ""),
                    )
                )
            webhook = _webhook_line(receiver, results, args.timeout)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the API at {url}: {exc} (is `make run` up?)")
        return 1
    header = ("APPLICATION", "PAN", "HTTP", "STATUS", "SCORE", "OFFER", "REASON")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header[:-1])]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    print(webhook)
    pending = [r for r in rows if r[3] == "PENDING"]
    return 1 if pending else 0
