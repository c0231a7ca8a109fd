"""``modelmon demo``: an embedded broker, synthetic traffic with injected drift, the real daemon.

Everything runs in this process except the broker (a Tansu subprocess on a free port): a
producer thread sends two models' predictions (and a few malformed records, to show the
dead-letter path), the daemon consumes them exactly as ``modelmon run`` would, and the terminal
shows the live statistics. Drift starts a third of the way into ``--duration``.
"""

from __future__ import annotations

import base64
import heapq
import logging
import os
import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.app import App, load_states
from monitor.devkit.broker import EmbeddedBroker, create_topics
from monitor.devkit.receiver import WebhookReceiver
from monitor.devkit.synthetic import FRAUD_DRIFTED, Traffic, encode, features_of
from monitor.reference.build import build_reference
from monitor.settings import Settings, WebhookSettings
from monitor.settings_loader import load_settings
from monitor.snapshot import Snapshot

log = logging.getLogger(__name__)
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"
# Data drift is injected into fraud's inputs; demand gets a concept drift (its inputs stay put).
INJECTED = {"fraud": FRAUD_DRIFTED, "demand": ()}
LABEL_COVERAGE = 0.8  # share of predictions that ever get a label
LABEL_DELAY = (2.0, 12.0)  # seconds between a prediction and its label
_MALFORMED = (
    b"{not json",
    b"[1, 2]",
    b'{"model": "fraud"}',
    b'{"id": 1, "model": "fraud", "timestamp": "yesterday", "prediction": 1}',
)


@dataclass
class DemoOptions:
    duration: float | None = None  # None: until Ctrl-C, drift after 30 s
    port: int = 9108
    rate: float = 400.0  # fraud events/s; demand gets half
    seed: int = 7
    config: Path = DEMO_CONFIG
    webhook_url: str | None = None  # None: the built-in verifying receiver
    webhook_secret: str | None = None


@dataclass
class Producer:
    """Sends synthetic traffic in 0.25 s ticks until stopped.

    From ``drift_at`` fraud's inputs drift; from ``concept_at`` demand's ground truth moves
    away from its predictions. Labels follow their predictions after a random delay, keyed by
    the prediction id like the predictions (co-partitioned).
    """

    bootstrap: str
    rate: float
    drift_at: float  # monotonic time
    concept_at: float
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    labels_sent: int = 0
    malformed: int = 0
    drifting: bool = False
    concept_drifting: bool = False

    def run(self) -> None:
        traffic = Traffic(self.seed)
        rng = random.Random(self.seed)
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20)
        due: list[tuple[float, str, bytes]] = []  # (wall time, id, label record): a min-heap
        tick = 0.25
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                self.drifting = started >= self.drift_at
                self.concept_drifting = started >= self.concept_at
                now = time.time()
                for model, rate in (("fraud", self.rate), ("demand", self.rate / 2)):
                    n = max(1, int(rate * tick))
                    events = traffic.events(
                        model, n, now, n / tick, drifted=self.drifting and model == "fraud"
                    )
                    truth = traffic.labels(events, concept_drift=self.concept_drifting)
                    for e, y in zip(events, truth, strict=True):
                        producer.send("predictions", key=e["id"].encode(), value=encode(e))
                        if rng.random() < LABEL_COVERAGE:
                            at = e["timestamp"] + rng.uniform(*LABEL_DELAY)
                            label = {"id": e["id"], "model": model, "label": y, "timestamp": at}
                            heapq.heappush(due, (at, e["id"], encode(label)))
                    self.sent += n
                while due and due[0][0] <= now:
                    _, ident, record = heapq.heappop(due)
                    producer.send("labels", key=ident.encode(), value=record)
                    self.labels_sent += 1
                if int(started / tick) % 20 == 0:  # ~one malformed record every 5 s
                    bad = _MALFORMED[self.malformed % len(_MALFORMED)]
                    producer.send("predictions", value=bad)
                    self.malformed += 1
                producer.flush()
                self.stop.wait(max(0.0, tick - (time.monotonic() - started)))
        finally:
            producer.close(timeout=5)


def _build_demand_reference(workdir: Path, seed: int) -> Path:
    rows = list(Traffic(seed + 1).training_rows("demand", 20_000))
    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    ref = build_reference("demand", "regression", columns, features_of("demand"))  # type: ignore[arg-type]
    path = workdir / "reference" / "demand.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    ref.save(path)
    return path


