"""Reference profile: the binned picture of the training data that windows are compared with.

A :class:`ReferenceProfile` holds one per-feature profile (:mod:`monitor.reference.bins`) per
configured feature, plus one for the prediction. Profiles are built once from a training file
(``modelmon reference build``, see :mod:`monitor.reference.build`) and saved as JSON carrying a
sha256 content hash, which :meth:`ReferenceProfile.load` checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor.atomic import atomic_write
from monitor.reference.bins import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    ReferenceProfileError,
    json_field,
    profile_from_dict,
)
from monitor.vocabulary import TASKS

FORMAT_VERSION = 1


def compute_content_hash(
    model: str,
    task: str,
    rows: int,
    features: Mapping[str, Profile],
    prediction: Profile | None,
) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of a profile's content."""
    payload = {
        "model": model,
        "task": task,
        "rows": rows,
        "features": {name: p.to_dict() for name, p in features.items()},
        "prediction": None if prediction is None else prediction.to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything a model's windows are compared with; saved as JSON (see :meth:`save`)."""

    model: str
    task: str
    rows: int
    features: Mapping[str, Profile]
    prediction: Profile | None
    content_hash: str

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ReferenceProfileError(
                f"task must be one of {', '.join(TASKS)}; got {self.task!r}"
            )
        if (
            isinstance(self.rows, bool)
            or not isinstance(self.rows, int | np.integer)
            or self.rows < 0
        ):
            raise ReferenceProfileError(f"rows must be a non-negative integer, got {self.rows!r}")
        object.__setattr__(self, "rows", int(self.rows))
        object.__setattr__(self, "features", dict(self.features))
        named = [(f"feature {k!r}", p) for k, p in self.features.items()]
        for where, profile in [*named, ("prediction", self.prediction)]:
            if profile is None:
                continue
            if not isinstance(profile, NumericProfile | CategoricalProfile):
                raise ReferenceProfileError(f"{where}: not a NumericProfile or CategoricalProfile")
            # Every reference row lands in exactly one bin (possibly the missing one).
            if int(profile.counts.sum()) != self.rows:
                raise ReferenceProfileError(
                    f"{where}: counts sum to {int(profile.counts.sum())}, expected rows={self.rows}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "task": self.task,
            "rows": self.rows,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        """Validate and rebuild a profile; raise ReferenceProfileError naming the problem."""
        if not isinstance(d, Mapping):
            raise ReferenceProfileError("expected a JSON object at the top level")
        if d.get("format_version") != FORMAT_VERSION:
            raise ReferenceProfileError(
                f"unsupported format_version {d.get('format_version')!r} "
                f"(expected {FORMAT_VERSION})"
            )
        model = json_field(d, "model", str)
        task = json_field(d, "task", str)
        rows = json_field(d, "rows", int)
        raw_features = json_field(d, "features", dict)
        features = {
            str(name): profile_from_dict(raw, f"feature {name!r}")
            for name, raw in raw_features.items()
        }
        raw_prediction = json_field(d, "prediction", dict, nullable=True)
        prediction = (
            None if raw_prediction is None else profile_from_dict(raw_prediction, "prediction")
        )
        stored = json_field(d, "content_hash", str)
        profile = cls(model, task, rows, features, prediction, stored)  # validates the content
        actual = compute_content_hash(model, task, rows, features, prediction)
        if actual != stored:
            raise ReferenceProfileError(
                f"content hash mismatch (stored {stored[:12]}…, computed {actual[:12]}…): the "
                "profile was modified or corrupted; rebuild it with `modelmon reference build`"
            )
        return profile

    def save(self, path: Path | str) -> None:
        """Write the profile as JSON atomically (temp file, fsync, rename)."""
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"
        atomic_write(Path(path), text.encode("utf-8"), private=False)  # shared, like its config

    @classmethod
    def load(cls, path: Path | str) -> ReferenceProfile:
        """Read and validate a profile written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ReferenceProfileError(
                f"cannot read reference profile {path}: {exc.strerror}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ReferenceProfileError(f"reference profile {path} is not UTF-8 text") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReferenceProfileError(
                f"reference profile {path} is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}); was it truncated?"
            ) from None
        try:
            return cls.from_dict(data)
        except ReferenceProfileError as exc:
            raise ReferenceProfileError(f"reference profile {path}: {exc}") from None
