"""``modelmon reference calibrate``: drift thresholds from the reference's own no-drift spread.

A window's expected size is its length times ``--rate`` (predictions per second), or
``--events`` for every window. For each feature (and the prediction) the command resamples the
reference (:mod:`monitor.state.calibrate`) and prints, per window, the PSI and effect-size
values that noise alone exceeds at the chosen false-alarm rate per evaluation; ``--format
yaml`` prints the ``policy:`` keys for the window the policy reads (the largest value over the
features, so that no feature alarms more often than the rate).
"""

from __future__ import annotations

import argparse
import math

from monitor.app import load_states
from monitor.cli.common import CommandError, load_model
from monitor.settings import ModelSettings
from monitor.state.calibrate import Calibration, calibrate
from monitor.state.layout import PREDICTION
from monitor.state.model_state import ModelState


def _model(args: argparse.Namespace) -> tuple[ModelSettings, ModelState]:
    settings, model = load_model(args.config, args.model)
    single = settings.model_copy(update={"models": [model]})
    state = load_states(single, base=args.config.resolve().parent)[model.name]
    if state.reference is None:
        raise CommandError(
            f"reference calibrate: model {model.name} builds its reference from its first "
            "events (bootstrap); calibrate needs a reference file (modelmon reference build)"
        )
    return model, state


def _check(args: argparse.Namespace) -> None:
    if not 0.0 < args.false_alarm_rate < 1.0:
        raise CommandError(
            f"reference calibrate: --false-alarm-rate {args.false_alarm_rate} must be "
            "between 0 and 1 (e.g. 0.01: one false alarm per 100 evaluations)"
        )
    if args.resamples < 10 or args.resamples > 100_000:
        raise CommandError(
            f"reference calibrate: --resamples {args.resamples} must be in [10, 100000]"
        )
    if args.resamples * args.false_alarm_rate < 1.0:
        raise CommandError(
            f"reference calibrate: --resamples {args.resamples} is too few for "
            f"--false-alarm-rate {args.false_alarm_rate}; give at least "
            f"{math.ceil(1.0 / args.false_alarm_rate)}"
        )
    if (args.rate is None) == (args.events is None):
        raise CommandError(
            "reference calibrate: give --rate (predictions per second; a window's size is its "
            "length times the rate) or --events (predictions per window), not both"
        )
    if args.rate is not None and not (args.rate > 0 and math.isfinite(args.rate)):
        raise CommandError(f"reference calibrate: --rate {args.rate} must be a positive number")
    if args.events is not None and not 1 <= args.events <= 10**9:
        raise CommandError(f"reference calibrate: --events {args.events} must be in [1, 1e9]")


def _up(value: float) -> float:
    """``value`` rounded *up* to 4 significant digits, so a printed threshold is never lower.

    >>> _up(0.00061234), _up(0.2), _up(0.0)
    (0.0006124, 0.2, 0.0)
    """
    if value <= 0.0:
        return value
    scale = 10.0 ** (4 - math.ceil(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def _fmt(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{_up(value):.4g}"


def cmd_reference_calibrate(args: argparse.Namespace) -> int:
    """Print the no-drift thresholds per window and feature (or the policy YAML)."""
    _check(args)
    model, state = _model(args)
    windows = [w for w in model.windows if args.window in (None, w.name)]
    if not windows:
        names = ", ".join(w.name for w in model.windows)
        raise CommandError(
            f"reference calibrate --window {args.window}: model {model.name} has no such "
            f"window (it has: {names})"
        )
    results: dict[str, list[Calibration]] = {}
    for w in windows:
        events = args.events if args.events is not None else round(w.length * args.rate)
        if events < 1:
            raise CommandError(
                f"reference calibrate: window {w.name} holds no predictions at --rate "
                f"{args.rate}; give a larger rate or --events"
            )
        rate, resamples = args.false_alarm_rate, args.resamples
        results[w.name] = calibrate(state.slots, events, rate, resamples, args.seed)
    if args.format == "yaml":
        policy_window = (
            args.window or model.policy.window or max(model.windows, key=lambda w: w.length).name
        )
        chosen = results.get(policy_window) or next(iter(results.values()))
        print(_yaml(model, chosen, args))
        return 0
    print(f"{'window':<10} {'predictions':>11}  {'feature':<24} {'kind':<11} "
          f"{'psi':>8} {'ks_statistic':>12} {'js_distance':>11}")  # fmt: skip
    for name, rows in results.items():
        for r in rows:
            feature = "(prediction)" if r.feature == PREDICTION else r.feature
            ks = r.effect if r.kind == "numeric" else None
            js = r.effect if r.kind == "categorical" else None
            print(
                f"{name:<10} {r.events:>11}  {feature:<24} {r.kind:<11} "
                f"{_fmt(r.psi):>8} {_fmt(ks):>12} {_fmt(js):>11}"
            )
        below = rows and rows[0].events < model.policy.min_samples
        if below:
            print(f"note: window {name} is below policy.min_samples and is not evaluated")
    print(
        f"no-drift thresholds: exceeded by noise alone in {args.false_alarm_rate:g} of "
        f"evaluations per feature ({args.resamples} resamples of the reference, seed {args.seed})"
    )
    return 0


def _yaml(model: ModelSettings, rows: list[Calibration], args: argparse.Namespace) -> str:
    """The ``policy:`` keys: the largest threshold over the features (and the prediction)."""

    def largest(values: list[float | None]) -> float | None:
        found = [v for v in values if v is not None and not math.isnan(v)]
        return max(found) if found else None

    keys = {
        "psi_max": largest([r.psi for r in rows]),
        "ks_min_statistic": largest([r.effect for r in rows if r.kind == "numeric"]),
        "js_min_distance": largest(
            [r.effect for r in rows if r.kind == "categorical" and r.feature != PREDICTION]
        ),
    }
    events = rows[0].events if rows else 0
    lines = [
        f"# modelmon reference calibrate: model {model.name}, {events} predictions per window, "
        f"false-alarm rate {args.false_alarm_rate:g} per evaluation and feature",
        "# a value below the configured one alarms on changes too small to act on: keep the larger",
        "policy:",
    ]
    lines += [
        f"  {key}: {_fmt(value)}  # configured: {getattr(model.policy, key)}"
        for key, value in keys.items()
        if value is not None
    ]
    return "\n".join(lines)
