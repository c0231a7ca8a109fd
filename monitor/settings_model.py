"""A model's configuration: windows, policy, webhook, reference and features.

Each field's docstring is its meaning in the JSON Schema and in ``docs/configuration.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.settings_base import DEFAULT_DRIFT_ALPHA, Duration, Section
from monitor.vocabulary import FeatureKind, Task


class WindowSpec(Section):
    """A sliding event-time window, made of panes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """The window's label in metrics (`window="5m"`)."""
    length: Duration = Field(gt=0)
    """How much event time the window covers; a whole number of panes."""
    pane: Duration = Field(gt=0)
    """How far the window slides at a time (at most 10000 panes per window)."""

    @model_validator(mode="after")
    def _panes_tile_window(self) -> WindowSpec:
        ratio = self.length / self.pane
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"window {self.name}: length must be a whole number of panes")
        if round(ratio) > 10_000:
            raise ValueError(f"window {self.name}: more than 10000 panes; use a larger pane")
        return self


class PolicySettings(Section):
    """When a model is degraded (and recovered): rules over one window, N of M, hysteresis."""

    min_samples: int = Field(500, ge=1)
    """Predictions a window needs before it is evidence (below: no statistics, no decision)."""
    psi_max: float | None = Field(0.2, gt=0)
    """Breach when any feature's or the prediction's PSI exceeds this; null: off."""
    ks_alpha: float | None = Field(DEFAULT_DRIFT_ALPHA, gt=0, lt=1)
    """Level of the KS tests and the false discovery rate across features; the drift rule is off
    when both this and `chi2_alpha` are null."""
    chi2_alpha: float | None = Field(DEFAULT_DRIFT_ALPHA, gt=0, lt=1)
    """Level of the chi-square tests of categorical features when `fdr` is none."""
    fdr: Literal["benjamini_hochberg", "none"] = "benjamini_hochberg"
    """Correct for testing many features at once (benjamini_hochberg) or test each alone."""
    accuracy_min: float | None = Field(None, ge=0, le=1)
    """Breach when accuracy falls below this (classifiers; needs `min_labels`)."""
    breaches_to_fire: int = Field(3, ge=1)
    """Consecutive breaching evaluations before `model.degraded` (and clean ones to recover)."""
    cooldown: Duration = 6 * 3600.0
    """Least time between two `model.degraded` webhooks of one model."""
    window: str | None = None
    """Which window the rules read; default: the model's longest window."""
    f1_min: float | None = Field(None, ge=0, le=1)
    """Breach when F1 (positive class; macro for multiclass) falls below this."""
    roc_auc_min: float | None = Field(None, ge=0, le=1)
    """Breach when ROC AUC falls below this (binary classifiers)."""
    mae_max: float | None = Field(None, gt=0)
    """Breach when the mean absolute error exceeds this (regression)."""
    rmse_max: float | None = Field(None, gt=0)
    """Breach when the root mean squared error exceeds this (regression)."""
    estimated_accuracy_min: float | None = Field(None, ge=0, le=1)
    """Label-free: breach when the mean confidence falls below this (needs `min_samples` only)."""
    breaches_window: int | None = Field(None, ge=1)
    """Fire on `breaches_to_fire` breaches among the last this many evaluations (N of M);
    null: consecutive ones."""
    recovery_margin: float = Field(0.1, ge=0, lt=1)
    """Hysteresis: recovery needs each value inside its threshold by this fraction (`psi_max`
    0.2 recovers below 0.18, `accuracy_min` 0.9 above 0.91)."""
    min_labels: int = Field(200, ge=1)
    """Labels a window needs before the performance rules (other than estimated accuracy)
    read it."""
    ks_min_statistic: float = Field(0.1, ge=0, le=1)
    """Effect-size floor for numeric features: a significant KS test is drift only when D is at
    least this. At tens of thousands of predictions every test rejects on shifts nobody would
    act on; the effect size does not grow with traffic."""
    js_min_distance: float = Field(0.1, ge=0, le=1)
    """Effect-size floor for categorical features: the Jensen-Shannon distance (base 2, in
    [0, 1]) of the category frequencies."""
    missing_ratio_max: float | None = Field(None, gt=0, le=1)
    """Breach when a feature's missing ratio exceeds the reference's own by more than this."""
    out_of_range_ratio_max: float | None = Field(None, gt=0, le=1)
    """Breach when a numeric feature's share outside the reference [min, max] exceeds the
    reference's own by more than this."""
    unseen_ratio_max: float | None = Field(None, gt=0, le=1)
    """Breach when a categorical feature's share of categories absent from the reference
    exceeds the reference's own by more than this."""

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

    def min_effect(self, kind: FeatureKind) -> float:
        """The smallest effect size that counts as drift: KS D or Jensen-Shannon distance."""
        return self.ks_min_statistic if kind == "numeric" else self.js_min_distance

    def drifted(
        self,
        numeric: npt.NDArray[np.bool_],
        significant: npt.NDArray[np.bool_],
        effect: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """The one definition of a drifted feature: significant **and** material.

        Per feature (arrays, a model's features at once): ``numeric`` its kind, ``significant``
        the test's verdict at :meth:`detection_level` (after Benjamini-Hochberg when
        configured), ``effect`` the KS statistic (numeric) or the Jensen-Shannon distance
        (categorical), at least :meth:`min_effect` to count. NaN is never drift.

        >>> p = PolicySettings()
        >>> numeric = np.array([True, True, False, False])
        >>> significant = np.array([True, True, False, True])
        >>> p.drifted(numeric, significant, np.array([0.05, 0.1, 0.9, np.nan])).tolist()
        [False, True, False, False]
        """
        floor = np.where(numeric, self.min_effect("numeric"), self.min_effect("categorical"))
        return significant & (effect >= floor)

    @model_validator(mode="after")
    def _n_of_m(self) -> PolicySettings:
        if self.breaches_window is not None and self.breaches_window < self.breaches_to_fire:
            raise ValueError("breaches_window must be at least breaches_to_fire")
        return self


class WebhookSettings(Section):
    """Where a model's retraining webhooks go and how they are signed and retried.

    The signing secret comes from ``secret_env`` (the name of an environment variable),
    ``secret_file`` (e.g. a mounted Kubernetes Secret) or ``secret``; a value may hold two
    whitespace-separated secrets during a rotation (both sign). ``whsec_`` secrets are
    base64-decoded as the Standard Webhooks spec says.
    """

    url: str
    """http(s) URL the signed events are POSTed to; redirects are not followed."""
    secret_env: str | None = None
    """Name of the environment variable holding the signing secret."""
    secret_file: Path | None = None
    """File holding the signing secret (e.g. a mounted Kubernetes Secret)."""
    secret: SecretStr | None = None
    """The signing secret itself (prefer `secret_env` or `secret_file` outside development)."""
    allow_private_targets: bool = False
    """Allow loopback, private and link-local targets (refused by default)."""
    timeout: Duration = Field(15.0, gt=0)
    """Connect, write and read timeout of one attempt."""
    retry_schedule: list[Duration] | None = Field(None, min_length=1)
    """Delays between attempts (the last repeats); default 5s 30s 2m 10m 30m 1h. The first
    model that sets one decides for every endpoint."""
    retry_max_age: Duration = Field(24 * 3600.0, gt=0)
    """Give up (dead-letter the event in the outbox) this long after it was created."""

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


class BootstrapReference(Section):
    """Build the reference from the model's first N events instead of a file."""

    bootstrap_events: int = Field(ge=100)
    """Profile the model's first this many predictions as its reference."""
    rebaseline_on_version_change: bool = False
    """When a new model version appears (once per version; flips between known versions are no
    change), rebuild the reference from that version's first `bootstrap_events` predictions
    (the windows restart empty; the change is reported)."""


class ModelSettings(Section):
    """One monitored model."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    """The model's name, as the events' `model` field carries it; unique."""
    task: Task = "binary_classification"
    """binary_classification, multiclass_classification or regression."""
    positive_class: int | str = 1
    """The label of the positive class (binary classification)."""
    classes: list[int | str] | None = None
    """The class labels (multiclass classification; required there)."""
    reference: Path | BootstrapReference
    """A reference profile file (`modelmon reference build`; relative to the config file), or
    `{bootstrap_events: N}` to profile the first N events."""
    windows: list[WindowSpec] = Field(
        default_factory=lambda: [
            WindowSpec(name="5m", length=300, pane=10),
            WindowSpec(name="1h", length=3600, pane=60),
        ],
        min_length=1,
    )
    """The sliding windows statistics are computed over; default 5m (10s panes) and 1h (1m)."""
    allowed_lateness: Duration = 120.0
    """An event older than its partition's newest event time minus this is late (counted,
    not windowed)."""
    idle_partition_timeout: Duration = Field(60.0, gt=0)
    """A partition that delivered nothing for this long (wall time) stops holding the model's
    watermark back (label-join expiry follows the slowest active partition)."""
    label_ttl: Duration = 24 * 3600.0
    """How long (event time) a prediction waits for its label."""
    label_wait: Duration = 600.0
    """How long (event time) a label whose prediction has not arrived yet waits for it."""
    max_pending: int = Field(1_000_000, ge=1)
    """Predictions remembered for their labels (~40 B each); the oldest are evicted beyond it."""
    max_early_labels: int = Field(100_000, ge=1)
    """Labels waiting for their prediction; beyond it the oldest are dropped (as orphans)."""
    features: dict[str, FeatureKind] = Field(min_length=1)
    """Feature name → numeric or categorical."""
    policy: PolicySettings = PolicySettings()
    """When the model counts as degraded."""
    webhook: WebhookSettings | None = None
    """Where `model.degraded`/`recovered`/`version_changed` go; null: metrics only."""

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
