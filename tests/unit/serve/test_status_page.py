"""The status page rendered from crafted Snapshots, its sparkline history, and ``/`` serving it."""

from __future__ import annotations

import http.client
import math
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from prometheus_client import CollectorRegistry

from monitor.serve import status_page
from monitor.serve.http import HttpServer
from monitor.serve.sparkline import History, sparkline
from monitor.serve.web_config import WebConfig
from monitor.settings import HttpSettings
from monitor.snapshot import Snapshot
from tests.support.status_snapshots import (
    HOSTILE_FEATURE,
    HOSTILE_MODEL,
    T0,
    history_of,
    page_snapshot,
)

#: Every element the page may contain: anything else came from a value that escaped escaping.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "span", "a",
    "main", "section", "div", "p", "b", "ul", "li", "table", "tr", "th", "td", "svg",
    "polyline", "circle", "progress",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


def page(snap: Snapshot | None, history: History | None = None, now: float = T0 + 42) -> str:
    series = history.psi_series() if history is not None else {}
    return status_page.render(snap, series, now).decode()


def section(html_text: str, model: str) -> str:
    """The markup of one model's section."""
    start = html_text.index(f'id="model-{model}"')
    end = html_text.find("</section>", start)
    return html_text[start:end]


def test_a_bootstrapping_model_shows_its_progress_not_a_calm_ok() -> None:
    demand = section(page(page_snapshot()), "demand")
    assert "badge b-boot'>bootstrapping</span>" in demand
    assert "120 of 1000" in demand
    assert "<progress max=1000 value=120>" in demand
    assert ">ok<" not in demand


def test_a_window_below_min_samples_says_not_enough_data_never_none() -> None:
    text = page(page_snapshot())
    churn = section(text, "churn")
    assert "not enough data (42 of 500 predictions)" in churn
    assert churn.count("not enough data") == 1  # the 1d window has its statistics
    assert "label coverage 7.1%" in churn
    assert "none" not in text


def test_a_degraded_model_gives_its_reasons() -> None:
    fraud = section(page(page_snapshot()), "fraud")
    assert "badge b-degraded'>DEGRADED</span>" in fraud
    assert "Degraded because:" in fraud
    assert "<li>feature_psi: 3 breaches counted toward firing</li>" in fraud
    assert "<li>feature_drift: 3 breaches counted toward firing</li>" in fraud
    assert "<li>drift in window 1h: amount</li>" in fraud
    assert "accuracy_min" not in fraud  # a rule with no breach is no reason


def test_a_feature_row_carries_drift_quality_and_verdict() -> None:
    fraud = section(page(page_snapshot()), "fraud")
    amount = re.search(r"<tr class=drift><td>amount</td>.*?</tr>", fraud)
    assert amount is not None
    cells = re.findall(r"<td>(.*?)</td>", amount.group(0))
    # feature, PSI, KS D, p, JS, missing, out of range, unseen, type mismatch, history, verdict
    assert cells[:9] == ["amount", "0.410", "0.183", "2.1e-14", "—", "1.2%", "3.4%", "—", "0.0%"]
    assert cells[10] == "<span class=v-drift>DRIFT</span>"
    country = re.search(r"<tr><td>country</td>.*?</tr>", fraud)
    assert country is not None
    assert re.findall(r"<td>(.*?)</td>", country.group(0))[1:9] == [
        "0.028", "—", "0.12", "0.041", "0.0%", "—", "5.1%", "0.2%",
    ]  # fmt: skip


def test_hostile_model_and_feature_names_are_escaped() -> None:
    text = page(page_snapshot())
    assert HOSTILE_MODEL not in text and HOSTILE_FEATURE not in text
    assert "&lt;script&gt;alert(&#x27;m&#x27;)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;b&gt;v&lt;/b&gt;" in text and "&lt;i&gt;1h&lt;/i&gt;" in text
    assert "&lt;rule&gt;: 1 breach counted" in text
    parser = Tags()
    parser.feed(text)
    assert set(parser.tags) <= ALLOWED_TAGS
    assert "script" not in parser.tags and "img" not in parser.tags
    assert not any(name.startswith("on") for name, _ in parser.attrs)


def test_the_page_is_self_contained_and_refreshes_itself() -> None:
    text = page(page_snapshot())
    assert '<meta http-equiv=refresh content="15">' in text
    assert '<meta name=viewport content="width=device-width,initial-scale=1">' in text
    assert "@media (max-width:640px)" in text
    assert "<script" not in text and "src=" not in text.replace("src=x", "")
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "last evaluation 2026-11-18 11:06:40 UTC (42 s ago)" in text


def test_before_the_first_evaluation_and_while_catching_up() -> None:
    assert "No evaluation yet" in page(None)
    text = page(replace(page_snapshot(), catching_up=True))
    assert "<b>Catching up</b>" in text
    assert "badge b-catch'>catching up</span>" in section(text, "churn")
    assert "badge b-degraded'>DEGRADED</span>" in section(text, "fraud")  # still shown


def test_sparklines_draw_the_history_of_each_feature() -> None:
    history = History(size=30)
    for snap in history_of(12):
        history.record(snap)
    fraud = section(page(page_snapshot(), history), "fraud")
    assert fraud.count("<svg class=spark") == 3
    amount = re.search(r"<td>amount</td>.*?</tr>", fraud)
    assert amount is not None and 'class="dot alarm"' in amount.group(0)
    points = re.search(r'points="([^"]+)"', amount.group(0))
    assert points is not None and len(points.group(1).split()) == 12
    assert "PSI over the last 12 evaluations: 0.043 → 0.410" in amount.group(0)


def test_the_history_is_bounded_and_records_a_snapshot_once() -> None:
    history = History(size=5)
    snaps = history_of(8)
    for snap in snaps:
        history.record(snap)
        history.record(snap)
    assert len(history) == 5
    series = history.psi_series()
    assert series[("fraud", "1h", "amount")][-1] == pytest.approx(0.41)
    assert len(series[("fraud", "1h", "amount")]) == 5
    with pytest.raises(ValueError, match="at least 2"):
        History(size=1)


def test_a_snapshot_without_a_feature_leaves_a_gap() -> None:
    history = History(size=4)
    bare = Snapshot(created_at=T0 - 60)
    history.record(bare)
    history.record(page_snapshot())
    values = history.psi_series()[("fraud", "1h", "amount")]
    assert math.isnan(values[0]) and values[1] == pytest.approx(0.41)
    assert sparkline(values) == ""  # one point is no line
    assert sparkline([0.1, math.nan, 0.2]).count(" ") > 0
    line = sparkline([0.0, math.nan, 0.2])
    assert 'points="2.0,20.0 94.0,2.0"' in line


def test_slash_serves_the_page_and_records_the_history() -> None:
    snap = page_snapshot()
    history = History(size=3)
    server = HttpServer(
        CollectorRegistry(),
        lambda: snap,
        lambda: (True, "ok"),
        lambda: (True, "ready"),
        HttpSettings(host="127.0.0.1", port=0),
        web=WebConfig(),
        history=history,
        wall=lambda: T0 + 5,
    )
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
    finally:
        server.stop()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "(5 s ago)" in body and 'id="model-fraud"' in body
    assert len(history) == 1
