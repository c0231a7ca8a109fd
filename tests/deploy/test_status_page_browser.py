"""The status page in a real browser: Debian's headless Chromium loads ``/`` from a running server.

The server is the daemon's own :class:`HttpServer` serving crafted Snapshots (no Kafka needed):
Chromium's rendered DOM must carry the models, their states and "not enough data", and its
screenshots at a laptop and a phone width must be PNGs of exactly that size. Skipped when
``chromium`` is absent, unless ``MODELMON_REQUIRE_CHROMIUM=1`` (CI), where that is a failure.
Set ``MODELMON_STATUS_SCREENSHOT=path`` to keep the 1280-wide screenshot (``docs/status-page.png``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.serve.http import HttpServer
from monitor.serve.sparkline import History
from monitor.serve.web_config import WebConfig
from monitor.settings import HttpSettings
from tests.support.status_snapshots import HOSTILE_MODEL, T0, history_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("MODELMON_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required here (Debian package chromium)")
        pytest.skip("chromium not installed (Debian package chromium)")
    return path


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    history = History(size=30)
    snaps = history_of(12)
    for snap in snaps:
        history.record(snap)
    server = HttpServer(
        CollectorRegistry(),
        lambda: snaps[-1],
        lambda: (True, "ok"),
        lambda: (True, "ready"),
        HttpSettings(host="127.0.0.1", port=0),
        web=WebConfig(),
        history=history,
        wall=lambda: T0 + 42,
    )
    server.start()
    yield f"http://127.0.0.1:{server.port}/"
    server.stop()


def headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium once (its own profile; no sandbox, as tests may run as root)."""
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, timeout=90, check=False)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR", head
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_rendered_page_shows_every_state(chromium: str, url: str, tmp_path: Path) -> None:
    result = headless(chromium, tmp_path / "profile", "--dump-dom", url)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    dom = result.stdout.decode()
    for name in ("fraud", "demand", "churn"):
        assert f'id="model-{name}"' in dom
    assert ">DEGRADED</span>" in dom and ">bootstrapping</span>" in dom
    assert "120 of 1000" in dom
    assert "not enough data (42 of 500 predictions)" in dom
    assert "feature_psi: 3 breaches counted toward firing" in dom
    assert dom.count('<svg class="spark"') == 6  # every feature of every full window
    assert "&lt;script&gt;alert('m')&lt;/script&gt;" in dom  # shown as text, never run
    assert HOSTILE_MODEL not in dom


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_screenshots_at_laptop_and_phone_width(
    chromium: str, url: str, tmp_path: Path, width: int, height: int
) -> None:
    shot = tmp_path / f"status-{width}.png"
    result = headless(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={width},{height}",
        url,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    assert png_size(shot) == (width, height)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    keep = os.environ.get("MODELMON_STATUS_SCREENSHOT")
    if keep and width == 1280:
        shutil.copyfile(shot, keep)
