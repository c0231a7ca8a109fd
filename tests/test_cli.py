"""The command line: config errors, reference build, and `run` shutting down on SIGTERM."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.broker import EmbeddedBroker, free_port
from monitor.cli import main
from monitor.reference import ReferenceProfile
from monitor.synthetic import Traffic, features_of

ROOT = Path(__file__).resolve().parent.parent


def modelmon(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_validate_config_ok_and_bad(tmp_path: Path) -> None:
    assert main(["validate-config", str(ROOT / "config" / "modelmon.yaml")]) == 0
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


@pytest.mark.integration
def test_run_stops_on_sigterm_and_commits(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from monitor.broker import create_topics

    create_topics(broker.bootstrap, {"cli-preds": 1, "cli-labels": 1, "cli-dlq": 1})
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap,
                    "group_id": "cli-test",
                    "predictions_topic": "cli-preds",
                    "labels_topic": "cli-labels",
                    "dead_letter_topic": "cli-dlq",
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 1000,
                },
                "http": {"host": "127.0.0.1", "port": port},
                "state": {"dir": str(tmp_path / "state")},
                "evaluation": {"interval": "1s"},
                "shutdown": {"deadline": "10s"},
                "models": [
                    {
                        "name": "fraud",
                        "reference": {"bootstrap_events": 200},
                        "features": features_of("fraud"),
                    }
                ],
            }
        )
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for e in Traffic(4).events("fraud", 500, time.time(), 100.0):
        producer.send("cli-preds", value=orjson.dumps(e))
    producer.flush()
    producer.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 45
        counted = 0.0
        while time.monotonic() < deadline and counted < 500:
            time.sleep(0.5)
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            except OSError:
                continue
            for line in body.decode().splitlines():
                if line.startswith('modelmon_events_total{model="fraud",stream="predictions"}'):
                    counted = float(line.split()[-1])
        assert counted == 500
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 10
        assert "stopped cleanly" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="cli-test")
    assert consumer.committed(TopicPartition("cli-preds", 0)) == 500
    consumer.close()


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
    from monitor.receiver import WebhookReceiver

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


@pytest.mark.integration
def test_check_reaches_the_brokers_and_names_missing_topics(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from monitor.broker import create_topics

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap,
                    "predictions_topic": "chk-p",
                    "labels_topic": "chk-l",
                    "dead_letter_topic": "chk-d",
                },
                "models": [
                    {
                        "name": "fraud",
                        "reference": {"bootstrap_events": 200},
                        "features": features_of("fraud"),
                    }
                ],
            }
        )
    )
    result = modelmon("check", "--config", str(cfg))
    assert result.returncode == 1 and "missing topics: chk-p, chk-l, chk-d" in result.stdout
    create_topics(broker.bootstrap, {"chk-p": 1, "chk-l": 1, "chk-d": 1})
    result = modelmon("check", "--config", str(cfg))
    assert result.returncode == 0, result.stdout
    assert f"kafka {broker.bootstrap}: ok" in result.stdout