def _view(snap: Snapshot | None, prod: Producer, elapsed: float, app: App) -> Group:
    head = Text(
        f"t={elapsed:5.1f}s  sent={prod.sent}  malformed={prod.malformed}  "
        f"labels={prod.labels_sent}  fraud inputs={'DRIFTED' if prod.drifting else 'normal'}  "
        f"demand concept={'DRIFTED' if prod.concept_drifting else 'normal'}  metrics: "
        f"http://127.0.0.1:{app.http.port}/metrics",
        style="bold red" if prod.drifting else "bold",
    )
    return Group(head, *_feature_tables(snap))


def _feature_tables(snap: Snapshot | None) -> list[Table | Text | Panel]:
    """Per model, its shortest window's per-feature statistics (live, and at the end)."""
    parts: list[Table | Text | Panel] = []
    for m in snap.models if snap else ():
        if not m.reference_ready:
            parts.append(Text(f"{m.model}: building reference from the first events…"))
            continue
        for w in m.windows[:1]:  # the shortest window: the whole view fits a terminal
            table = Table(
                title=f"{m.model} · window {w.window} · {w.predictions} predictions",
                title_justify="left",
                expand=False,
            )
            for col in ("feature", "PSI", "KS", "KS p", "χ² p", "drift"):
                table.add_column(col, justify="right" if col != "feature" else "left")
            if not w.enough_samples:
                parts.append(
                    Text(
                        f"{m.model} {w.window}: {w.predictions} predictions, "
                        "below min_samples — statistics withheld"
                    )
                )
                continue
            for f in w.features:
                table.add_row(
                    f.feature,
                    f"{f.psi:.3f}",
                    "—" if f.ks_statistic is None else f"{f.ks_statistic:.3f}",
                    "—" if f.ks_pvalue is None else f"{f.ks_pvalue:.1e}",
                    f"{f.chi2_pvalue:.1e}",
                    Text("DRIFT", style="bold red") if f.drift_detected else Text("ok", "green"),
                )
            parts.append(table)
            if perf := _perf_line(w.performance, w.labels):
                parts.append(Text(f"  performance ({w.window}): {perf}", style="cyan"))
    return parts


def _perf_line(perf: dict[str, float], labels: int) -> str:
    shown = [
        ("accuracy", "accuracy"),
        ("estimated_accuracy", "estimated accuracy"),
        ("f1", "F1"),
        ("roc_auc", "ROC AUC"),
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("label_coverage", "label coverage"),
    ]
    parts = [f"{name} {perf[key]:.3f}" for key, name in shown if key in perf]
    return f"{labels} labels · " + " · ".join(parts) if parts else ""


def _summary(snap: Snapshot | None, console: Console, drift_injected: bool) -> bool:
    """Print what was detected per model; True when every injected feature was caught."""
    caught_all = True
    for m in snap.models if snap else ():
        w = m.window("1m") or (m.windows[0] if m.windows else None)
        if w is None or not w.enough_samples:
            console.print(f"{m.model}: not enough data for a verdict")
            caught_all = False
            continue
        drifted = set(w.drifted())
        injected = set(INJECTED.get(m.model, ())) if drift_injected else set()
        missed, extra = sorted(injected - drifted), sorted(drifted - injected)
        caught_all &= not missed
        if perf := _perf_line(w.performance, w.labels):
            console.print(f"{m.model} performance (window {w.window}): {perf}")
        console.print(
            f"{m.model} (window {w.window}, {w.predictions} predictions): drift detected in "
            f"{', '.join(sorted(drifted)) or 'no feature'}; "
            f"injected: {', '.join(sorted(injected)) or _none_injected(drift_injected)}"
            + (f"; MISSED: {', '.join(missed)}" if missed else "")
            + (f"; also flagged: {', '.join(extra)}" if extra else "")
        )
    return caught_all


def _none_injected(drift_injected: bool) -> str:
    if not drift_injected:
        return "none yet (stopped before the drift started)"
    return "none (concept drift only)"


