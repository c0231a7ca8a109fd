"""The webhook body's ``data`` object (DESIGN §2.4) for a policy finding.

The policy decides and never formats; the actions turn a finding into this object, adding the
Kafka offset ranges the evidence covers, which only the app knows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from monitor.alerting.policy import Finding
from monitor.snapshot import WindowResult

#: ``{topic_role: {partition: [first, last]}}``
OffsetRanges = Mapping[str, Mapping[int | str, Sequence[int]]]


def finding_data(
    finding: Finding, kafka: OffsetRanges | None = None, window: WindowResult | None = None
) -> dict[str, Any]:
    """The webhook ``data`` object of ``finding``.

    Parameters
    ----------
    finding
        A policy transition or version change.
    kafka
        Offset ranges the evidence covers, ``{topic_role: {partition: [first, last]}}``
        (omitted from the body when None).
    window
        The evaluated window the finding read: its features' most frequent unseen categories
        go in as ``unseen_categories`` (features that have any; omitted when None).
    """
    data: dict[str, Any] = {
        "model": finding.model,
        "version": finding.version,
        "window": finding.window,
        "window_start": rfc3339(finding.window_start),
        "window_end": rfc3339(finding.window_end),
        "predictions": finding.predictions,
        "labels": finding.labels,
        "reasons": [asdict(r) for r in finding.reasons],
        "top_drifted_features": [
            {"feature": f, "psi": psi, "drift_detected": hit} for f, psi, hit in finding.top_drifted
        ],
    }
    if finding.type == "model.version_changed":
        data["previous_version"] = finding.previous_version
    if window is not None:
        data["unseen_categories"] = [
            {
                "feature": f.feature,
                "values": [asdict(v) for v in f.unseen_categories.values],
                "error": f.unseen_categories.error,
            }
            for f in window.features
            if f.unseen_categories is not None and f.unseen_categories.values
        ]
    if kafka is not None:
        data["kafka"] = {
            role: {str(p): [int(v) for v in rng] for p, rng in parts.items()}
            for role, parts in kafka.items()
        }
    return data


def rfc3339(t: float | None) -> str | None:
    """UTC RFC 3339 with milliseconds when there are any.

    >>> rfc3339(0.0), rfc3339(1.25), rfc3339(None)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.250Z', None)
    """
    if t is None:
        return None
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    millis = round((t - math.floor(t)) * 1000)
    return stamp + (f".{millis:03d}Z" if 0 < millis < 1000 else "Z")
