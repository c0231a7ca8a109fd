"""Configuration: YAML + env, durations, and one clear line naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.settings import ConfigError, parse_duration
from monitor.settings_loader import load_settings
from tests.support import REPO_ROOT

BASE = """
kafka: {bootstrap_servers: "broker:9092"}
models:
  - name: fraud
    reference: ref.json
    windows: [{name: 5m, length: 5m, pane: 10s}, {name: 1h, length: 1h, pane: 1m}]
    features: {amount: numeric, country: categorical}
    webhook: {url: "https://retrain.example.com/hook", secret: s3cr3t-value}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("24h", 86400.0), (30, 30.0), ("250ms", 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", True, "", "1y"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_file_values_and_defaults(cfg: Path) -> None:
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "broker:9092"
    assert s.kafka.group_id == "modelmon"
    m = s.model("fraud")
    assert [w.length for w in m.windows] == [300.0, 3600.0]
    assert m.policy.cooldown == 6 * 3600.0
    assert m.longest_window == 3600.0


def test_env_overrides_file_sections_and_models(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("MODELMON_HTTP__PORT", "9200")
    monkeypatch.setenv("MODELMON_MODELS__FRAUD__POLICY__PSI_MAX", "0.3")
    monkeypatch.setenv("MODELMON_MODELS__0__ALLOWED_LATENESS", "5m")
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "broker:9092"  # the rest of the section is kept
    assert s.kafka.group_id == "from-env"
    assert s.http.port == 9200
    assert s.model("fraud").policy.psi_max == 0.3
    assert s.model("fraud").allowed_lateness == 300.0


@pytest.mark.parametrize(
    ("patch", "names"),
    [
        ("kafka: {bootstrap_servers: x, bogus: 1}", "kafka.bogus"),
        ("http: {port: 70000}", "http.port"),
        ("evaluation: {interval: soon}", "evaluation.interval"),
        ("state: {checkpoint_interval: -5s}", "state.checkpoint_interval"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, patch: str, names: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace('kafka: {bootstrap_servers: "broker:9092"}', patch))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert names in str(err.value)
    assert "\n" not in str(err.value)


def test_group_mode_takes_either_client(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    patch = "kafka: {bootstrap_servers: x, client: confluent}"
    path.write_text(
        "coordination: {enabled: true}\n"
        + BASE.replace('kafka: {bootstrap_servers: "broker:9092"}', patch)
    )
    assert load_settings(path).kafka.client == "confluent"


def test_bad_model_value_names_the_model_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace("amount: numeric", "amount: numberish"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.features\.amount"):
        load_settings(path)


def test_window_must_be_whole_panes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE.replace("pane: 10s", "pane: 7s"))
    with pytest.raises(ConfigError, match="whole number of panes"):
        load_settings(path)


def test_unknown_model_in_env_is_an_error(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMON_MODELS__NOPE__POLICY__PSI_MAX", "0.3")
    with pytest.raises(ConfigError, match="MODELMON_MODELS__NOPE"):
        load_settings(cfg)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.yaml"):
        load_settings(tmp_path / "no-such.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_secrets_are_never_echoed(tmp_path: Path, cfg: Path) -> None:
    s = load_settings(cfg)
    hook = s.model("fraud").webhook
    assert hook is not None and hook.secret is not None
    assert "s3cr3t-value" not in repr(s) and "s3cr3t-value" not in str(s.model_dump())
    path = tmp_path / "c2.yaml"
    path.write_text(BASE.replace("secret: s3cr3t-value", "secret: [s3cr3t-value]"))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert "s3cr3t-value" not in str(err.value)


def test_shipped_configs_validate() -> None:
    root = REPO_ROOT / "config"
    for path in sorted(root.glob("*.yaml")):
        assert load_settings(path).models, path


def test_time_and_dead_letter_limits(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(cfg)
    assert (s.time.max_future_skew, s.kafka.dead_letter_max_bytes) == (300.0, 900_000)
    monkeypatch.setenv("MODELMON_TIME__MAX_FUTURE_SKEW", "90s")
    monkeypatch.setenv("MODELMON_KAFKA__DEAD_LETTER_MAX_BYTES", "500000")
    s = load_settings(cfg)
    assert (s.time.max_future_skew, s.kafka.dead_letter_max_bytes) == (90.0, 500_000)
    monkeypatch.setenv("MODELMON_KAFKA__DEAD_LETTER_MAX_BYTES", "1000")
    with pytest.raises(ConfigError, match=r"kafka\.dead_letter_max_bytes"):
        load_settings(cfg)


@pytest.mark.parametrize(
    ("patch", "names"),
    [
        ("kafka: {bootstrap_servers: x, group_id: null}", "needs kafka.group_id"),
        (
            "coordination: {enabled: true, flush_interval: 0s}\nkafka: {bootstrap_servers: x}",
            "flush_interval",
        ),
    ],
)
def test_group_mode_needs_a_group(tmp_path: Path, patch: str, names: str) -> None:
    path = tmp_path / "c.yaml"
    text = BASE.replace('kafka: {bootstrap_servers: "broker:9092"}', patch)
    if "coordination" not in patch:
        text = "coordination: {enabled: true}\n" + text
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert names in str(err.value)
    assert "\n" not in str(err.value)


def test_group_mode_refuses_a_bootstrapped_reference(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = BASE.replace("reference: ref.json", "reference: {bootstrap_events: 100}")
    path.write_text("coordination: {enabled: true}\n" + text)
    with pytest.raises(ConfigError, match=r"models\[fraud\]\.reference: .*reference build"):
        load_settings(path)


def test_group_mode_defaults_and_state_topic(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("coordination: {enabled: true}\n" + BASE)
    s = load_settings(path)
    assert s.coordination.flush_interval == 5.0
    assert s.state_topic == "modelmon.modelmon-state"  # <group_id>.modelmon-state
    path.write_text("coordination: {enabled: true, topic: t}\n" + BASE)
    assert load_settings(path).state_topic == "t"
