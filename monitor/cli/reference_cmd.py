"""``modelmon reference build``: a reference profile from training data, with or without a config.

With ``--config`` the model's declared features and task are used; without one each column's
kind is inferred from the data (numbers → numeric, anything else → categorical) and said, so
the person can check it and paste the ``features:`` line into their config.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.cli.common import CommandError, load_model
from monitor.reference.bins import ReferenceProfileError
from monitor.reference.build import build_reference
from monitor.reference.infer import infer_kinds
from monitor.reference.training_data import read_training_file
from monitor.vocabulary import FeatureKind, Task


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [n.strip() for n in value.split(",") if n.strip()]


def _from_config(args: argparse.Namespace) -> tuple[Task, dict[str, FeatureKind]]:
    for flag, value in (("--features", args.features), ("--categorical", args.categorical)):
        if value is not None:
            raise CommandError(
                f"reference build: {flag} is for building without --config; the config "
                "already declares the features"
            )
    _, model = load_model(args.config, args.model)
    if args.task is not None and args.task != model.task:
        raise CommandError(
            f"reference build: --task {args.task} but {args.config} says {model.task}; "
            "drop --task or fix the config"
        )
    return model.task, dict(model.features)


def _inferred(args: argparse.Namespace) -> dict[str, FeatureKind]:
    columns = read_training_file(args.input)  # every cell that looks like a number is one
    found = infer_kinds(columns, _names(args.features), _names(args.categorical) or ())
    print(f"{args.input}: inferred {found.describe()} (change with --features, --categorical)")
    print(f"for the model's config: {found.config_snippet()}")
    return found.kinds


def cmd_reference_build(args: argparse.Namespace) -> int:
    """Build and save the profile; every bad input is one line naming it."""
    source: Path = args.input
    if not source.is_file():
        raise CommandError(
            f"reference build --input {source}: no such file; give the training data "
            "(.csv or .jsonl)"
        )
    try:
        if args.config is not None:
            task, features = _from_config(args)
        else:
            task = args.task or "binary_classification"
            features = _inferred(args)
        kinds = dict(features)
        if task == "multiclass_classification":
            kinds["prediction"] = kinds["label"] = "categorical"  # class codes like "01" stay text
        columns = read_training_file(source, kinds)
        ref = build_reference(args.model, task, columns, features, fine_bins=args.bins)
    except ReferenceProfileError as exc:
        raise CommandError(f"reference build: {exc}") from None
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        ref.save(args.output)
    except OSError as exc:
        raise CommandError(
            f"reference build --output {args.output}: cannot write ({exc.strerror or exc}); "
            "give a path this user can write"
        ) from None
    print(
        f"{args.output}: reference for {args.model} ({task}) from {ref.rows} rows, "
        f"{len(ref.features)} features, sha256 {ref.content_hash[:12]}"
    )
    return 0
