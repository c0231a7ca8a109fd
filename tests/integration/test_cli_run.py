"""The command line against the real broker: `run` stops on SIGTERM and commits; `check`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from monitor.devkit.broker import EmbeddedBroker, free_port
from monitor.devkit.synthetic import Traffic, features_of
from tests.support import REPO_ROOT
from tests.support.cli import modelmon
from tests.support.helpers import Topics
from tests.support.metrics import parse_metrics
from tests.support.produce import produce
from tests.support.wait import wait_for

ROOT = REPO_ROOT
EVENTS = "modelmon_events_total"
FRAUD_PREDICTIONS = (("model", "fraud"), ("stream", "predictions"))


@pytest.mark.integration
def test_run_stops_on_sigterm_and_commits(
    broker: EmbeddedBroker, topics: Topics, tmp_path: Path
) -> None:
    group = f"cli-{uuid.uuid4().hex[:8]}"
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap,
                    "group_id": group,
                    "predictions_topic": topics.predictions,
                    "labels_topic": topics.labels,
                    "dead_letter_topic": topics.dlq,
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
    values = [orjson.dumps(e) for e in Traffic(4).events("fraud", 500, time.time(), 100.0)]
    produce(broker.bootstrap, topics.predictions, values)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        counted = 0.0

        def consumed() -> bool:
            nonlocal counted
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
            except OSError:
                return False
            counted = parse_metrics(body.decode()).get((EVENTS, FRAUD_PREDICTIONS), counted)
            return counted >= 500

        wait_for(consumed, 45, "500 predictions consumed", every=0.5)
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
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    parts = sorted(consumer.partitions_for_topic(topics.predictions))
    committed = [consumer.committed(TopicPartition(topics.predictions, p)) or 0 for p in parts]
    assert sum(committed) == 500  # every prediction, over all the topic's partitions
    consumer.close()


@pytest.mark.integration
def test_check_reaches_the_brokers_and_names_missing_topics(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    from monitor.devkit.broker import create_topics

    tag = uuid.uuid4().hex[:8]  # topics of its own, that do not exist yet
    missing = [f"chk-p-{tag}", f"chk-l-{tag}", f"chk-d-{tag}"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": broker.bootstrap,
                    "predictions_topic": missing[0],
                    "labels_topic": missing[1],
                    "dead_letter_topic": missing[2],
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
    assert result.returncode == 1 and f"missing topics: {', '.join(missing)}" in result.stdout
    create_topics(broker.bootstrap, dict.fromkeys(missing, 1))
    result = modelmon("check", "--config", str(cfg))
    assert result.returncode == 0, result.stdout
    assert f"kafka {broker.bootstrap}: ok" in result.stdout