def run_demo(opts: DemoOptions, console: Console | None = None) -> int:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # logs and CI: one line per status, not wrapped
    workdir = Path(tempfile.mkdtemp(prefix="modelmon-demo-"))
    with EmbeddedBroker(log_file=workdir / "broker.log") as broker:
        create_topics(broker.bootstrap, {"predictions": 3, "labels": 3, "modelmon-dlq": 1})
        _build_demand_reference(workdir, opts.seed)
        settings: Settings = load_settings(
            opts.config,
            overrides={
                "kafka": {"bootstrap_servers": broker.bootstrap},
                "http": {"port": opts.port},
                "state": {"dir": str(workdir / "state")},
            },
        )
        receiver, settings = _with_webhooks(settings, opts, console)
        app = App(settings, states=load_states(settings, base=workdir))
        console.print(
            f"[bold]modelmon demo[/]: broker {broker.bootstrap}, metrics on "
            f"http://127.0.0.1:{app.http.port}/metrics, work dir {workdir}"
        )
        start = time.monotonic()
        drift_after = opts.duration / 3 if opts.duration else 30.0
        concept_after = opts.duration / 2 if opts.duration else 60.0
        console.print(
            f"data drift will be injected into fraud's {', '.join(sorted(FRAUD_DRIFTED))} after "
            f"{drift_after:.0f}s; demand's ground truth moves 40% away from its predictions "
            f"(concept drift, inputs unchanged) after {concept_after:.0f}s"
        )
        prod = Producer(
            broker.bootstrap, opts.rate, start + drift_after, start + concept_after, opts.seed
        )
        threads = [
            threading.Thread(target=prod.run, name="demo-producer", daemon=True),
            threading.Thread(
                target=app.run, kwargs={"install_signals": False}, name="modelmon", daemon=True
            ),
        ]
        for t in threads:
            t.start()
        try:
            _watch(app, prod, console, start, opts.duration)
        except KeyboardInterrupt:
            console.print("interrupted")
        finally:
            prod.stop.set()
            app.request_stop()
            for t in threads:
                t.join(timeout=30)
        snap = app.evaluate_now()
        if receiver is not None:
            receiver.stop()
        console.rule("summary")
        if not console.is_terminal:  # the live view showed the tables; a log has none yet
            console.print(*_feature_tables(snap))
        console.print(
            f"sent {prod.sent} predictions, {prod.labels_sent} labels and {prod.malformed} "
            "malformed records "
            f"in {time.monotonic() - start:.0f}s"
        )
        caught = _summary(snap, console, prod.drifting)
        if receiver is not None:
            kinds = [f"{e['type']} ({e['data']['model']})" for e in receiver.received.events]
            console.print(f"webhooks received and verified: {', '.join(kinds) or 'none'}")
        if not prod.drifting:
            console.print("stopped before any drift was injected")
        else:
            console.print(
                "drift detected on every injected feature"
                if caught
                else "some injected drift was not detected"
            )
    return 0


def _with_webhooks(
    settings: Settings, opts: DemoOptions, console: Console
) -> tuple[WebhookReceiver | None, Settings]:
    """Point every model's webhook at the built-in receiver, or at --webhook-url."""
    receiver = None
    if opts.webhook_url is None:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        receiver = WebhookReceiver(secret, on_event=lambda e: _print_webhook(console, e)).start()
        url = receiver.url
    else:
        url, secret = opts.webhook_url, opts.webhook_secret or ""
    hook = WebhookSettings(
        url=url,
        secret=SecretStr(secret),
        allow_private_targets=True,
        retry_schedule=[1.0, 2.0, 5.0],
    )
    models = [m.model_copy(update={"webhook": hook}) for m in settings.models]
    return receiver, settings.model_copy(update={"models": models})


def _print_webhook(console: Console, event: dict[str, Any]) -> None:
    data = event.get("data", {})
    reasons = "; ".join(
        f"{r['metric']}{'[' + r['feature'] + ']' if r.get('feature') else ''}="
        f"{r['value']:.3g} (limit {r['threshold']:.3g})"
        for r in data.get("reasons", [])
    )
    console.print(
        f"[bold magenta]WEBHOOK received, signature verified[/]: {event['type']} "
        f"model={data.get('model')} window={data.get('window')} id={event['webhook_id']} "
        f"reasons: {escape(reasons) or '-'}"
    )


def _watch(
    app: App, prod: Producer, console: Console, start: float, duration: float | None
) -> None:
    announced: set[tuple[str, str]] = set()
    end = start + duration if duration else float("inf")
    if console.is_terminal:
        with Live(console=console, refresh_per_second=2) as live:
            while time.monotonic() < end:
                live.update(_view(app.snapshot, prod, time.monotonic() - start, app))
                time.sleep(0.5)
        return
    next_status = start + 5.0
    while time.monotonic() < end:  # unattended: a line per change, no screen redraws
        time.sleep(1.0)
        now = time.monotonic()
        for m in app.snapshot.models if app.snapshot else ():
            for w in m.windows:
                for f in w.drifted():
                    if (m.model, f) not in announced:
                        announced.add((m.model, f))
                        console.print(
                            f"t={now - start:5.1f}s DRIFT DETECTED "
                            f"model={m.model} window={w.window} feature={f}"
                        )
            if (
                now >= next_status
                and m.windows
                and (perf := _perf_line(m.windows[0].performance, m.windows[0].labels))
            ):
                console.print(f"t={now - start:5.1f}s {m.model} {m.windows[0].window}: {perf}")
        if now >= next_status:
            next_status = now + 5.0
