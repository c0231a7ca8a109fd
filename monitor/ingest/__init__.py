"""Ingest: the Kafka adapter (the only importer of ``kafka``), decoding, and routing a batch."""
