"""Configuration schema: frozen pydantic sections, validation only.

Nothing here opens a connection or a file (:mod:`monitor.settings_loader` reads the YAML and the
environment), so ``modelmon validate-config`` and the daemon's start fail on the same errors,
before any I/O. The service's sections live here, a model's in :mod:`monitor.settings_model`,
what they share in :mod:`monitor.settings_base`; every name is importable from here. A field's
docstring is its meaning in the JSON Schema and in ``docs/configuration.md``.

Environment variables override the file, nested with ``__``::

    MODELMON_KAFKA__BOOTSTRAP_SERVERS=kafka-0:9092
    MODELMON_MODELS__FRAUD__POLICY__PSI_MAX=0.3     # a model is addressed by name (or index)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.settings_base import (
    DEFAULT_DRIFT_ALPHA,
    ENV_PREFIX,
    ConfigError,
    Duration,
    Section,
    parse_duration,
)
from monitor.settings_model import (
    BootstrapReference,
    ModelSettings,
    PolicySettings,
    WebhookSettings,
    WindowSpec,
)

__all__ = [
    "DEFAULT_DRIFT_ALPHA",
    "ENV_PREFIX",
    "BootstrapReference",
    "ConfigError",
    "CoordinationSettings",
    "Duration",
    "EvaluationSettings",
    "FieldMapping",
    "HttpSettings",
    "KafkaSettings",
    "ModelSettings",
    "PolicySettings",
    "Settings",
    "ShutdownSettings",
    "StateSettings",
    "TimeSettings",
    "WebhookSettings",
    "WindowSpec",
    "parse_duration",
]


class KafkaSettings(Section):
    """Connection and topics; security fields are named as kafka-python names them."""

    client: Literal["kafka-python", "confluent"] = "kafka-python"
    """Kafka client library: kafka-python (pure Python, the default) or confluent
    (confluent-kafka on librdkafka: several times faster; needs the `confluent` extra,
    `pip install 'modelmon[confluent]'`). Same semantics and the same settings either way."""
    bootstrap_servers: str = "localhost:9092"
    """Brokers to start from, comma-separated host:port."""
    group_id: str | None = "modelmon"
    """Consumer group; replicas share it. null only for tools and benchmarks (no commits)."""
    group_instance_id: str | None = None
    """Static group membership (KIP-345): a restarted replica with the same id takes its
    partitions back without a rebalance. Give each replica its own stable value (e.g. the pod
    name), or leave it unset."""
    client_id: str = "modelmon"
    """Client id the brokers log and quota by."""
    predictions_topic: str = "predictions"
    """Topic of the prediction events (key it by prediction id)."""
    labels_topic: str = "labels"
    """Topic of the ground-truth labels (key it by prediction id, co-partitioned)."""
    dead_letter_topic: str = "modelmon-dlq"
    """Where undecodable records go, with headers saying why."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How to talk to the brokers."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."""
    sasl_plain_username: str | None = None
    """SASL user name."""
    sasl_plain_password: SecretStr | None = None
    """SASL password; set MODELMON_KAFKA__SASL_PLAIN_PASSWORD rather than writing it here."""
    ssl_cafile: Path | None = None
    """CA bundle to verify the brokers with."""
    ssl_certfile: Path | None = None
    """Client certificate (mutual TLS)."""
    ssl_keyfile: Path | None = None
    """Client certificate's key."""
    ssl_password: SecretStr | None = None
    """Password of the client key."""
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    """Where a new consumer group starts reading."""
    max_poll_records: int = Field(2000, ge=1, le=100_000)
    """Records per batch; bounds memory under a burst."""
    poll_timeout: Duration = 0.5
    """How long one poll waits for records."""
    fetch_max_wait_ms: int = Field(100, ge=0, le=10_000)
    """How long the broker may hold a fetch waiting for data. Lower than kafka-python's 500 ms:
    a fetch spanning an idle partition (a quiet labels topic) can wait that long even while the
    predictions partition has data."""
    session_timeout_ms: int = Field(10_000, ge=1000)
    """A replica silent this long loses its partitions."""
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    """How often the consumer tells the group it is alive."""
    max_poll_interval_ms: int = Field(60_000, ge=1000)
    """The longest a replica may go between two polls before the group drops it; also how
    long a rebalance waits for every member to rejoin (the client default, 5 minutes, stalls a
    restarted group that long when a member left without saying so)."""
    request_timeout_ms: int = Field(30_000, ge=1000)
    """How long one request to a broker may take."""
    dead_letter_max_bytes: int = Field(900_000, ge=64 * 1024, le=100 * 2**20)
    """A dead-letter copy (key + value + headers) larger than this is truncated, with headers
    saying so and giving the original size; below the broker's default 1 MiB message limit,
    which a default producer's 1 MiB record can exceed once the explaining headers are added."""


class HttpSettings(Section):
    """Where the endpoints listen and how much a client may take (see ``serve/connections``)."""

    host: str = "0.0.0.0"
    """Address to listen on; 0.0.0.0 serves every interface, 127.0.0.1 only this host."""
    port: int = Field(9108, ge=0, le=65535)
    """Port of /metrics, /healthz, /readyz, /api/v1/status and /."""
    web_config_file: Path | None = None
    """TLS and basic auth, in the Prometheus exporter-toolkit format (node_exporter's
    --web.config.file); relative paths inside it are relative to that file."""
    idle_timeout: Duration = Field(10.0, gt=0)
    """A connection that sends or takes nothing for this long is closed."""
    request_timeout: Duration = Field(30.0, gt=0)
    """A connection is closed this long after it was accepted, whatever it is doing."""
    max_connections: int = Field(8, ge=1, le=1024)
    """Connections served at once (one thread each); more wait in the listen backlog."""


