"""prequal-api as a process: JSON log lines without PANs, graceful stop on SIGTERM."""

from __future__ import annotations

import json
from pathlib import Path

from tests.applications import application, synthetic_pan
from tests.integration.submission.conftest import start_api
from tests.tokens import Oidc


def test_logs_are_json_without_the_pan_and_sigterm_stops_the_api_cleanly(
    tmp_path: Path, api_env: dict[str, str], oidc: Oidc
) -> None:
    api = start_api(tmp_path, {**api_env, "LOG_LEVEL": "DEBUG"}, "api-logs", token=oidc.token())
    pan_number = synthetic_pan()
    with api.client() as http:
        assert (
            http.post("/applications", json=application(pan_number=pan_number)).status_code == 202
        )
        assert (
            http.post("/applications", json=application(pan_number=pan_number)).status_code == 409
        )
        bad = http.post("/applications", json=application(pan_number=pan_number + "X"))
        assert bad.status_code == 422
        assert pan_number not in bad.text
    api.process.stop(timeout=15)
    assert not api.process.alive()
    log = api.process.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert {line["service"] for line in lines} == {"prequal-api"}
    assert any("Finished server process" in line["message"] for line in lines)
    assert pan_number not in log
    assert pan_number.lower() not in log
