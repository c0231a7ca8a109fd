"""Data-quality ratios of one feature, from the counts the windows and the reference keep.

No extra pass over the data: a window's ratios come from its slot's cells
(:mod:`monitor.state.layout`), the reference's from its profile's bins and optional counts
(:mod:`monitor.reference.bins`). Every ratio's denominator is all the values (missing ones
included), so the window's and the reference's ratios compare like with like.
"""

from __future__ import annotations

import math

from monitor.reference.bins import NumericProfile, Profile
from monitor.snapshot import FeatureQuality
from monitor.state.layout import Slot
from monitor.state.window import IntArray


def window_quality(slot: Slot, cells: IntArray) -> FeatureQuality:
    """Ratios of one window's values: missing, type mismatch, out of range or unseen.

    >>> import numpy as np
    >>> p = NumericProfile(np.array([1.0]), np.zeros(3, np.int64), np.zeros(2, np.int64), 0.0)
    >>> window_quality(Slot("x", p, 0), np.array([5, 2, 1, 1, 1]))  # bins 0, 1, missing; cells
    FeatureQuality(missing=0.1, type_mismatch=0.1, out_of_range=0.3, unseen=None)
    """
    n_bins = slot.profile.n_bins
    n = int(cells.sum())
    if n == 0:
        nan = math.nan
        numeric = isinstance(slot.profile, NumericProfile)
        return FeatureQuality(nan, nan, nan if numeric else None, None if numeric else nan)
    missing = int(cells[n_bins - 1]) / n
    mismatch = int(cells[n_bins]) / n
    if isinstance(slot.profile, NumericProfile):
        # Above the range: the top value bin; below it: its own cell.
        outside = int(cells[n_bins - 2]) + int(cells[n_bins + 1])
        return FeatureQuality(missing, mismatch, out_of_range=outside / n)
    return FeatureQuality(missing, mismatch, unseen=int(cells[n_bins - 2]) / n)


def reference_quality(profile: Profile) -> FeatureQuality:
    """The same ratios over the reference rows the profile was built from.

    >>> import numpy as np
    >>> from monitor.reference.bins import CategoricalProfile
    >>> reference_quality(CategoricalProfile(("a",), np.array([6, 1, 3]), type_mismatch=1))
    FeatureQuality(missing=0.2, type_mismatch=0.1, out_of_range=None, unseen=0.1)
    """
    rows = int(profile.counts.sum())
    if rows == 0:
        nan = math.nan
        numeric = isinstance(profile, NumericProfile)
        return FeatureQuality(nan, nan, nan if numeric else None, None if numeric else nan)
    # The missing bin also holds the mismatched values, which are counted on their own.
    missing = (int(profile.counts[-1]) - profile.type_mismatch) / rows
    mismatch = profile.type_mismatch / rows
    if isinstance(profile, NumericProfile):
        return FeatureQuality(missing, mismatch, out_of_range=profile.out_of_range / rows)
    return FeatureQuality(missing, mismatch, unseen=int(profile.counts[-2]) / rows)