class StateSettings(Section):
    """Where the checkpoint and the webhook outbox live."""

    dir: Path = Path("/var/lib/modelmon")
    """Directory of the checkpoint and the webhook outbox; must be writable."""
    checkpoint_interval: Duration = 30.0
    """How often the state is checkpointed (and the offsets it covers committed)."""


class EvaluationSettings(Section):
    """How often the windows are evaluated."""

    interval: Duration = Field(15.0, gt=0)
    """Time between two evaluations (statistics, policy, webhooks)."""
    liveness_timeout: Duration = Field(120.0, gt=0)
    """/healthz fails when the consume loop has not made progress for this long."""


class TimeSettings(Section):
    """How far event time may run ahead of the wall clock."""

    max_future_skew: Duration = 300.0
    """A record dated further ahead than wall clock + this is dead-lettered
    (`future_timestamp`), so one bad clock cannot move event time into the future and make every
    later event late; event times restored from a checkpoint are clamped to the wall clock."""


class ShutdownSettings(Section):
    """How long stopping may take."""

    deadline: Duration = Field(20.0, gt=0)
    """The final checkpoint, commit and close must finish within this; keep Kubernetes'
    terminationGracePeriodSeconds above it."""


class CoordinationSettings(Section):
    """Group mode: several replicas in one consumer group give one global truth.

    Each replica keeps its state per input partition and publishes it to an internal topic;
    every replica merges all partitions' state into global windows; the owner of partition 0
    of the predictions topic acts (policy, webhooks, model statistics on /metrics). Needs
    co-partitioned input: the labels topic has as many partitions as the predictions topic and
    a label goes to the partition number of its prediction (key both by the prediction id).
    """

    enabled: bool = False
    """Turn group mode on (one replica or many). Off: each process is on its own, as a single
    replica always was; several replicas off each export their own partial view."""
    topic: str | None = None
    """The internal state topic (one partition; created if missing, `compact,delete`);
    default `<kafka.group_id>.modelmon-state`."""
    flush_interval: Duration = Field(5.0, gt=0)
    """How often each replica publishes its partitions' changed state; input offsets are
    committed only once the broker has acknowledged it."""
    replication_factor: int = Field(-1, ge=-1)
    """Replication of the internal topic when modelmon creates it (-1: the broker's default)."""
    retention: Duration = Field(0.0, ge=0)
    """How long the internal topic keeps records (0: the longest window or label TTL of any
    model, plus an hour). A partition idle for longer restarts from its committed offsets."""


class FieldMapping(Section):
    """Where each event field lives in the producer's JSON (dots address nested keys)."""

    id: str = "id"
    """The prediction id; a label carries the same one."""
    model: str = "model"
    """The model's name."""
    version: str = "version"
    """The model's version (optional in events)."""
    timestamp: str = "timestamp"
    """Event time: epoch seconds or RFC 3339; absent: the Kafka record timestamp."""
    features: str = "features"
    """The object of feature values."""
    prediction: str = "prediction"
    """The predicted class or value."""
    score: str = "score"
    """The positive-class probability, or {class: probability} for multiclass."""
    label: str = "label"
    """The ground truth, in label events."""


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`~monitor.settings_loader.load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    """The brokers and topics."""
    fields: FieldMapping = FieldMapping()
    """Where each field sits in the events' JSON."""
    http: HttpSettings = HttpSettings()
    """The HTTP endpoints."""
    state: StateSettings = StateSettings()
    """The checkpoint and the outbox."""
    evaluation: EvaluationSettings = EvaluationSettings()
    """The evaluation tick."""
    shutdown: ShutdownSettings = ShutdownSettings()
    """Stopping."""
    time: TimeSettings = TimeSettings()
    """Event time against the wall clock."""
    coordination: CoordinationSettings = CoordinationSettings()
    """Group mode: one truth and one acting replica across a consumer group."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Least severe log line written."""
    models: list[ModelSettings] = Field(min_length=1)
    """The monitored models."""

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for m in models:
            if m.name in seen:  # named, so the fix is obvious in a long config
                raise ValueError(f"model names must be unique: {m.name!r} appears twice")
            seen.add(m.name)
        return models

    @model_validator(mode="after")
    def _group_mode(self) -> Settings:
        if not self.coordination.enabled:
            return self
        if self.kafka.group_id is None:
            raise ValueError("coordination.enabled needs kafka.group_id (the replicas' group)")
        for m in self.models:
            if isinstance(m.reference, BootstrapReference):
                # Bootstrapped per partition, replicas would compare against different profiles.
                raise ValueError(
                    f"models[{m.name}].reference: coordination.enabled needs a reference file "
                    "(build one with: modelmon reference build)"
                )
        return self

    @property
    def state_topic(self) -> str:
        """The internal topic of group mode."""
        return self.coordination.topic or f"{self.kafka.group_id}.modelmon-state"

    def model(self, name: str) -> ModelSettings:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML comes in as init kwargs (see load_settings); env must win over it, so the
        # env source goes first. `models` is a list, which pydantic-settings cannot address by
        # index from env: load_settings folds MODELMON_MODELS__* into the list itself.
        return (_EnvWithoutModels(settings_cls), init_settings, file_secret_settings)


class _EnvWithoutModels(EnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if isinstance(data.get("models"), dict):
            del data["models"]
        return data
