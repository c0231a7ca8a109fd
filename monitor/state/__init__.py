"""Per-model state, pure: event-time windows, the label join, target encoding, evaluation."""
