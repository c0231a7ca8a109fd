"""The demo runs unattended, exits 0 and reports the drift it injected."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor.synthetic import DEMAND_DRIFTED, FRAUD_DRIFTED

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_unattended_and_reports_injected_drift() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "demo", "--duration", "20", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for model, features in (("fraud", FRAUD_DRIFTED), ("demand", DEMAND_DRIFTED)):
        for feature in features:
            assert f"DRIFT DETECTED model={model}" in out and f"feature={feature}" in out, out
    assert "drift detected on every injected feature" in out, out
