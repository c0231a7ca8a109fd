"""Running the ``modelmon`` command line in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys


def modelmon(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
