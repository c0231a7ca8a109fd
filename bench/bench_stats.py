"""Statistics and reference-building micro-benchmark (run on demand, never in the test suite):

    .venv/bin/python bench/bench_stats.py [--repeat 3]

From memory, no broker; best of ``--repeat`` runs (best rides out scheduler noise):

1. the drift kernels for 10 models x 20 features x 2 windows: 400 x (PSI + binned KS +
   chi-square) on ~1000-bin count vectors; target under 0.1 s (about 20 ms on a laptop;
   scipy.stats wrappers would cost ~0.2 s);
2. ``build_numeric_profile`` over one million values (30 % zeros, the rest log-normal);
   target well under a second (about 0.15 s on a laptop).

These were timing assertions in the unit tests (issue 14: timing is measured here, where a
loaded machine cannot fail the suite).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from monitor.reference.build import build_numeric_profile
from monitor.stats.drift import chi2_two_sample, ks_binned, psi


def best_of(repeat: int, run: Callable[[], None]) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def drift_kernels(repeat: int) -> float:
    g = np.random.default_rng(6)
    profile = build_numeric_profile(g.normal(size=100_000))
    windows = [
        np.bincount(profile.bin_index(g.normal(0.01 * i, 1, 2_000)), minlength=profile.n_bins)
        for i in range(400)
    ]
    ref = profile.counts

    def run() -> None:
        for win in windows:
            psi(ref, win)
            ks_binned(ref[:-1], win[:-1])
            chi2_two_sample(ref, win)

    return best_of(repeat, run)


def profile_build(repeat: int) -> float:
    g = np.random.default_rng(4)
    values = np.where(g.random(1_000_000) < 0.3, 0.0, g.lognormal(size=1_000_000))
    return best_of(repeat, lambda: build_numeric_profile(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for what, took, target in (
        ("400 x (psi + ks + chi2)", drift_kernels(args.repeat), 0.1),
        ("numeric profile of 1 M values", profile_build(args.repeat), 1.0),
    ):
        verdict = "ok" if took < target else "OVER TARGET"
        print(f"{what:32s} {took * 1000:8.1f} ms  (target < {target * 1000:.0f} ms: {verdict})")


if __name__ == "__main__":
    main()
