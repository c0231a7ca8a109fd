"""Configuration schema: frozen pydantic sections, validation only.

Nothing here opens a connection or a file (:mod:`monitor.settings_loader` reads the YAML and the
environment), so ``modelmon validate-config`` and the daemon's start fail on the same errors,
before any I/O.

Environment variables override the file, nested with ``__``::

    MODELMON_KAFKA__BOOTSTRAP_SERVERS=kafka-0:9092
    MODELMON_MODELS__FRAUD__POLICY__PSI_MAX=0.3     # a model is addressed by name (or index)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.vocabulary import FeatureKind, Task

ENV_PREFIX = "MODELMON_"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Parse ``10s``, ``5m``, ``1h``, ``24h``, ``250ms``, ``2d`` or plain seconds into seconds.

    >>> parse_duration("5m"), parse_duration(30), parse_duration("1.5h")
    (300.0, 30.0, 5400.0)
    """
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or like 10s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r}: use seconds or e.g. 10s, 5m, 1h, 24h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Connection and topics; security fields are named as kafka-python names them."""

    bootstrap_servers: str = "localhost:9092"
    #: None only for tools and benchmarks: no group, no commits.
    group_id: str | None = "modelmon"
    #: Static group membership (KIP-345): a restarted replica with the same id takes its
    #: partitions back without a rebalance or waiting for its old session to expire. Give each
    #: replica its own stable value (e.g. the pod name), or leave it unset.
    group_instance_id: str | None = None
    client_id: str = "modelmon"
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    dead_letter_topic: str = "modelmon-dlq"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(2000, ge=1, le=100_000)
    poll_timeout: Duration = 0.5
    #: How long the broker may hold a fetch waiting for data. Lower than kafka-python's 500 ms
    #: because a fetch that spans an idle partition (a quiet labels topic) can wait that long
    #: even while the predictions partition has data (measured 6x slower on the test broker).
    fetch_max_wait_ms: int = Field(100, ge=0, le=10_000)
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    request_timeout_ms: int = Field(30_000, ge=1000)


class HttpSettings(_Section):
    """Where the endpoints listen and how much a client may take (see ``serve/connections``)."""

    #: 0.0.0.0 serves every interface: bind 127.0.0.1 to keep the endpoints on the host.
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)
    #: TLS and basic auth, in the Prometheus exporter-toolkit format (node_exporter's
    #: --web.config.file); relative paths inside it are relative to that file.
    web_config_file: Path | None = None
    #: A connection that sends or takes nothing for this long is closed.
    idle_timeout: Duration = Field(10.0, gt=0)
    #: A connection is closed this long after it was accepted, whatever it is doing.
    request_timeout: Duration = Field(30.0, gt=0)
    #: Connections served at once (one thread each); more wait in the listen backlog.
    max_connections: int = Field(8, ge=1, le=1024)


class StateSettings(_Section):
    dir: Path = Path("/var/lib/modelmon")
    checkpoint_interval: Duration = 30.0


class EvaluationSettings(_Section):
    interval: Duration = Field(15.0, gt=0)
    #: Liveness fails when the consume loop has not made progress for this long.
    liveness_timeout: Duration = Field(120.0, gt=0)


class ShutdownSettings(_Section):
    deadline: Duration = Field(20.0, gt=0)


class WindowSpec(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    length: Duration = Field(gt=0)
    pane: Duration = Field(gt=0)

    @model_validator(mode="after")
    def _panes_tile_window(self) -> WindowSpec:
        ratio = self.length / self.pane
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"window {self.name}: length must be a whole number of panes")
        if round(ratio) > 10_000:
            raise ValueError(f"window {self.name}: more than 10000 panes; use a larger pane")
        return self


#: The level drift tests run at when ``ks_alpha`` is unset (the drift rule is then off, but
#: ``modelmon_feature_drift_detected`` is still exported).
DEFAULT_DRIFT_ALPHA = 0.01


class PolicySettings(_Section):
    min_samples: int = Field(500, ge=1)
    psi_max: float | None = Field(0.2, gt=0)
    ks_alpha: float | None = Field(DEFAULT_DRIFT_ALPHA, gt=0, lt=1)
    chi2_alpha: float | None = Field(DEFAULT_DRIFT_ALPHA, gt=0, lt=1)
    fdr: Literal["benjamini_hochberg", "none"] = "benjamini_hochberg"
    accuracy_min: float | None = Field(None, ge=0, le=1)
    breaches_to_fire: int = Field(3, ge=1)
    cooldown: Duration = 6 * 3600.0
    #: Which window the rules read; default: the model's longest window.
    window: str | None = None
    f1_min: float | None = Field(None, ge=0, le=1)
    roc_auc_min: float | None = Field(None, ge=0, le=1)
    mae_max: float | None = Field(None, gt=0)
    rmse_max: float | None = Field(None, gt=0)
    #: Label-free (from scores), so it needs min_samples but not min_labels.
    estimated_accuracy_min: float | None = Field(None, ge=0, le=1)
    #: Fire on breaches_to_fire breaching evaluations among the last breaches_window ones
    #: (N of M); None: breaches_to_fire consecutive ones.
    breaches_window: int | None = Field(None, ge=1)
    #: Hysteresis. Recovery needs every rule back inside its threshold by this fraction:
    #: upper limits (psi_max, mae_max, rmse_max) x (1 - margin); lower limits on ratios keep
    #: (1 - margin) of their allowed shortfall from 1 (accuracy_min 0.9 -> 0.91).
    recovery_margin: float = Field(0.1, ge=0, lt=1)
    #: Performance rules other than estimated accuracy need this many labels in the window.
    min_labels: int = Field(200, ge=1)

    @property
    def fdr_level(self) -> float:
        """The level Benjamini-Hochberg controls across a model's features."""
        return self.ks_alpha if self.ks_alpha is not None else DEFAULT_DRIFT_ALPHA

    def detection_level(self, kind: FeatureKind) -> float:
        """The level a feature of this kind is declared drifted at.

        With Benjamini-Hochberg every feature's test runs at the one FDR level; without it, KS
        at ``ks_alpha`` and chi-square at ``chi2_alpha`` (each falling back to the FDR level).
        """
        if self.fdr == "benjamini_hochberg" or kind == "numeric" or self.chi2_alpha is None:
            return self.fdr_level
        return self.chi2_alpha

    @model_validator(mode="after")
    def _n_of_m(self) -> PolicySettings:
        if self.breaches_window is not None and self.breaches_window < self.breaches_to_fire:
            raise ValueError("breaches_window must be at least breaches_to_fire")
        return self


