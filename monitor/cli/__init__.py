"""The ``modelmon`` command line: one module per command family, every bad input one line.

``parser`` builds the argument parser and runs a command; ``common`` holds what commands
share (loading the config, the one-line errors); the rest implement the commands.
"""

from monitor.cli.parser import main

__all__ = ["main"]
