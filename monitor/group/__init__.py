"""Group mode (``coordination.enabled``): one truth and one acting replica per consumer group.

Each replica keeps a model state per input partition it owns and publishes it to the internal
state topic (``records``: the records; ``topic``: the Kafka I/O); every replica reads that
topic and merges all partitions into global windows; the owner of the predictions topic's
partition 0 acts (``coordinator``).
"""
