"""``modelmon reference calibrate`` through the real command line: the table, the policy YAML,
and every bad input as one line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from monitor.reference.build import build_reference
from tests.support.cli import modelmon


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibrate")
    rng = np.random.default_rng(0)
    columns: dict[str, list[object]] = {
        "amount": rng.lognormal(3, 1, 3000).tolist(),
        "country": rng.choice(["DE", "FR", "IT"], 3000).tolist(),
        "score": rng.uniform(0, 1, 3000).tolist(),
        "prediction": rng.integers(0, 2, 3000).tolist(),
    }
    kinds = {"amount": "numeric", "country": "categorical"}
    build_reference("fraud", "binary_classification", columns, kinds).save(root / "ref.json")  # type: ignore[arg-type]
    windows = [
        {"name": "5m", "length": "5m", "pane": "10s"},
        {"name": "1h", "length": "1h", "pane": "1m"},
    ]
    data = {
        "state": {"dir": str(root / "state")},
        "models": [
            {"name": "fraud", "features": kinds, "reference": "ref.json", "windows": windows},
            {"name": "boot", "features": kinds, "reference": {"bootstrap_events": 100}},
        ],
    }
    path = root / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_prints_a_row_per_window_and_feature(config: Path) -> None:
    result = modelmon(
        "reference", "calibrate", "-c", str(config), "--model", "fraud", "--rate", "2"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "window", "predictions", "feature", "kind", "psi", "ks_statistic", "js_distance"
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:7]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("5m", "600", "amount", "numeric"),
        ("5m", "600", "country", "categorical"),
        ("5m", "600", "(prediction)", "numeric"),
        ("1h", "7200", "amount", "numeric"),
        ("1h", "7200", "country", "categorical"),
        ("1h", "7200", "(prediction)", "numeric"),
    ]
    assert rows[0][6] == "-" and rows[1][5] == "-" and rows[2][5:] == ["-", "-"]
    for short, long in zip(rows[:3], rows[3:], strict=True):  # 1h: more events, less noise
        assert 0 < float(long[4]) < float(short[4])
    assert "0.01 of evaluations" in lines[-1]


def test_yaml_is_policy_keys_to_paste(config: Path) -> None:
    result = modelmon(
        "reference", "calibrate", "-c", str(config), "--model", "fraud", "--events", "500",
        "--window", "5m", "--format", "yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    policy = yaml.safe_load(result.stdout)["policy"]
    assert set(policy) == {"psi_max", "ks_min_statistic", "js_min_distance"}
    assert all(0 < v < 0.2 for v in policy.values())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "fraud"], "give --rate"),
        (["--model", "fraud", "--rate", "1", "--events", "5"], "not both"),
        (["--model", "fraud", "--rate", "-1"], "--rate -1.0 must be a positive"),
        (["--model", "fraud", "--events", "0"], "--events 0 must be in"),
        (["--model", "fraud", "--rate", "1", "--false-alarm-rate", "1.5"], "between 0 and 1"),
        (["--model", "fraud", "--rate", "1", "--false-alarm-rate", "0.001"], "too few"),
        (["--model", "fraud", "--rate", "1", "--resamples", "5"], "must be in [10, 100000]"),
        (["--model", "fraud", "--rate", "1", "--window", "2h"], "no such window (it has: 5m, 1h)"),
        (["--model", "nope", "--rate", "1"], "no such model"),
        (["--model", "boot", "--rate", "1"], "bootstrap"),
        (["--model", "fraud", "--rate", "x"], "invalid float value"),
        (["--model", "fraud", "--rate", "0.0001"], "holds no predictions"),
    ],
)
def test_bad_inputs_are_one_line(config: Path, args: list[str], needle: str) -> None:
    result = modelmon("reference", "calibrate", "-c", str(config), *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert needle in lines[0] and "Traceback" not in result.stderr


def test_a_missing_config_is_one_line(tmp_path: Path) -> None:
    result = modelmon(
        "reference", "calibrate", "-c", str(tmp_path / "no.yaml"), "--model", "m", "--rate", "1"
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
