"""Shared test helpers and fixtures, imported as ``tests.support.<module>``."""

from pathlib import Path

#: The repository's top folder (tests run from any working directory).
REPO_ROOT = Path(__file__).resolve().parents[2]
