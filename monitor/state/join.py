"""Predictions ↔ late labels, by id, in event time. Pure: no clock, no I/O.

Every prediction is remembered for ``label_ttl`` of event time (the model's newest prediction
time is "now"), so that its label can find it and a second prediction or label with the same id
is recognised as a duplicate. Memory is what matters here (a busy model keeps millions of
predictions pending), so rows live in sorted numpy columns keyed by a 64-bit hash of the id
(:mod:`monitor.state.id_hash`: xxh3-64, or blake2b-64 in state written before issue 12),
about 40 bytes each, with a small dict-indexed buffer for recent inserts that is merged into
the sorted part in bulk. Labels that arrive before their prediction wait up to ``label_wait``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.state import restore_checks as checks
from monitor.state.id_hash import ID_HASH, LEGACY_HASH, KeyArray, id_keys, legacy_bound
from monitor.state.join_journal import JoinJournal

FloatArray = npt.NDArray[np.float64]
PENDING, JOINED, DEAD = 0, 1, 2
_BUFFER = 32_768  # rows merged into the sorted part at once: amortises the O(n) insert
__all__ = ["DEAD", "JOINED", "PENDING", "JoinCounts", "KeyArray", "LabelJoin", "Pairs", "id_keys"]


@dataclass(frozen=True)
class Pairs:
    """Joined prediction/label pairs, as columns (``proba`` has one column per score)."""

    ts: FloatArray  # the prediction's event time: the pane the pair belongs to
    y_pred: FloatArray
    proba: npt.NDArray[np.float32]
    y_true: FloatArray
    delay: FloatArray  # label time minus prediction time

    def __len__(self) -> int:
        return int(self.ts.size)


@dataclass
class JoinCounts:
    joined: int = 0
    duplicate_predictions: int = 0
    duplicate_labels: int = 0
    orphan_labels: int = 0
    evicted: int = 0
    expired_unlabelled: int = 0

    def add(self, other: JoinCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class LabelJoin:
    """Pending predictions and early labels of one model."""

    ttl: float
    label_wait: float
    max_pending: int
    proba_width: int
    max_early: int = 100_000
    keys: KeyArray = field(default_factory=lambda: np.zeros(0, np.uint64))
    ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    pred: FloatArray = field(default_factory=lambda: np.zeros(0))
    proba: npt.NDArray[np.float32] = field(init=False)
    state: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, np.uint8))
    early: dict[int, tuple[float, float]] = field(default_factory=dict)  # key → (y, label ts)
    # The insert buffer: columns like the sorted part's, unsorted, with a dict index by key.
    buffer: dict[int, int] = field(default_factory=dict)  # key → buffer row
    #: Group mode: what changed since the last publication (see ``state/join_journal``).
    journal: JoinJournal | None = None
    #: Restored from state written before issue 12: the newest event time of a row or an
    #: early label keyed by blake2b. Until every row and early label that old has gone, ids
    #: are looked up under both hashes (callers pass ``legacy`` keys); then None, for good.
    legacy: float | None = None
    _bkeys: KeyArray = field(init=False)
    _bts: FloatArray = field(init=False)
    _bpred: FloatArray = field(init=False)
    _bproba: npt.NDArray[np.float32] = field(init=False)
    _bstate: npt.NDArray[np.uint8] = field(init=False)

    def __post_init__(self) -> None:
        self.proba = np.zeros((self.keys.size, self.proba_width), np.float32)
        self._reset_buffer(1024)

    def _reset_buffer(self, capacity: int) -> None:
        self.buffer = {}
        self._bkeys = np.zeros(capacity, np.uint64)
        self._bts = np.zeros(capacity)
        self._bpred = np.zeros(capacity)
        self._bproba = np.zeros((capacity, self.proba_width), np.float32)
        self._bstate = np.zeros(capacity, np.uint8)

    def _buffer_append(
        self,
        keys: KeyArray,
        ts: FloatArray,
        pred: FloatArray,
        proba: npt.NDArray[np.float32],
        state: npt.NDArray[np.uint8],
    ) -> None:
        start, n = len(self.buffer), keys.size
        if start + n > self._bkeys.size:  # grow geometrically; merged away at _BUFFER rows
            cap = max(2 * self._bkeys.size, start + n)
            self._bkeys = np.resize(self._bkeys, cap)
            self._bts = np.resize(self._bts, cap)
            self._bpred = np.resize(self._bpred, cap)
            self._bproba = np.resize(self._bproba, (cap, self.proba_width))
            self._bstate = np.resize(self._bstate, cap)
        end = start + n
        self._bkeys[start:end] = keys
        self._bts[start:end] = ts
        self._bpred[start:end] = pred
        self._bproba[start:end] = proba
        self._bstate[start:end] = state
        self.buffer.update(zip(keys.tolist(), range(start, end), strict=True))

    # -- lookups ------------------------------------------------------------------------------
    def _find(self, keys: KeyArray) -> npt.NDArray[np.intp]:
        """Row index of each key in the sorted part, or -1."""
        if self.keys.size == 0:
            return np.full(keys.size, -1, dtype=np.intp)
        idx = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        hit = (self.keys[idx] == keys) & (self.state[idx] != DEAD)
        return np.where(hit, idx, -1)

    def pending(self) -> int:
        return int((self.state == PENDING).sum()) + int(
            (self._bstate[: len(self.buffer)] == PENDING).sum()
        )

    # -- predictions ------------------------------------------------------------------------
    def unseen(self, keys: KeyArray, legacy: KeyArray | None = None) -> npt.NDArray[np.bool_]:
        """Mask of keys never seen before (the first of repeats within ``keys`` counts).

        ``legacy``: the same ids' blake2b keys, while :attr:`legacy` rows remain (those are
        only ever in the sorted part: the buffer takes new keys only)."""
        # Each distinct key once, in order: the sorted part is searched by ascending keys,
        # which walks it front to back (far fewer cache misses than random ones).
        distinct, first = np.unique(keys, return_index=True)
        new = self._find(distinct) < 0
        if legacy is not None:
            new &= self._find(legacy[first]) < 0
        if self.buffer:
            buffered = map(self.buffer.__contains__, distinct.tolist())
            new &= ~np.fromiter(buffered, dtype=bool, count=distinct.size)
        fresh = np.zeros(keys.size, dtype=bool)
        fresh[first[new]] = True
        return fresh

    def add_predictions(
        self, keys: KeyArray, ts: FloatArray, pred: FloatArray, proba: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.bool_], Pairs, JoinCounts]:
        """Remember new predictions; returns (first-seen mask, pairs joined to early labels).

        :meth:`unseen` then :meth:`insert` in one call, for a join without blake2b keys (the
        daemon calls the two itself, with both hashes while a migration lasts)."""
        fresh = self.unseen(keys)
        pairs, counts = self.insert(keys[fresh], ts[fresh], pred[fresh], proba[fresh])
        counts.duplicate_predictions = int(keys.size - fresh.sum())
        return fresh, pairs, counts

    def insert(
        self,
        keys: KeyArray,
        ts: FloatArray,
        pred: FloatArray,
        proba: npt.NDArray[np.float32],
        legacy: KeyArray | None = None,
    ) -> tuple[Pairs, JoinCounts]:
        """Remember predictions the caller already knows are new (see :meth:`unseen`);
        returns the pairs joined to labels that were waiting for them (an early label kept
        under its ``legacy`` key too). The rows are keyed by ``keys`` whatever ``legacy``."""
        counts = JoinCounts()
        state = np.zeros(keys.size, np.uint8)
        rows: list[int] = []
        ys: list[float] = []
        label_ts: list[float] = []
        if self.early:  # labels that came first join now (rare: checked only when any wait)
            old = legacy.tolist() if legacy is not None else None
            for i, k in enumerate(keys.tolist()):
                early = self.early.pop(k, None)
                if early is None and old is not None:
                    early = self.early.pop(old[i], None)
                if early is not None:
                    rows.append(i)
                    ys.append(early[0])
                    label_ts.append(early[1])
            state[rows] = JOINED
        self._buffer_append(keys, ts, pred, proba, state)
        if self.journal is not None:
            self.journal.inserted(keys, ts, pred, proba, state)
        r = np.array(rows, dtype=np.intp)
        pairs = Pairs(
            ts[r],
            pred[r],
            proba[r],
            np.array(ys, dtype=np.float64),
            np.array(label_ts, dtype=np.float64) - ts[r],
        )
        counts.joined = len(pairs)
        if len(self.buffer) >= _BUFFER:
            self._flush()
            # Hold max_pending here too, not only on the maintenance tick: between ticks the
            # store could otherwise grow by a whole evaluation interval's traffic.
            counts.evicted = self._evict()
            self._compact()
        return pairs, counts

    # -- labels -----------------------------------------------------------------------------
    def add_labels(
        self, keys: KeyArray, y: FloatArray, ts: FloatArray, legacy: KeyArray | None = None
    ) -> tuple[Pairs, JoinCounts]:
        """Join labels to their predictions; labels of unseen ids wait as early labels (under
        ``keys``). ``legacy``: the ids' blake2b keys, tried when ``keys`` find nothing."""
        rows = self._find(keys)
        if legacy is None and (rows >= 0).all() and np.unique(keys).size == keys.size:
            # The steady state, in numpy: every label finds its row in the sorted part, once.
            fresh = self.state[rows] != JOINED
            taken = rows[fresh]
            self.state[taken] = JOINED
            if self.journal is not None:
                self.journal.joined.update(dict.fromkeys(keys[fresh].tolist()))
            p_ts = self.ts[taken]
            pairs = Pairs(p_ts, self.pred[taken], self.proba[taken], y[fresh], ts[fresh] - p_ts)
            return pairs, JoinCounts(taken.size, duplicate_labels=keys.size - taken.size)
        counts = JoinCounts()
        old = self._find(legacy) if legacy is not None else None
        found: list[tuple[float, float, npt.NDArray[np.float32], float, float]] = []
        for i in range(keys.size):
            k, r = int(keys[i]), int(rows[i])
            if r < 0 and old is not None and k not in self.buffer and old[i] >= 0:
                r = int(old[i])
                k = int(self.keys[r])  # the row's own key: the journal names it
            if r >= 0:
                if self.state[r] == JOINED:
                    counts.duplicate_labels += 1
                    continue
                self.state[r] = JOINED
                p_ts, p_pred, p_proba = float(self.ts[r]), float(self.pred[r]), self.proba[r]
            elif (b := self.buffer.get(k)) is not None:
                if self._bstate[b] == JOINED:
                    counts.duplicate_labels += 1
                    continue
                self._bstate[b] = JOINED
                p_ts, p_pred, p_proba = float(self._bts[b]), float(self._bpred[b]), self._bproba[b]
            else:
                if k in self.early or (legacy is not None and int(legacy[i]) in self.early):
                    counts.duplicate_labels += 1
                else:
                    self.early[k] = (float(y[i]), float(ts[i]))
                continue
            found.append((p_ts, p_pred, p_proba, float(y[i]), float(ts[i]) - p_ts))
            if self.journal is not None:
                self.journal.joined[k] = None
        counts.joined = len(found)
        pairs = Pairs(
            np.array([f[0] for f in found], dtype=np.float64),
            np.array([f[1] for f in found], dtype=np.float64),
            np.array([f[2] for f in found], dtype=np.float32).reshape(len(found), self.proba_width),
            np.array([f[3] for f in found], dtype=np.float64),
            np.array([f[4] for f in found], dtype=np.float64),
        )
        return pairs, counts

    # -- expiry -----------------------------------------------------------------------------
    def expire(self, now: float) -> JoinCounts:
        """Forget predictions older than the TTL and early labels older than ``label_wait``.

        ``now`` is event time: the model's newest prediction time. Predictions that expire
        without a label are counted (``expired_unlabelled``); early labels that never met
        their prediction are orphans.
        """
        counts = JoinCounts()
        stale = [k for k, (_, t) in self.early.items() if t < now - self.label_wait]
        if len(self.early) - len(stale) > self.max_early:
            # Bounded: the oldest early labels give way (counted as orphans, never silent).
            by_age = sorted(self.early, key=lambda k: self.early[k][1])
            stale = by_age[: len(self.early) - self.max_early]
        for k in stale:
            del self.early[k]
        counts.orphan_labels = len(stale)
        self._flush()
        cutoff = now - self.ttl
        old = (self.ts < cutoff) & (self.state != DEAD)
        counts.expired_unlabelled = int((old & (self.state == PENDING)).sum())
        self.state[old] = DEAD
        counts.evicted = self._evict()
        self._compact()
        if self.legacy is not None:  # the blake2b keys gone: one hash from now on
            bound = self.legacy
            if not (self.ts <= bound).any() and all(t > bound for _, t in self.early.values()):
                self.legacy = None
        return counts

    def _evict(self) -> int:
        """Hold the sorted part to ``max_pending`` rows; returns how many pending were evicted.

        The oldest rows go first: their labels are the least likely still to come. Joined rows
        (kept only to recognise duplicates) give way too but are not counted as evictions.
        """
        alive = self.state != DEAD
        excess = int(alive.sum()) - self.max_pending
        if excess <= 0:
            return 0
        age = np.where(alive, self.ts, np.inf)
        victims = np.argpartition(age, excess - 1)[:excess]  # the `excess` oldest, O(n)
        evicted = int((self.state[victims] == PENDING).sum())
        self.state[victims] = DEAD
        return evicted

    def _flush(self) -> None:
        """Merge the insert buffer into the sorted columns."""
        n = len(self.buffer)
        if not n:
            return
        order = np.argsort(self._bkeys[:n], kind="stable")
        bkeys = self._bkeys[:n][order]
        at = np.searchsorted(self.keys, bkeys)
        self.keys = np.insert(self.keys, at, bkeys)
        self.ts = np.insert(self.ts, at, self._bts[:n][order])
        self.pred = np.insert(self.pred, at, self._bpred[:n][order])
        self.proba = np.insert(self.proba, at, self._bproba[:n][order], axis=0)
        self.state = np.insert(self.state, at, self._bstate[:n][order])
        self._reset_buffer(self._bkeys.size)

    def _compact(self) -> None:
        dead = self.state == DEAD
        if dead.any():
            keep = ~dead
            self.keys, self.ts, self.pred = self.keys[keep], self.ts[keep], self.pred[keep]
            self.proba, self.state = self.proba[keep], self.state[keep]

    def nbytes(self) -> int:
        """Bytes held in the sorted columns (the buffer and early labels are bounded extras)."""
        return sum(a.nbytes for a in (self.keys, self.ts, self.pred, self.proba, self.state))

    # -- checkpoint -------------------------------------------------------------------------
    def to_state(self, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> dict[str, Any]:
        """Columns go to ``arrays`` (1 M pending predictions would be 100 MB as JSON)."""
        self._flush()
        for name in ("keys", "ts", "pred", "proba", "state"):
            arrays[f"{prefix}.{name}"] = getattr(self, name)
        meta: dict[str, Any] = {"early": [[str(k), y, t] for k, (y, t) in self.early.items()]}
        meta["hash"] = ID_HASH  # absent before issue 12: every key was blake2b's
        if self.legacy is not None:
            meta[LEGACY_HASH] = self.legacy
        return meta

    def load_state(self, state: object, arrays: dict[str, npt.NDArray[Any]], prefix: str) -> None:
        """Restore :meth:`to_state`; raises ValueError for any part that does not fit."""
        meta = checks.mapping(state, f"{prefix} join")
        found = arrays.get(f"{prefix}.keys")
        if found is None or found.ndim != 1:
            raise ValueError(f"checkpoint array {prefix}.keys is missing or not one-dimensional")
        n = found.shape[0]
        keys = checks.array(arrays, f"{prefix}.keys", np.uint64, (n,))
        ts = checks.array(arrays, f"{prefix}.ts", np.float64, (n,))
        pred = checks.array(arrays, f"{prefix}.pred", np.float64, (n,))
        # (n, width), not reshape(-1, width): a regression model has width 0.
        proba = checks.array(arrays, f"{prefix}.proba", np.float32, (n, self.proba_width))
        state = checks.array(arrays, f"{prefix}.state", np.uint8, (n,))
        if n > 1 and not (keys[1:] > keys[:-1]).all():  # lookups bisect the keys
            raise ValueError(f"checkpoint array {prefix}.keys is not strictly increasing")
        if (state > DEAD).any() or not np.isfinite(ts).all():
            raise ValueError(f"checkpoint {prefix}: row states or times out of range")
        rows = checks.sequence(meta.get("early"), f"{prefix} early labels", self.max_early)
        early: dict[int, tuple[float, float]] = {}
        for row in rows:
            key, y, t = checks.sequence(row, f"{prefix} early label", 3)
            k = checks.key64(key, "early label key", f"checkpoint {prefix}")
            early[k] = checks.number(y, "early label value"), checks.number(t, "early label time")
        self.install(keys.copy(), ts.copy(), pred.copy(), proba.copy(), state.copy(), early)
        self.legacy = legacy_bound(meta, prefix, ts[state != DEAD], early)

    def install(
        self,
        keys: KeyArray,
        ts: FloatArray,
        pred: FloatArray,
        proba: npt.NDArray[np.float32],
        state: npt.NDArray[np.uint8],
        early: dict[int, tuple[float, float]],
    ) -> None:
        """Replace every row (``keys`` strictly increasing) and the early labels."""
        self.keys, self.ts, self.pred, self.proba, self.state = keys, ts, pred, proba, state
        self.early = early
        self._reset_buffer(1024)
