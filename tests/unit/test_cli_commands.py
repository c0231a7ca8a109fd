"""Commands that do what their name says: reference build without a config, validate-config as
strict as run, check that answers quickly, --version."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import yaml

from monitor.reference.bins import CategoricalProfile, NumericProfile
from monitor.reference.profile import ReferenceProfile
from tests.support import REPO_ROOT
from tests.support.cli import modelmon

TRAIN_CSV = "id,amount,zip,country,score\n1,10.5,01234,DE,0.1\n2,3,99999,FR,0.7\n3,,01234,,0.4\n"


def test_reference_build_without_a_config_infers_and_says_the_kinds(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text(TRAIN_CSV)
    out = tmp_path / "ref.json"
    result = modelmon(
        "reference", "build", "--model", "fraud", "--input", str(train), "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[:2] == [
        f"{train}: inferred numeric: amount, zip; categorical: country; not features: id, score "
        "(change with --features, --categorical)",
        "for the model's config: features: {amount: numeric, zip: numeric, country: categorical}",
    ]
    ref = ReferenceProfile.load(out)
    assert ref.task == "binary_classification" and ref.rows == 3
    assert isinstance(ref.features["amount"], NumericProfile)
    assert isinstance(ref.features["zip"], NumericProfile)
    assert isinstance(ref.features["country"], CategoricalProfile)
    assert ref.prediction is not None  # the score column, as with a config


def test_reference_build_overrides_keep_codes_as_text(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text(TRAIN_CSV)
    out = tmp_path / "ref.json"
    result = modelmon(
        *("reference", "build", "--model", "fraud", "--input", str(train), "--output", str(out)),
        *("--features", "zip,amount", "--categorical", "zip", "--task", "regression"),
    )
    assert result.returncode == 0, result.stderr
    assert "inferred numeric: amount; categorical: zip; not features: id, country, score" in (
        result.stdout
    )
    ref = ReferenceProfile.load(out)
    assert ref.task == "regression" and list(ref.features) == ["zip", "amount"]
    zips = ref.features["zip"]
    assert isinstance(zips, CategoricalProfile)
    assert set(zips.categories) == {"01234", "99999"}  # the leading zero kept, as in events


def _config(tmp_path: Path, models: list[dict[str, object]]) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"state": {"dir": str(tmp_path / "s")}, "models": models}))
    return path


def test_validate_config_warns_about_keys_the_task_never_reads(tmp_path: Path) -> None:
    boot = {"bootstrap_events": 100}
    config = _config(
        tmp_path,
        [
            {
                "name": "fraud",
                "features": {"a": "numeric"},
                "reference": boot,
                "policy": {"mae_max": 3, "accuracy_min": 0.9},
            },
            {
                "name": "demand",
                "task": "regression",
                "features": {"a": "numeric"},
                "reference": boot,
                "positive_class": "yes",
                "policy": {"accuracy_min": 0.9, "rmse_max": 2},
            },
        ],
    )
    result = modelmon("validate-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "modelmon: warning: models[0].policy.mae_max: has no effect on a binary_classification "
        "model (fraud); it applies to regression",
        "modelmon: warning: models[1].policy.accuracy_min: has no effect on a regression model "
        "(demand); it applies to binary_classification and multiclass_classification",
        "modelmon: warning: models[1].positive_class: has no effect on a regression model "
        "(demand); it applies to binary_classification",
    ]
    assert result.stdout == f"{config}: valid (2 model(s): fraud, demand)\n"


def test_validate_config_refuses_a_reference_without_the_configured_features(
    tmp_path: Path,
) -> None:
    train = tmp_path / "train.csv"
    train.write_text(TRAIN_CSV)
    ref = tmp_path / "ref.json"
    built = modelmon(
        "reference", "build", "--model", "fraud", "--input", str(train), "--output", str(ref)
    )
    assert built.returncode == 0, built.stderr
    features = {"amount": "numeric", "tenure": "numeric"}
    config = _config(tmp_path, [{"name": "fraud", "features": features, "reference": str(ref)}])
    result = modelmon("validate-config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "modelmon: config error: models[fraud].reference: model fraud: reference has no "
        "feature 'tenure'"
    ]


def test_check_reports_an_unreachable_broker_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": f"127.0.0.1:{port}"},
                "models": [
                    {
                        "name": "m",
                        "features": {"a": "numeric"},
                        "reference": {"bootstrap_events": 100},
                    }
                ],
            }
        )
    )
    # gives up rather than hangs (about 4 s of waiting; a hang is a TimeoutExpired here)
    result = modelmon("check", "--config", str(config), timeout=30)
    assert result.returncode == 1
    assert f"kafka 127.0.0.1:{port}: unreachable" in result.stdout
    assert "check kafka.bootstrap_servers" in result.stdout


def test_version_is_the_package_version() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = modelmon("--version")
    assert result.returncode == 0
    assert result.stdout == f"modelmon {version}\n"
