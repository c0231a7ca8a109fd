"""``/``: the status page an on-call engineer opens first, built per request from a Snapshot.

Per model its state (ok, DEGRADED with the reasons, bootstrapping with its progress, catching
up), per window its counts, label coverage and performance, or "not enough data (n of
min_samples)" where statistics are withheld; per feature PSI, KS D, p-value, JS distance, the
data-quality ratios and a PSI sparkline over the last evaluations
(:mod:`monitor.serve.sparkline`). Self-contained: inline CSS and SVG, no script, no external
resource; it refreshes itself. Every value from the snapshot is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import time

from monitor.serve.sparkline import SeriesKey, sparkline
from monitor.snapshot import FeatureDrift, ModelResult, Snapshot, WindowResult

REFRESH_SECONDS = 15
#: Performance metrics shown per window, in this order, with their labels.
PERFORMANCE = (
    ("accuracy", "accuracy"),
    ("estimated_accuracy", "estimated accuracy"),
    ("f1", "F1"),
    ("roc_auc", "ROC AUC"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
)
COLUMNS = (
    "feature",
    "PSI",
    "KS D",
    "p-value",
    "JS",
    "missing",
    "out of range",
    "unseen",
    "type mismatch",
    "PSI history",
    "verdict",
)
STYLE = """
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--info:#0969da;--mute:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 16px;display:flex;flex-wrap:wrap;
gap:4px 16px;align-items:baseline}
header h1{font-size:18px;margin:0}header a{color:#c9d1d9}
main{max-width:1240px;margin:0 auto;padding:12px}
.banner{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;margin:8px 0}
section.model{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;
margin:12px 0}
section.degraded{border-left:6px solid var(--bad)}
h2{font-size:17px;margin:0 6px 0 0;display:inline}
.meta,.mute{color:var(--mute)}.meta{font-size:13px}
.badge{display:inline-block;border-radius:12px;padding:1px 10px;font-weight:600;font-size:13px;
color:#fff;vertical-align:2px}
.b-ok{background:var(--ok)}.b-degraded{background:var(--bad)}.b-boot{background:var(--info)}
.b-catch{background:var(--warn)}
ul.reasons{margin:6px 0;padding-left:20px;color:var(--bad)}
h3{font-size:14px;margin:12px 0 4px}
.warn{color:var(--warn);font-weight:600}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-size:12px;color:var(--mute);font-weight:600}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
tr.drift td{background:#ffebe9}
.v-drift{color:var(--bad);font-weight:700}.v-ok{color:var(--ok)}
svg.spark{color:#57606a;vertical-align:middle}.dot{fill:#57606a}.dot.alarm{fill:var(--bad)}
progress{width:160px;vertical-align:middle}
@media (max-width:640px){body{font-size:13px}main{padding:6px}
section.model{padding:8px;border-radius:6px}th,td{padding:3px 5px}}
"""


def render(
    snap: Snapshot | None,
    history: dict[SeriesKey, list[float]],
    now: float,
    refresh: int = REFRESH_SECONDS,
) -> bytes:
    """The whole page for ``snap`` (``None``: before the first evaluation).

    Parameters
    ----------
    snap
        The latest snapshot.
    history
        PSI per (model, window, feature), oldest first (:meth:`History.psi_series`).
    now
        Wall clock, epoch seconds: how old the evaluation is.
    refresh
        Seconds between the browser's reloads.

    Returns
    -------
    bytes
        UTF-8 HTML.
    """
    if snap is None:
        body = "<p class=banner>No evaluation yet: the first one runs after startup.</p>"
        when = "no evaluation yet"
    else:
        when = f"last evaluation {_time(snap.created_at)} ({_age(now - snap.created_at)} ago)"
        parts = []
        if snap.catching_up:
            parts.append(
                "<p class=banner><b>Catching up</b> with a Kafka backlog: statistics are "
                "exported, the degradation policy decides again once caught up.</p>"
            )
        parts.extend(_model(m, snap, history) for m in snap.models)
        body = "".join(parts) or "<p class=banner>No model configured.</p>"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv=refresh content="{int(refresh)}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>modelmon status</title><style>{STYLE}</style></head><body>"
        f"<header><h1>modelmon</h1><span>{_e(when)}</span>"
        "<span><a href=/metrics>metrics</a> · <a href=/api/v1/status>status JSON</a> · "
        "<a href=/healthz>healthz</a> · <a href=/readyz>readyz</a></span></header>"
        f"<main>{body}</main></body></html>"
    ).encode()


def state_of(m: ModelResult, catching_up: bool) -> tuple[str, str]:
    """The model's state word and its badge class."""
    if not m.reference_ready:
        return "bootstrapping", "b-boot"
    if m.degraded:
        return "DEGRADED", "b-degraded"
    if catching_up:
        return "catching up", "b-catch"
    return "ok", "b-ok"


def _model(m: ModelResult, snap: Snapshot, history: dict[SeriesKey, list[float]]) -> str:
    word, badge = state_of(m, snap.catching_up)
    meta = [f"evaluated {_time(m.evaluated_at)}"]
    if m.version is not None:
        meta.append(f"version {m.version}")
    if m.reference_hash:
        meta.append(f"reference {m.reference_hash[:12]}")
    out = [
        f'<section class="model{" degraded" if m.degraded else ""}" id="model-{_e(m.model)}">'
        f"<h2>{_e(m.model)}</h2> <span class='badge {badge}'>{_e(word)}</span>"
        f"<div class=meta>{_e(' · '.join(meta))}</div>"
    ]
    if not m.reference_ready:
        out.append(_bootstrap(m))
    out.append(_reasons(m))
    out.extend(_window(m.model, w, history) for w in m.windows)
    out.append("</section>")
    return "".join(out)


def _bootstrap(m: ModelResult) -> str:
    if m.bootstrap_events <= 0:
        return "<p class=warn>No reference yet: it is being rebuilt.</p>"
    seen = max(0, m.bootstrap_events - m.bootstrap_needed)
    return (
        f"<p>Building the reference from the first events: {seen} of {m.bootstrap_events} "
        f"<progress max={m.bootstrap_events} value={seen}></progress> "
        "<span class=mute>(no drift statistics until it is built)</span></p>"
    )


def _reasons(m: ModelResult) -> str:
    """Why the model is (or is heading toward) DEGRADED: rules breaching, features drifted."""
    items = [
        f"{_e(rule)}: {n} breach{'es' if n != 1 else ''} counted toward firing"
        for rule, n in sorted(m.breaches.items())
        if n > 0
    ]
    items.extend(
        f"drift in window {_e(w.window)}: {_e(', '.join(w.drifted()))}"
        for w in m.windows
        if w.drifted()
    )
    if not items:
        return ""
    lead = "Degraded because" if m.degraded else "Breaching (not degraded yet)"
    return (
        f"<div><b>{lead}:</b><ul class=reasons>"
        + "".join(f"<li>{i}</li>" for i in items)
        + "</ul></div>"
    )


def _window(model: str, w: WindowResult, history: dict[SeriesKey, list[float]]) -> str:
    facts = [f"{w.predictions} predictions", f"{w.labels} labels"]
    coverage = w.performance.get("label_coverage")
    if coverage is None and w.predictions:
        coverage = w.labels / w.predictions
    facts.append(f"label coverage {_pct(coverage)}")
    if w.prediction_psi is not None:
        facts.append(f"prediction PSI {_num(w.prediction_psi, '.3f')}")
    facts.extend(
        f"{label} {_num(w.performance[key], '.3f')}"
        for key, label in PERFORMANCE
        if key in w.performance
    )
    out = [
        f"<h3>window {_e(w.window)} <span class=mute>{_e(_time(w.start))} → "
        f"{_e(_time(w.end))}</span></h3><div class=meta>{_e(' · '.join(facts))}</div>"
    ]
    if not w.enough_samples:
        out.append(
            f"<p class=warn>not enough data ({w.predictions} of {w.min_samples} "
            "predictions): drift statistics are withheld</p>"
        )
        return "".join(out)
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "".join(_feature(f, history.get((model, w.window, f.feature), [])) for f in w.features)
    out.append(f"<div class=scroll><table><tr>{head}</tr>{rows}</table></div>")
    return "".join(out)


def _feature(f: FeatureDrift, series: list[float]) -> str:
    q = f.quality
    pvalue = f.ks_pvalue if f.ks_pvalue is not None else f.chi2_pvalue
    cells = [
        _e(f.feature),
        _num(f.psi, ".3f"),
        _num(f.ks_statistic, ".3f"),
        _num(pvalue, ".2g"),
        _num(f.js_distance, ".3f"),
        _pct(q.missing if q else None),
        _pct(q.out_of_range if q else None),
        _pct(q.unseen if q else None),
        _pct(q.type_mismatch if q else None),
        sparkline(series, f.drift_detected),
        "<span class=v-drift>DRIFT</span>" if f.drift_detected else "<span class=v-ok>ok</span>",
    ]
    cls = " class=drift" if f.drift_detected else ""
    return f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _num(value: float | None, spec: str) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return format(value, spec)


def _pct(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{100 * value:.1f}%"


def _time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
