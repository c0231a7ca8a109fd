"""modelmon: a production model-monitoring daemon.

Consumes a model's prediction and label streams from Kafka, keeps event-time sliding windows,
computes drift and performance statistics against a reference profile, exports them as
Prometheus metrics and fires signed retraining webhooks when a model degrades.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modelmon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
