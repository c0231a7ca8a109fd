"""The fault and group suites' own harness, without a broker: their judge fails them on one
lost or doubled record and on statistics off the raw samples; their producer co-partitions.

Moved from the fault suite (in process: no broker, no daemon).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from monitor.reference.profile import ReferenceProfile
from monitor.settings import Settings
from tests.support.fault_oracle import (
    expected_counts,
    expected_snapshot,
    independent_statistics,
    judge,
    save_reference,
    traffic,
)
from tests.support.fault_rig import SEED
from tests.support.fault_tools import daemon_config, write_config
from tests.support.group import PARTITIONS, partition_of


def offline_daemon(tmp_path: Path) -> tuple[ReferenceProfile, Settings]:
    """A daemon's reference and settings that no test here connects with."""
    reference = save_reference(tmp_path / "churn.json")
    settings = write_config(
        tmp_path / "c.yaml",
        daemon_config(
            bootstrap="127.0.0.1:9",
            group="g",
            topics=("p", "l", "d"),
            port=0,
            state_dir=tmp_path,
            reference=tmp_path / "churn.json",
        ),
    )
    return reference, settings


def test_the_judge_notices_one_lost_or_one_double_counted_record(tmp_path: Path) -> None:
    """Without a broker: the oracle of these tests can fail them."""
    reference, settings = offline_daemon(tmp_path)
    records = list(itertools.islice(traffic("p", "l", SEED), 3000))
    want = expected_snapshot(settings, reference, records)
    counts = expected_counts(settings, records)
    assert not judge(want.to_json(), want, counts).mismatches
    last = max(i for i, r in enumerate(records) if r.topic == "p")
    lost = judge(
        expected_snapshot(settings, reference, records[:last] + records[last + 1 :]).to_json(),
        want,
        counts,
    )
    assert lost.lost("15m") == 1 and lost.duplicated("15m") == 0
    assert any(".psi" in m for m in lost.mismatches), lost.mismatches
    doubled = want.to_json()
    doubled["models"][0]["windows"][1]["predictions"] += 1
    assert judge(doubled, want, counts).duplicated("15m") == 1
    nudged = want.to_json()
    nudged["models"][0]["windows"][0]["features"][0]["psi"] += 2e-9
    assert judge(nudged, want, counts).mismatches == [
        f"1m.x.psi: {nudged['models'][0]['windows'][0]['features'][0]['psi']} "
        f"!= {want.models[0].windows[0].features[0].psi}"
    ]


def test_the_judge_checks_the_statistics_against_the_raw_samples(tmp_path: Path) -> None:
    """Without a broker: PSI, KS D and chi-square of the final windows, recomputed from the
    produced records and the raw training values without the daemon's code, agree with the
    evaluation, and a statistic off by more than its tolerance is named."""
    reference, settings = offline_daemon(tmp_path)
    records = list(itertools.islice(traffic("p", "l", SEED, poison_every=97), 3000))
    want = expected_snapshot(settings, reference, records)
    counts = expected_counts(settings, records)
    raw = independent_statistics(settings, reference, records)
    assert set(raw) == {"1m", "15m"}
    # The stream drifts x from 0 to 0.3: the raw statistics see it (not vacuous).
    assert raw["15m"].psi["x"] > 0.05 and raw["15m"].ks_exact > 0.05
    assert not judge(want.to_json(), want, counts, raw).mismatches
    for stat, delta, expected in [
        ("psi", 2e-9, "1m.x.psi"),
        ("ks_statistic", 0.01, "1m.x.ks_statistic"),
        ("chi2_pvalue", None, "1m.x.chi2_pvalue"),
    ]:
        off = want.to_json()
        x = off["models"][0]["windows"][0]["features"][0]
        assert x["feature"] == "x"
        x[stat] = x[stat] * 1.01 if delta is None else x[stat] + delta
        found = [m for m in judge(off, want, counts, raw).mismatches if "raw" in m]
        assert [m.split(":")[0] for m in found] == [expected], found


def test_partitioner_puts_each_label_on_its_predictions_partition() -> None:
    """The producer's partition function co-partitions the stream."""
    where: dict[bytes | None, set[int]] = {}
    for rec in itertools.islice(traffic("p", "l", 1), 3000):
        where.setdefault(rec.key, set()).add(partition_of(rec))
    assert all(len(parts) == 1 for parts in where.values())
    assert set().union(*where.values()) == set(range(PARTITIONS))
