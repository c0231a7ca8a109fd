"""State as the version before issue 12 wrote it: blake2b id keys, no ``hash`` field.

That version keyed the join by blake2b-64 (:func:`monitor.state.id_hash.blake2b_keys`, pinned
to its old values by ``test_id_hash``) and wrote the join's meta as ``{"early": [...]}``. So
state built with :func:`old_keys` in force and then passed through :func:`as_old` is, byte for
byte in what it means, what that version wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from monitor.state.id_hash import blake2b_keys


@contextmanager
def old_keys() -> Iterator[None]:
    """Key ids as before issue 12 while in force (the only place the code hashes ids)."""
    with mock.patch("monitor.state.id_hash.id_keys", blake2b_keys):
        yield


def as_old(join_meta: dict[str, Any]) -> dict[str, Any]:
    """A join's meta without what issue 12 added (it did not exist before)."""
    join_meta.pop("hash")
    join_meta.pop("blake2b", None)
    return join_meta


def old_models(meta: dict[str, Any]) -> dict[str, Any]:
    """Every model's join meta in a checkpoint's or shard record's ``meta`` made old."""
    for model in meta["models"].values():
        as_old(model["perf"]["join"])
    return meta
