"""The demo runs unattended, exits 0 and reports the drift it injected."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from monitor.devkit.synthetic import FRAUD_DRIFTED

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
    for feature in FRAUD_DRIFTED:
        assert re.search(rf"DRIFT DETECTED model=fraud window=\S+ feature={feature}\b", out), out
    # demand only has a concept drift: its inputs must not be flagged.
    assert "DRIFT DETECTED model=demand" not in out, out
    assert "drift detected on every injected feature" in out, out
    # Labels arrive and performance is reported for both kinds of model.
    assert re.search(r"fraud performance \(window 1m\): \d+ labels · accuracy 0\.\d+", out), out
    # The degradations reach the built-in receiver as signed, verified webhooks.
    assert "WEBHOOK received, signature verified: model.degraded model=fraud" in out, out
    assert re.search(r"demand performance \(window 1m\): \d+ labels · MAE \d", out), out
    # A log has no live view: the end shows each model's per-feature table.
    summary = out.split("summary", 1)[1]
    assert re.search(r"fraud · window 1m · \d+ predictions", summary), out
    for feature in FRAUD_DRIFTED:
        assert re.search(rf"│ {feature} +│.*│ +DRIFT │", summary), summary
    assert re.search(r"│ temperature +│.*│ +ok │", summary), summary
