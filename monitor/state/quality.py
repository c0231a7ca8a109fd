"""Data-quality ratios of one feature, from the counts the windows and the reference keep.

No extra pass over the data: a window's ratios come from its slot's cells
(:mod:`monitor.state.layout`; computed for every feature at once by
:mod:`monitor.state.drift_plan`), the reference's from its profile's bins and optional counts
(:mod:`monitor.reference.bins`, here). Every ratio's denominator is all the values (missing ones
included), so the window's and the reference's ratios compare like with like.
"""

from __future__ import annotations

import math

from monitor.reference.bins import NumericProfile, Profile
from monitor.snapshot import FeatureQuality


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
