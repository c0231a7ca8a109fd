"""The command line against the real broker: `run` stops on SIGTERM and commits; `check`."""

from __future__ import annotations

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

from monitor.devkit.broker import EmbeddedBroker, free_port
from monitor.devkit.synthetic import Traffic, features_of
from tests.support import REPO_ROOT
from tests.support.cli import modelmon

ROOT = REPO_ROOT


@pytest.mark.integration
def test_run_stops_on_sigterm_and_commits(broker: EmbeddedBroker, tmp_path: Path) -> None:
    from monitor.devkit.broker import create_topics

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


@pytest.mark.integration
def test_check_reaches_the_brokers_and_names_missing_topics(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from monitor.devkit.broker import create_topics

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
