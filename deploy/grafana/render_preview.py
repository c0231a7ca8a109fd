"""Draw a picture of the modelmon Grafana dashboard from a live Prometheus, with matplotlib.

    python deploy/grafana/render_preview.py --prometheus http://127.0.0.1:9090 \\
        --minutes 30 --out docs/dashboard.png

No Grafana needed: the script reads the dashboard JSON next to it, substitutes its variables
the way Grafana does when the dashboard opens (all models, all features, one window), runs a
representative subset of its panels' PromQL as range queries, and draws them titled as on the
dashboard: the overview stats, the heatmap of PSI over features x time, and a grid of small
time-series panels. ``docs/dashboard.png`` in the README comes from the end-to-end test's
Prometheus (``MODELMON_PREVIEW_OUT=docs/dashboard.png pytest tests/test_e2e_prometheus.py``).

Needs only the standard library and matplotlib (``pip install matplotlib``), not modelmon.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.ticker import FuncFormatter, PercentFormatter

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "modelmon.json"
STATS = (2, 3, 4, 5, 6, 7)  # the overview row
HEATMAP = 21
PANELS = (8, 22, 27, 9, 41, 42, 44, 46, 47, 61, 63, 65)  # 4 rows of 3 small panels
# Grafana's dark theme
BACKGROUND, PANEL, GRID, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e8e"
PALETTE = ("#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0")
COLOURS = {"green": "#73bf69", "yellow": "#fade2a", "orange": "#ff9830", "red": "#f2495c"}
_SEVERITY = list(COLOURS.values())  # least to most severe
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}")


@dataclass
class Series:
    legend: str
    times: list[datetime]
    values: np.ndarray


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str | float) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.get("query_range", query=expr, start=start, end=end, step=step)
        result: list[dict[str, Any]] = data["result"]
        return result


def seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not m:
        return math.inf
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class Renderer:
    def __init__(
        self,
        prometheus: Prometheus,
        dashboard: dict[str, Any],
        start: float,
        end: float,
        model: str,
        window: str | None,
        scrape_interval: float,
        rate_interval: float | None = None,
    ) -> None:
        self.prom = prometheus
        self.panels = {p["id"]: p for p in _all_panels(dashboard)}
        self.start, self.end = start, end
        self.step = max(1.0, round((end - start) / 400))  # ~400 points, like a panel's width
        if rate_interval is None:  # Grafana's rule for $__rate_interval
            rate_interval = max(4 * scrape_interval, self.step + scrape_interval)
        self.variables = {
            "model": model,
            "feature": ".+",
            "__rate_interval": f"{int(rate_interval)}s",
            "__interval": f"{int(self.step)}s",
            "__range": f"{int(end - start)}s",
        }
        self.variables["window"] = window or self._default_window(dashboard)

    def _default_window(self, dashboard: dict[str, Any]) -> str:
        """The dashboard's default window if Prometheus has it, else the shortest one."""
        params: dict[str, str | float] = {"match[]": "modelmon_window_predictions"}
        data = self.prom.get("series", start=self.start, end=self.end, **params)
        windows: list[str] = sorted({s["window"] for s in data}, key=seconds)
        if not windows:
            raise SystemExit("no modelmon_window_predictions in Prometheus for this time range")
        var = next(v for v in dashboard["templating"]["list"] if v["name"] == "window")
        current = var.get("current", {}).get("value")
        return str(current) if current in windows else windows[0]

    def expand(self, text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2)
            return self.variables.get(name, m.group(0))

        return _VARIABLE.sub(repl, text)

    def series(self, panel: dict[str, Any]) -> list[Series]:
        out = []
        for target in panel["targets"]:
            expr = self.expand(target["expr"])
            for s in self.prom.range(expr, self.start, self.end, self.step):
                labels = s["metric"]
                legend = (
                    _LEGEND.sub(
                        lambda m, labels=labels: labels.get(m.group(1), ""),
                        target.get("legendFormat") or "{{__name__}}",
                    ).strip()
                    or "(none)"
                )
                times = [datetime.fromtimestamp(float(t), UTC) for t, _ in s["values"]]
                values = np.array([float(v) for _, v in s["values"]])
                out.append(Series(legend, times, values))
        return out

    # -- drawing -------------------------------------------------------------------------------
    def render(self, out: Path, title: str) -> None:
        plt.rcParams.update(
            {
                "font.size": 8,
                "text.color": TEXT,
                "axes.labelcolor": TEXT,
                "xtick.color": MUTED,
                "ytick.color": MUTED,
                "axes.edgecolor": GRID,
            }
        )
        fig = plt.figure(figsize=(15, 17.5), dpi=80, facecolor=BACKGROUND)
        outer = fig.add_gridspec(2, 1, height_ratios=[1.75, 4], hspace=0.1)
        top = outer[0].subgridspec(2, 6, height_ratios=[0.45, 1.3], hspace=0.3, wspace=0.3)
        grid = outer[1].subgridspec(4, 6, hspace=0.7, wspace=0.3)
        span = (
            f"{datetime.fromtimestamp(self.start, UTC):%Y-%m-%d %H:%M:%S} - "
            f"{datetime.fromtimestamp(self.end, UTC):%H:%M:%S} UTC"
        )
        model = "All" if self.variables["model"] == ".+" else self.variables["model"]
        fig.suptitle(
            f"{title}    model: {model}    window: {self.variables['window']}    {span}",
            color=TEXT,
            fontsize=12,
            x=0.02,
            ha="left",
            y=0.995,
        )
        for i, pid in enumerate(STATS):
            self._stat(fig.add_subplot(top[0, i]), self.panels[pid])
        self._heatmap(fig.add_subplot(top[1, :]), self.panels[HEATMAP])
        for i, pid in enumerate(PANELS):
            ax = fig.add_subplot(grid[i // 3, (i % 3) * 2 : (i % 3) * 2 + 2])
            self._timeseries(ax, self.panels[pid])
        fig.subplots_adjust(left=0.09, right=0.98, top=0.965, bottom=0.06)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, facecolor=BACKGROUND, metadata={"Software": None})
        plt.close(fig)

    def _title(self, ax: Any, panel: dict[str, Any]) -> None:
        ax.set_title(self.expand(panel["title"]), loc="left", color=TEXT, fontsize=9, pad=4)

    def _stat(self, ax: Any, panel: dict[str, Any]) -> None:
        defaults = panel["fieldConfig"]["defaults"]
        last = [
            (s.legend, v[-1])
            for s in self.series(panel)
            if len(v := s.values[np.isfinite(s.values)])
        ]
        ax.set_xticks([])
        ax.set_yticks([])
        self._title(ax, panel)
        if not last:
            ax.set_facecolor(PANEL)
            ax.text(0.5, 0.5, "No data", ha="center", va="center", color=MUTED, fontsize=14)
            return
        shown = [(legend, *_format_stat(value, defaults)) for legend, value in last[:3]]
        # one background for the panel: the most severe colour among its series
        ax.set_facecolor(max((colour for _, _, colour in shown), key=_SEVERITY.index))
        lines = "\n".join(f"{legend}  {text}" for legend, text, _ in shown)
        ax.text(0.5, 0.5, lines, ha="center", va="center", color="white", fontsize=11)

    def _heatmap(self, ax: Any, panel: dict[str, Any]) -> None:
        self._title(ax, panel)
        ax.set_facecolor(PANEL)
        series = sorted(self.series(panel), key=lambda s: s.legend)
        if not series:
            ax.text(
                0.5, 0.5, "No data", ha="center", va="center", color=MUTED, transform=ax.transAxes
            )
            return
        grid_times = np.arange(self.start, self.end + self.step / 2, self.step)
        matrix = np.full((len(series), len(grid_times)), np.nan)
        for row, s in enumerate(series):
            idx = np.searchsorted(grid_times, [t.timestamp() for t in s.times])
            idx = np.clip(idx, 0, len(grid_times) - 1)
            matrix[row, idx] = s.values
        colour = panel["options"]["color"]
        # Grafana's dark theme runs a scheme from dark (low) to bright (high)
        cmap = plt.get_cmap(colour.get("scheme", "Oranges") + "_r").copy()
        cmap.set_bad(PANEL)
        norm = PowerNorm(
            gamma=colour.get("exponent", 0.5),
            vmin=colour.get("min", 0),
            vmax=colour.get("max", 0.5),
        )
        edges = mdates.date2num([datetime.fromtimestamp(t, UTC) for t in grid_times])
        image = ax.imshow(
            np.ma.masked_invalid(matrix),
            aspect="auto",
            cmap=cmap,
            norm=norm,
            interpolation="nearest",
            extent=(edges[0], edges[-1], len(series) - 0.5, -0.5),
        )
        ax.set_yticks(range(len(series)), [s.legend for s in series], fontsize=7)
        ax.xaxis_date()
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        bar = ax.figure.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
        bar.set_label("PSI", color=TEXT)
        bar.ax.tick_params(colors=MUTED)

    def _timeseries(self, ax: Any, panel: dict[str, Any]) -> None:
        self._title(ax, panel)
        ax.set_facecolor(PANEL)
        ax.grid(color=GRID, linewidth=0.5)
        series = self.series(panel)
        for i, s in enumerate(series[:12]):
            ax.plot(
                s.times, s.values, color=PALETTE[i % len(PALETTE)], linewidth=1.2, label=s.legend
            )
        if not series:
            ax.text(
                0.5, 0.5, "No data", ha="center", va="center", color=MUTED, transform=ax.transAxes
            )
        unit = panel["fieldConfig"]["defaults"].get("unit")
        if unit == "percentunit":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        elif unit in ("s", "ops"):
            suffix = " s" if unit == "s" else "/s"
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{suffix}"))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=6))
        for spine in ax.spines.values():
            spine.set_visible(False)
        if series:
            ax.legend(
                fontsize=6.5,
                loc="upper left",
                bbox_to_anchor=(0.0, -0.13),
                ncol=3,
                frameon=False,
                labelcolor=TEXT,
                handlelength=1.2,
                columnspacing=1.0,
                borderaxespad=0.0,
            )


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _format_stat(value: float, defaults: dict[str, Any]) -> tuple[str, str]:
    """Displayed text and background colour, from the panel's mappings and thresholds."""
    colour = "green"  # Grafana's threshold colour names; unknown ones count as green
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step["value"] is None or value >= step["value"]:
            colour = step["color"]
    for mapping in defaults.get("mappings", []):
        hit = mapping.get("options", {}).get(f"{value:g}")
        if mapping["type"] == "value" and hit:
            return hit.get("text", f"{value:g}"), COLOURS.get(
                hit.get("color", colour), COLOURS["green"]
            )
    if defaults.get("unit") == "percentunit":
        text = f"{value:.1%}"
    else:
        text = f"{value:.{defaults.get('decimals', 2)}f}"
    return text, COLOURS.get(colour, COLOURS["green"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--minutes", type=float, default=30.0, help="range ending now")
    parser.add_argument("--start", type=float, help="Unix time (overrides --minutes)")
    parser.add_argument("--end", type=float, help="Unix time (default: now)")
    parser.add_argument("--model", default=".+", help="regex; default all models")
    parser.add_argument("--window", help="default: the dashboard's, else the shortest one")
    parser.add_argument(
        "--scrape-interval", type=float, default=15.0, help="seconds, for $__rate_interval"
    )
    parser.add_argument(
        "--rate-interval", type=float, help="seconds; default: Grafana's, from the scrape interval"
    )
    args = parser.parse_args(argv)
    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - 60 * args.minutes
    dashboard = json.loads(args.dashboard.read_text(encoding="utf-8"))
    renderer = Renderer(
        Prometheus(args.prometheus),
        dashboard,
        start,
        end,
        args.model,
        args.window,
        args.scrape_interval,
        args.rate_interval,
    )
    renderer.render(args.out, dashboard["title"])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
