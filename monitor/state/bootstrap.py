"""Bootstrapped references: the predictions buffered until a model's reference can be built.

Pure. The buffer keeps only configured features and is bounded in bytes
(:data:`BOOTSTRAP_MAX_BYTES`, estimated by :func:`footprint`): past it, the reference is built
from the events buffered so far rather than growing memory and the checkpoint further.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.events import Prediction
from monitor.reference.build import build_reference
from monitor.reference.profile import ReferenceProfile
from monitor.settings import ModelSettings
from monitor.state import restore_checks as checks
from monitor.vocabulary import FeatureKind, fits_kind

#: What a bootstrap buffer may hold. It keeps only the configured features, yet scores and
#: strings come from producers.
BOOTSTRAP_MAX_BYTES = 32 * 2**20


def footprint(p: Prediction) -> int:
    """Rough bytes a buffered prediction holds (its strings, numbers and containers).

    >>> footprint(Prediction("a", "m", None, 0.0, {"x": 1.0, "c": "abc"}, 1, 0.5))
    236
    """
    n = 200 + len(p.id) + len(p.version or "")
    for v in p.features.values():
        n += len(v) if isinstance(v, str) else 16
    n += len(p.prediction) if isinstance(p.prediction, str) else 16
    if isinstance(p.score, dict):
        n += sum(len(k) + 16 for k in p.score)
    return n


def slim(kinds: Mapping[str, FeatureKind], p: Prediction) -> Prediction:
    """``p`` as the buffer keeps it: configured features (``kinds``) only, a wrong-typed value
    replaced by a shallow stand-in of a wrong type too (a value nested 1,000 deep would not
    serialise into the checkpoint), so it is still counted as a type mismatch.

    >>> p = Prediction("a", "m", None, 0.0, {"x": {"y": 1}, "c": [[1]], "z": 1}, 1, None)
    >>> slim({"x": "numeric", "c": "categorical"}, p).features
    {'x': '<type mismatch>', 'c': ['<type mismatch>']}
    """
    features = {}
    for name, kind in kinds.items():
        if name in p.features:
            value = p.features[name]
            features[name] = value if fits_kind(value, kind) else _STAND_IN[kind]
    return p._replace(features=features)


#: Shallow values that do not fit their kind (a string is not a number; a list is no category).
_STAND_IN: dict[str, object] = {"numeric": "<type mismatch>", "categorical": ["<type mismatch>"]}


def bootstrap_reference(cfg: ModelSettings, preds: Sequence[Prediction]) -> ReferenceProfile:
    """Build a reference profile from a model's first events (``reference.bootstrap_events``).

    A feature value of the wrong type is missing in the profile and counted as a mismatch.
    """
    data: dict[str, list[object]] = {}
    mismatched: dict[str, int] = {}
    for name, kind in cfg.features.items():
        values = [p.features.get(name) for p in preds]
        data[name] = [v if fits_kind(v, kind) else None for v in values]
        mismatched[name] = sum(v is None for v in data[name]) - sum(v is None for v in values)
    if cfg.task == "binary_classification":
        scores = [p.score if isinstance(p.score, float) else None for p in preds]
        if any(s is not None for s in scores):
            data["score"] = list(scores)
    data["prediction"] = [p.prediction for p in preds]
    return build_reference(cfg.name, cfg.task, data, dict(cfg.features), type_mismatch=mismatched)


def restore_prediction(cfg: ModelSettings, raw: object) -> Prediction:
    """A buffered bootstrap prediction from a checkpoint, typed as the decoder types them.

    Only configured features are kept, as :func:`slim` keeps them (a JSON scalar, or the
    shallow stand-in of a type mismatch); the prediction must be a JSON scalar.
    """
    d = checks.mapping(raw, f"model {cfg.name} bootstrap event")
    if set(d) != set(Prediction._fields):
        raise ValueError(f"model {cfg.name}: a bootstrap event has other fields")
    raw_features = checks.mapping(d["features"], "bootstrap event features")
    features = {k: raw_features.get(k) for k in cfg.features if k in raw_features}
    stand_ins = list(_STAND_IN.values())
    if not all(_scalar(v) or v in stand_ins for v in features.values()) or not _scalar(
        d["prediction"]
    ):
        raise ValueError(f"model {cfg.name}: a bootstrap event holds a non-scalar value")
    score = d["score"]
    if isinstance(score, dict):
        score = {str(k): checks.number(v, "bootstrap score") for k, v in score.items()}
    elif score is not None:
        score = checks.number(score, "bootstrap score")
    return Prediction(
        id=checks.text(d["id"], "bootstrap event id"),
        model=cfg.name,
        version=checks.optional_text(d["version"], "bootstrap event version"),
        timestamp=checks.number(d["timestamp"], "bootstrap event timestamp"),
        features=features,
        prediction=d["prediction"],
        score=score,
    )


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float)
