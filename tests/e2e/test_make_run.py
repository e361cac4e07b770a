"""`make run` (devstack up) brings the whole platform up from nothing, decides applications,
reports every endpoint, and leaves no process behind when it is stopped."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from devstack.net import free_port
from devstack.services import console_script
from devstack.tools import REPO_ROOT, tool
from tests.applications import application
from tests.polling import wait_until

REPO = Path(__file__).parents[2]
STARTUP_TIMEOUT = 240


class _Output:
    """devstack up's output, read by a thread: a wait for a line ends at its deadline even when
    the process hangs printing nothing (a blocking readline() would wait for pytest's timeout)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="devstack-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def close(self) -> None:
        """After the process ended: the reader has seen the end of its output by then."""
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def wait_for(self, needle: str, timeout: float) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"devstack up exited early ({self.proc.wait(10)}):\n{''.join(lines)}")
            lines.append(line)
            if needle in line:
                return lines
        pytest.fail(f"devstack up printed no {needle!r} within {timeout}s:\n{''.join(lines)}")


def _token(env: dict[str, str]) -> str:
    """One standard client_credentials POST with what .run/env says, as any script would."""
    answer = httpx.post(
        env["OIDC_TOKEN_URL"],
        data={
            "grant_type": "client_credentials",
            "client_id": env["OIDC_CLIENT_ID"],
            "client_secret": env["OIDC_CLIENT_SECRET"],
            "audience": env["OIDC_AUDIENCE"],
            "scope": env["OIDC_SCOPE"].strip("'"),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _decide(api_url: str, pans: list[str], token: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_url, timeout=10, headers=headers) as api:
        ids = {
            pan: api.post(
                "/applications",
                json=application(pan_number=pan, loan_type="HOME", monthly_income=90000),
            ).json()["application_id"]
            for pan in pans
        }
        final: dict[str, str] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(final) < len(pans):
            for pan, app_id in ids.items():
                status = api.get(f"/applications/{app_id}/status").json()["status"]
                if status != "PENDING":
                    final[pan] = status
            time.sleep(0.2)
    return final


def _scraped_jobs(prometheus_url: str, expected: set[str]) -> set[str]:
    up: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not expected <= up:
        targets = httpx.get(f"{prometheus_url}/api/v1/targets", timeout=10).json()
        up = {t["labels"]["job"] for t in targets["data"]["activeTargets"] if t["health"] == "up"}
        time.sleep(1)
    return up


# Its waits add up to more than pytest's 300 s default; each fails with its own message first.
@pytest.mark.timeout(STARTUP_TIMEOUT + 600)
def test_make_run_serves_decisions_and_stops_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    ports = {
        name: free_port()
        for name in ("postgres", "kafka", "api", "prometheus", "hydra", "hydra-admin")
    }
    argv = [console_script("devstack"), "up", "--run-dir", str(run_dir)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    descendants: list[psutil.Process] = []
    output = _Output(proc)
    try:
        printed = output.wait_for("Ctrl-C stops everything", STARTUP_TIMEOUT)
        descendants = psutil.Process(proc.pid).children(recursive=True)

        env = dict(line.split("=", 1) for line in (run_dir / "env").read_text().splitlines())
        assert env["API_URL"] == f"http://127.0.0.1:{ports['api']}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{ports['kafka']}"
        assert env["PROMETHEUS_URL"] == f"http://127.0.0.1:{ports['prometheus']}"
        assert str(ports["postgres"]) in env["DATABASE_URL"]
        assert Path(env["KUBECONFIG"]) == (run_dir / "kubeconfig").resolve()

        # The documented test PANs decide deterministically, through every process.
        # Three demo clients (two for scripts, one for Swagger UI); a failure names no secret.
        secrets = [v for k, v in env.items() if k.endswith("_SECRET")]
        secret_count = len(secrets)
        assert secret_count == 3
        leaked = any(s in line for s in secrets for line in printed)
        assert not leaked, "a client secret was printed; it belongs only in .run/env"
        assert _decide(env["API_URL"], ["ABCDE1234F", "FGHIJ5678K"], _token(env)) == {
            "ABCDE1234F": "PRE_APPROVED",
            "FGHIJ5678K": "REJECTED",
        }

        # The operator reconciled the sample pipeline on the local control plane.
        got = subprocess.run(
            [
                tool("kubectl"),
                "--kubeconfig",
                env["KUBECONFIG"],
                "get",
                "lp",
                "-n",
                "lending",
                "retail",
                "-o",
                "yaml",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        conditions = {
            c["type"]: c["status"] for c in yaml.safe_load(got.stdout)["status"]["conditions"]
        }
        assert conditions["Ready"] == "True"

        # A pipeline in any namespace is reconciled: the tenants sample gets a status.
        _apply_tenants_and_wait_for_their_status(env["KUBECONFIG"])

        # Prometheus scrapes every process (it picks new targets up within seconds).
        expected = {
            "prequal-api",
            "outbox-publisher",
            "credit-service",
            "decision-service",
            "webhook-dispatcher",
            "loan-operator",
        }
        assert expected <= _scraped_jobs(env["PROMETHEUS_URL"], expected)

        # A process that dies is restarted after a back-off, visibly, and nothing else stops.
        api = next(p for p in descendants if "prequal-api" in " ".join(p.cmdline()))
        api.kill()
        lines = output.wait_for("prequal-api restarted (restart 1)", 120)
        assert any("prequal-api exited with code -9; restart 1" in line for line in lines)
        assert set(_decide(env["API_URL"], ["KLMNO9012P"], _token(env))) == {
            "KLMNO9012P"
        }  # decided
        descendants += psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(90)
        finally:
            if proc.poll() is None:
                proc.kill()
            output.close()

    assert proc.returncode == 0
    assert descendants, "devstack up started no child processes"
    left = [p.pid for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes outlived devstack up: {left}"


def _apply_tenants_and_wait_for_their_status(kubeconfig: str) -> None:
    kubectl = [tool("kubectl"), "--kubeconfig", kubeconfig]
    tenants = str(REPO_ROOT / "manifests" / "samples" / "tenants")
    subprocess.run([*kubectl, "apply", "-f", tenants], capture_output=True, check=True)
    for namespace in ("personal-loans", "home-loans"):
        wait_until(
            lambda ns=namespace: (
                yaml.safe_load(
                    subprocess.run(
                        [*kubectl, "get", "lp", "-n", ns, "-o", "yaml"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )["items"][0]
                .get("status", {})
                .get("conditions")
            ),
            timeout=60,
        )
