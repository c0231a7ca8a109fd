"""Operational metrics, instrumented directly on the app's own registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__


class OpsMetrics:
    """Counters and gauges about the daemon itself; the statistics live in :mod:`export`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "modelmon_events", "Valid events consumed.", ["model", "stream"], registry=registry
        )
        self.invalid = Counter(
            "modelmon_invalid_events",
            "Records that failed decoding or validation (sent to the dead-letter topic).",
            ["stream", "reason"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "modelmon_dead_letter_records",
            "Records written to the dead-letter topic.",
            registry=registry,
        )
        self.dead_letter_errors = Counter(
            "modelmon_dead_letter_errors",
            "Dead-letter produce failures (the record is retried before its offset commits).",
            registry=registry,
        )
        self.dead_letter_dropped = Counter(
            "modelmon_dead_letter_dropped_records",
            "Dead letters the broker refused for good (invalid topic, not authorised, too large "
            "even without a value): logged and counted, not retried.",
            ["error"],
            registry=registry,
        )
        self.late = Counter(
            "modelmon_late_events",
            "Events older than their partition's newest event time minus allowed lateness.",
            ["model", "stream"],
            registry=registry,
        )
        self.out_of_window = Counter(
            "modelmon_out_of_window_events",
            "Predictions on time for their partition but older than the longest window's start "
            "(another partition was read that far ahead); counted, not stored.",
            ["model"],
            registry=registry,
        )
        self.unknown_models = Counter(
            "modelmon_unknown_model_events",
            "Events for models that are not configured (counted, not stored).",
            ["stream"],
            registry=registry,
        )
        self.unknown_features = Counter(
            "modelmon_unknown_features",
            "Feature values of features not in the model's config (counted, not stored).",
            ["model"],
            registry=registry,
        )
        self.label_delay = Histogram(
            "modelmon_label_delay_seconds",
            "Event-time delay between a prediction and its label.",
            buckets=(
                0.5,
                1,
                2,
                5,
                10,
                30,
                60,
                300,
                900,
                3600,
                4 * 3600,
                12 * 3600,
                86400,
                3 * 86400,
                7 * 86400,
            ),
            registry=registry,
        )
        self.pending = Gauge(
            "modelmon_pending_predictions",
            "Predictions waiting for their label.",
            ["model"],
            registry=registry,
        )
        self.duplicates = Counter(
            "modelmon_duplicate_events",
            "Predictions or labels whose id was already seen (counted once, then ignored).",
            ["model", "stream"],
            registry=registry,
        )
        self.orphans = Counter(
            "modelmon_orphan_labels",
            "Labels whose prediction never arrived within label_wait (or had expired).",
            ["model"],
            registry=registry,
        )
        self.evicted = Counter(
            "modelmon_evicted_predictions",
            "Pending predictions evicted because max_pending was reached.",
            ["model"],
            registry=registry,
        )
        self.expired = Counter(
            "modelmon_unlabelled_predictions",
            "Predictions that reached label_ttl without a label.",
            ["model"],
            registry=registry,
        )
        self.unusable_labels = Counter(
            "modelmon_unusable_labels",
            "Labels whose value cannot be used (unknown class, non-numeric regression target).",
            ["model"],
            registry=registry,
        )
        self.lag = Gauge(
            "modelmon_consumer_lag_messages",
            "End offset minus consumed position (approximate: brokers report end offsets late).",
            ["topic", "partition"],
            registry=registry,
        )
        self.kafka_up = Gauge(
            "modelmon_kafka_up", "1 when the last broker request succeeded.", registry=registry
        )
        self.eval_duration = Histogram(
            "modelmon_evaluation_duration_seconds",
            "Time to evaluate all models once.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.batch_duration = Histogram(
            "modelmon_batch_duration_seconds",
            "Time to decode and window one polled batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=registry,
        )
        self.checkpoint_age = Gauge(
            "modelmon_checkpoint_age_seconds",
            "Seconds since the last successful checkpoint (NaN before the first).",
            registry=registry,
        )
        self.checkpoint_bytes = Gauge(
            "modelmon_checkpoint_bytes", "Size of the last checkpoint written.", registry=registry
        )
        self.checkpoint_errors = Counter(
            "modelmon_checkpoint_errors",
            "Checkpoints that could not be written.",
            registry=registry,
        )
        self.restore_duration = Gauge(
            "modelmon_restore_duration_seconds",
            "Time taken to restore the last checkpoint at start (0: none restored).",
            registry=registry,
        )
        self.acting = Gauge(
            "modelmon_acting",
            "1 on the replica that runs the policy and exports the model statistics (always 1 "
            "outside group mode; in group mode the owner of predictions partition 0).",
            registry=registry,
        )
        self.acting.set(1)
        self.state_published_bytes = Counter(
            "modelmon_state_published_bytes",
            "Bytes this replica published to the group's state topic (group mode).",
            registry=registry,
        )
        self.state_flush_errors = Counter(
            "modelmon_state_flush_errors",
            "Flushes to the group's state topic that failed (retried at the next flush).",
            registry=registry,
        )
        self.build = Info("modelmon_build", "modelmon build information.", registry=registry)
        self.build.info({"version": __version__})

    def add_model(self, model: str) -> None:
        """Create a configured model's zero-valued series up front.

        A labelled counter has no series until its first increment, so ``rate()``, ``or``-less
        dashboard queries and alerts would see "no data" instead of 0 for a model that never had
        a late, duplicate or orphan event.
        """
        for stream in ("predictions", "labels"):
            self.events.labels(model, stream)
            self.late.labels(model, stream)
            self.duplicates.labels(model, stream)
        for counter in (
            self.unknown_features,
            self.orphans,
            self.evicted,
            self.expired,
            self.unusable_labels,
            self.out_of_window,
        ):
            counter.labels(model)
        self.pending.labels(model).set(0)
