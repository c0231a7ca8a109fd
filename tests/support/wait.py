"""The one ``wait_for`` of the suite: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    check: Callable[[], bool], timeout: float = 5.0, what: str = "", every: float = 0.2
) -> float:
    """Poll ``check`` every ``every`` seconds until true; returns the seconds it took.

    Raises AssertionError naming ``what`` once ``timeout`` seconds have passed.
    """
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}")
        time.sleep(every)
    return time.monotonic() - started
