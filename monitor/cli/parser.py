"""The argument parser and ``main``: commands, their options, and one line per error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn

from monitor import __version__
from monitor.cli.common import LOG_LEVELS, CommandError
from monitor.redaction import one_line, redact
from monitor.settings import ConfigError
from monitor.vocabulary import TASKS


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _choose(parser: argparse.ArgumentParser, names: Iterable[str]) -> Callable[..., int]:
    """What a command group does on its own: name the subcommands it has.

    ``names`` is read when the group runs, so it may be the subparsers' ``choices`` as they
    fill in.
    """

    def run(_args: argparse.Namespace) -> int:
        print(
            f"{parser.prog}: give a command: {', '.join(names)} (see {parser.prog} --help)",
            file=sys.stderr,
        )
        return 2

    return run


def _group(
    sub: argparse._SubParsersAction[_Parser], name: str, help_text: str
) -> argparse._SubParsersAction[_Parser]:
    parser = sub.add_parser(name, help=help_text)
    inner = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    parser.set_defaults(func=_choose(parser, inner.choices))  # choices fill in as added
    return inner


def _config_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--config", "-c", type=Path, required=required, help="YAML config file", metavar="FILE"
    )


def _daemon_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    from monitor.cli.daemon import cmd_check, cmd_demo, cmd_run
    from monitor.cli.validate import cmd_validate

    run = sub.add_parser("run", help="run the daemon against a Kafka cluster")
    _config_option(run)
    run.add_argument("--log-level", choices=LOG_LEVELS)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo", help="embedded broker + synthetic traffic with injected drift + live view"
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to run, then exit 0 with a summary (default: until Ctrl-C)",
    )
    demo.add_argument("--port", type=int, default=9108, help="HTTP port for /metrics (0: any)")
    demo.add_argument("--rate", type=float, default=400.0, help="fraud predictions per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--log-level", choices=LOG_LEVELS)
    demo.add_argument(
        "--webhook-url",
        help="send the demo's webhooks here instead of to its "
        "built-in receiver (private targets allowed)",
    )
    demo.add_argument("--webhook-secret", help="signing secret for --webhook-url")
    demo.set_defaults(func=cmd_demo)

    val = sub.add_parser(
        "validate-config",
        help="check a config as run does (references, webhook secrets and targets), "
        "without connecting",
    )
    val.add_argument("config_file", type=Path, nargs="?", metavar="FILE")
    _config_option(val, required=False)
    # Kept for scripts written before references were always loaded.
    val.add_argument("--references", action="store_true", help=argparse.SUPPRESS)
    val.set_defaults(func=cmd_validate)

    chk = sub.add_parser("check", help="validate, load references and reach the brokers")
    _config_option(chk)
    chk.set_defaults(func=cmd_check)


def _tool_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    from monitor.cli.calibrate_cmd import cmd_reference_calibrate
    from monitor.cli.config_cmd import cmd_config_reference, cmd_config_schema
    from monitor.cli.reference_cmd import cmd_reference_build
    from monitor.cli.webhook_cmd import cmd_webhook_test

    hook = _group(sub, "webhook", "retraining webhooks")
    test = hook.add_parser("test", help="send one signed model.test event to a model's endpoint")
    _config_option(test)
    test.add_argument("--model", required=True)
    test.set_defaults(func=cmd_webhook_test)

    ref = _group(sub, "reference", "reference profiles")
    build = ref.add_parser(
        "build",
        help="build a reference profile from training data",
        description="Without --config each column's kind is inferred (numbers: numeric, "
        "anything else: categorical) and printed, with a features: line for the config.",
    )
    _config_option(build, required=False)
    build.add_argument("--model", required=True, help="the model's name (as in the config)")
    build.add_argument("--input", type=Path, required=True, help="training data (.csv/.jsonl)")
    build.add_argument("--output", type=Path, required=True)
    build.add_argument("--bins", type=int, default=1000, help="fine quantile bins per feature")
    build.add_argument("--task", choices=TASKS, help="without --config (binary by default)")
    build.add_argument(
        "--features", metavar="A,B", help="without --config: these columns only, in this order"
    )
    build.add_argument(
        "--categorical", metavar="A,B", help="without --config: these are categorical"
    )
    build.set_defaults(func=cmd_reference_build)

    cal = ref.add_parser(
        "calibrate",
        help="drift thresholds from the reference's own no-drift spread",
        description="Resamples the reference at each window's expected size (its length times "
        "--rate, or --events) and prints the PSI, KS D and Jensen-Shannon values that noise "
        "alone exceeds at --false-alarm-rate per evaluation; --format yaml prints policy: keys.",
    )
    _config_option(cal)
    cal.add_argument("--model", required=True)
    cal.add_argument("--window", help="this window only (default: all the model's windows)")
    cal.add_argument("--rate", type=float, help="predictions per second")
    cal.add_argument("--events", type=int, help="predictions per window (instead of --rate)")
    cal.add_argument("--false-alarm-rate", type=float, default=0.01, metavar="R")
    cal.add_argument("--resamples", type=int, default=200)
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--format", choices=("table", "yaml"), default="table")
    cal.set_defaults(func=cmd_reference_calibrate)

    conf = _group(sub, "config", "the configuration's schema and reference")
    conf.add_parser(
        "schema", help="print the config's JSON Schema (for editors and CI)"
    ).set_defaults(func=cmd_config_schema)
    conf.add_parser(
        "reference", help="print the configuration reference (docs/configuration.md)"
    ).set_defaults(func=cmd_config_reference)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="modelmon",
        description="Production model monitoring: Kafka prediction/label streams → drift and "
        "performance → Prometheus metrics and retraining webhooks.",
    )
    p.add_argument("--version", action="version", version=f"modelmon {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _daemon_commands(sub)
    _tool_commands(sub)
    p.set_defaults(func=_choose(p, sub.choices))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"modelmon: config error: {one_line(redact(str(exc)))}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"modelmon {one_line(redact(str(exc)))}", file=sys.stderr)
        return exc.code
