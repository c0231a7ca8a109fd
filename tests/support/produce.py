"""The one ``produce()`` of the suite: write records to a topic and wait until they are stored."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    keys: Sequence[bytes | None] | None = None,
    partitions: Sequence[int | None] | None = None,
) -> None:
    """Send ``values`` in order (with the key and partition at the same index, when given:
    else no key, the producer's partitioner), flush, close."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    try:
        for i, value in enumerate(values):
            key = None if keys is None else keys[i]
            partition = None if partitions is None else partitions[i]
            producer.send(topic, value=value, key=key, partition=partition)
        producer.flush()
    finally:
        producer.close()


def by_index(values: Sequence[bytes]) -> list[bytes]:
    """Keys ``b"0"``, ``b"1"``, …: records spread over the partitions by the key's hash."""
    return [str(i).encode() for i in range(len(values))]