class WebhookSettings(_Section):
    """Where a model's retraining webhooks go and how they are signed and retried.

    The signing secret comes from ``secret_env`` (the name of an environment variable),
    ``secret_file`` (e.g. a mounted Kubernetes Secret) or ``secret``; a value may hold two
    whitespace-separated secrets during a rotation (both sign). ``whsec_`` secrets are
    base64-decoded as the Standard Webhooks spec says.
    """

    url: str
    secret_env: str | None = None
    secret_file: Path | None = None
    secret: SecretStr | None = None
    allow_private_targets: bool = False
    timeout: Duration = Field(15.0, gt=0)
    #: Delays between attempts (the last repeats); default 5s 30s 2m 10m 30m 1h.
    retry_schedule: list[Duration] | None = Field(None, min_length=1)
    #: Give up (dead-letter the event in the outbox) this long after it was created.
    retry_max_age: Duration = Field(24 * 3600.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        return url

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookSettings:
        given = [self.secret_env, self.secret_file, self.secret]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of secret_env, secret_file, secret")
        return self


class FieldMapping(_Section):
    """Where each event field lives in the producer's JSON (dots address nested keys)."""

    id: str = "id"
    model: str = "model"
    version: str = "version"
    timestamp: str = "timestamp"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    label: str = "label"


class BootstrapReference(_Section):
    """Build the reference from the model's first N events instead of a file."""

    bootstrap_events: int = Field(ge=100)
    #: When a new model version appears (monitor/state/versions: once per version, flips
    #: between known versions are no change), rebuild the reference from that version's first
    #: bootstrap_events predictions (the windows restart empty; the change is reported).
    rebaseline_on_version_change: bool = False


class ModelSettings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    task: Task = "binary_classification"
    positive_class: int | str = 1
    classes: list[int | str] | None = None
    reference: Path | BootstrapReference
    windows: list[WindowSpec] = Field(
        default_factory=lambda: [
            WindowSpec(name="5m", length=300, pane=10),
            WindowSpec(name="1h", length=3600, pane=60),
        ],
        min_length=1,
    )
    allowed_lateness: Duration = 120.0
    #: A partition that delivered nothing for this long (wall time) stops holding the model's
    #: watermark back (label-join expiry follows the slowest active partition).
    idle_partition_timeout: Duration = Field(60.0, gt=0)
    label_ttl: Duration = 24 * 3600.0
    #: How long (event time) a label whose prediction has not arrived yet waits for it.
    label_wait: Duration = 600.0
    #: Predictions remembered for their labels (~40 B each); the oldest are evicted beyond it.
    max_pending: int = Field(1_000_000, ge=1)
    max_early_labels: int = Field(100_000, ge=1)
    features: dict[str, FeatureKind] = Field(min_length=1)
    policy: PolicySettings = PolicySettings()
    webhook: WebhookSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSettings:
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name}: window names must be unique")
        if self.policy.window is not None and self.policy.window not in names:
            raise ValueError(f"model {self.name}: policy.window {self.policy.window!r} unknown")
        if self.task == "multiclass_classification" and not self.classes:
            raise ValueError(f"model {self.name}: multiclass_classification needs `classes`")
        return self

    @property
    def longest_window(self) -> float:
        return max(w.length for w in self.windows)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    fields: FieldMapping = FieldMapping()
    http: HttpSettings = HttpSettings()
    state: StateSettings = StateSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: list[ModelSettings] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        seen: set[str] = set()
        for m in models:
            if m.name in seen:  # named, so the fix is obvious in a long config
                raise ValueError(f"model names must be unique: {m.name!r} appears twice")
            seen.add(m.name)
        return models

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


class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the key."""
