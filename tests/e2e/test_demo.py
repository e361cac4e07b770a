"""`prequalctl demo` against the running platform prints every sample's final status."""

from __future__ import annotations

import pytest

from prequalctl.main import main as prequalctl

from .conftest import Platform


def test_demo_prints_each_final_status_and_a_409_when_run_again(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["demo", "--api-url", platform.api.url, "--token", platform.token]
    assert prequalctl(demo) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split("  ")[0]: line for line in lines[2:]}
    assert "PRE_APPROVED" in table["dev log sample 1 (test PAN ABCDE1234F)"]
    assert "XXXXXX234F" in table["dev log sample 1 (test PAN ABCDE1234F)"]
    # The offer: 500,000 over 48 months in the PRIME band, with its EMI and APR.
    assert (
        "500000.00 INR / 48 months at 0.1200, EMI 13167.00"
        in table["dev log sample 1 (test PAN ABCDE1234F)"]
    )
    assert "MANUAL_REVIEW" in table["dev log sample 2 (random PAN)"]
    assert "REJECTED" in table["test PAN FGHIJ5678K"]
    assert " 610 " in table["test PAN FGHIJ5678K"]
    # The first decision reached the demo's receiver through webhook-dispatcher, signed.
    [webhook] = [line for line in lines if line.startswith("webhook delivered: ")]
    assert "loan.application.decided.v1 PRE_APPROVED" in webhook
    assert webhook.endswith("(signature verified)")

    assert prequalctl(demo) == 0
    again = capsys.readouterr().out
    assert again.count(" 409 ") == 2  # the test PANs, within 24 hours
