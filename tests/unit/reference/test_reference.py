"""Reference profiles: bins, degenerate inputs, building from files, JSON round trip, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from monitor.reference.bins import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfileError,
)
from monitor.reference.build import (
    build_categorical_profile,
    build_numeric_profile,
    build_reference,
)
from monitor.reference.profile import ReferenceProfile, compute_content_hash
from monitor.reference.training_data import read_training_file
from monitor.vocabulary import FeatureKind

INF = np.inf


def brute_force_ks_bound(profile: NumericProfile, values: npt.NDArray[np.float64]) -> float:
    """Largest reference share in one bin that has points besides its right edge."""
    x = values[~np.isnan(values)]
    lows = np.concatenate(([-INF], profile.edges))
    highs = np.concatenate((profile.edges, [INF]))
    worst = 0
    for i, (low, high) in enumerate(zip(lows, highs, strict=True)):
        if 0 < i < profile.edges.size and np.nextafter(low, INF) == high:
            continue  # (low, high] holds the single float `high`
        in_bin = (x <= high) if i == 0 else (x > low) & (x <= high)
        worst = max(worst, int(np.count_nonzero(in_bin)))
    return worst / x.size


# --- numeric profiles ----------------------------------------------------------------------


def test_bins_are_right_closed_with_open_outer_bins_and_a_missing_bin() -> None:
    profile = build_numeric_profile(np.array([1.0, 2.0, 3.0]), fine_bins=5)
    assert profile.edges.tolist() == [
        np.nextafter(1.0, -INF), 1.0, np.nextafter(2.0, -INF), 2.0, np.nextafter(3.0, -INF), 3.0
    ]  # fmt: skip
    values = [-INF, 0.5, 1.0, 1.5, 2.0, np.nextafter(2.0, INF), 3.0, 4.0, INF, np.nan]
    assert profile.bin_index(values).tolist() == [0, 0, 1, 2, 3, 4, 5, 6, 6, 7]
    assert profile.n_bins == 8
    assert profile.counts.tolist() == [0, 1, 0, 1, 0, 1, 0, 0]


def test_counts_match_binning_the_reference_and_ks_bound_is_exact() -> None:
    g = np.random.default_rng(0)
    ref = np.concatenate(
        [g.normal(size=3_000), np.round(g.normal(0, 2, 2_000)), [np.nan] * 50, [-INF, INF, INF]]
    )
    g.shuffle(ref)
    for fine_bins in (1, 7, 100, 1000):
        profile = build_numeric_profile(ref, fine_bins=fine_bins)
        assert np.all(np.diff(profile.edges) > 0)
        finite = ref[np.isfinite(ref)]
        assert profile.edges[0] <= finite.min() and profile.edges[-1] == finite.max()
        binned = np.bincount(profile.bin_index(ref), minlength=profile.n_bins)
        np.testing.assert_array_equal(profile.counts, binned)
        assert profile.counts[-1] == 50
        coarse_mass = np.bincount(profile.coarse, weights=profile.counts[:-1])
        assert np.all(coarse_mass > 0) and profile.n_coarse <= 10
        assert profile.ks_bound == pytest.approx(brute_force_ks_bound(profile, ref), abs=1e-15)


def test_point_masses_get_a_bin_of_their_own() -> None:
    g = np.random.default_rng(1)
    ref = np.concatenate([np.zeros(6_000), np.full(500, 3.0), g.exponential(size=3_500)])
    profile = build_numeric_profile(ref, fine_bins=1000)
    for v, count in [(0.0, 6_000), (3.0, 500)]:
        i = int(profile.bin_index([v])[0])
        assert profile.edges[i] == v and profile.edges[i - 1] == np.nextafter(v, -INF)
        assert profile.counts[i] == count
    # A value holding at most 1/fine_bins of the reference is not isolated.
    rare = build_numeric_profile(np.concatenate([np.full(10, 5.0), g.normal(size=9_990)]))
    assert np.nextafter(5.0, -INF) not in rare.edges


def test_coarse_map_groups_quantiles_and_covers_point_masses() -> None:
    g = np.random.default_rng(2)
    ref = np.where(g.random(50_000) < 0.6, 0.0, g.exponential(size=50_000))
    profile = build_numeric_profile(ref)
    mass = np.bincount(profile.coarse, weights=profile.counts[:-1]) / ref.size
    # 60% zeros form one coarse bin; the rest splits into ~10% groups.
    np.testing.assert_allclose(mass, [0.6, 0.1, 0.1, 0.1, 0.1], atol=0.003)
    assert profile.n_coarse == 5


@pytest.mark.parametrize(
    ("values", "edges", "counts", "ks_bound"),
    [
        ([], [], [0, 0], 0.0),
        ([np.nan, np.nan], [], [0, 2], 0.0),
        ([INF, -INF], [], [2, 0], 1.0),
        ([4.0], [np.nextafter(4.0, -INF), 4.0], [0, 1, 0, 0], 0.0),
        ([2.5] * 1000 + [np.nan], [np.nextafter(2.5, -INF), 2.5], [0, 1000, 0, 1], 0.0),
    ],
    ids=["empty", "all missing", "only infinite", "single value", "constant"],
)
def test_degenerate_inputs(
    values: list[float], edges: list[float], counts: list[int], ks_bound: float
) -> None:
    profile = build_numeric_profile(np.array(values, dtype=float))
    assert profile.edges.tolist() == edges
    assert profile.counts.tolist() == counts
    assert profile.ks_bound == ks_bound
    assert profile.coarse.tolist() == [0] * (len(edges) + 1)


def test_fewer_values_than_bins_makes_binning_exact() -> None:
    ref = np.random.default_rng(3).normal(size=300)
    profile = build_numeric_profile(ref, fine_bins=1000)
    assert profile.ks_bound == 0.0
    assert profile.edges.size == 600


def test_negative_zero_and_zero_build_the_same_profile() -> None:
    a = build_numeric_profile(np.array([-0.0, 0.0, 1.0] * 10), fine_bins=4)
    b = build_numeric_profile(np.array([0.0, -0.0, 1.0] * 10), fine_bins=4)
    assert a == b and a.to_dict() == b.to_dict()


def test_profiles_are_immutable() -> None:
    profile = build_numeric_profile(np.arange(10.0))
    with pytest.raises(ValueError, match="read-only"):
        profile.counts[0] = 5


# --- categorical profiles ------------------------------------------------------------------


def test_categorical_profile_keeps_most_frequent_and_folds_the_rest() -> None:
    values: list[object] = ["b"] * 3 + ["a"] * 3 + ["c"] * 2 + ["d"] + [None, float("nan")]
    profile = build_categorical_profile(values, max_categories=3)
    assert profile.categories == ("a", "b", "c")  # by frequency, ties by name
    assert profile.counts.tolist() == [3, 3, 2, 1, 2]
    assert profile.n_bins == 5
    assert profile.bin_index(["c", "d", "zz", None, float("nan"), "a"]).tolist() == [
        2,
        3,
        3,
        4,
        4,
        0,
    ]


def test_category_matching_is_by_label_with_integral_floats_as_ints() -> None:
    # CSV parsing turns the code "3" into 3.0; events may carry 3 or "3". Booleans are the
    # integers they are in Python and JSON-number-wise (monitor.vocabulary.canonical_key), as
    # for classes: true, 1 and "1" share one category.
    profile = build_categorical_profile([3.0, 3.0, 1.5, True, np.int64(7)])
    assert profile.categories == ("3", "1", "1.5", "7")
    values = ["3", 3, 3.0, np.float32(3.0), 1.5, "1.50", True, 1, "1", 7, False]
    assert profile.bin_index(values).tolist() == [0, 0, 0, 0, 2, 4, 1, 1, 1, 3, 4]


# --- building a reference ------------------------------------------------------------------

FEATURES: dict[str, FeatureKind] = {"amount": "numeric", "country": "categorical"}


def training_columns(rows: int = 2_000, seed: int = 5) -> dict[str, list[object]]:
    g = np.random.default_rng(seed)
    amount: list[object] = g.lognormal(3, 1, rows).tolist()
    amount[::50] = [None] * len(amount[::50])
    country: list[object] = g.choice(["DE", "FR", "US"], rows, p=[0.5, 0.3, 0.2]).tolist()
    return {
        "amount": amount,
        "country": country,
        "score": g.random(rows).tolist(),
        "prediction": g.integers(0, 2, rows).tolist(),
        "label": g.integers(0, 2, rows).tolist(),
        "id": [f"r{i}" for i in range(rows)],
    }


def test_build_reference_for_binary_classification_profiles_the_score() -> None:
    columns = training_columns()
    ref = build_reference("fraud", "binary_classification", columns, FEATURES)
    assert (ref.model, ref.task, ref.rows) == ("fraud", "binary_classification", 2_000)
    amount = ref.features["amount"]
    assert isinstance(amount, NumericProfile) and amount.counts[-1] == 40
    country = ref.features["country"]
    assert isinstance(country, CategoricalProfile) and set(country.categories) == {"DE", "FR", "US"}
    assert isinstance(ref.prediction, NumericProfile)
    assert ref.prediction == build_numeric_profile(np.array(columns["score"], dtype=float))
    assert len(ref.content_hash) == 64


def test_build_reference_score_profile_hand_computed() -> None:
    """An oracle that does not go through build_numeric_profile: five scores and a missing one,
    two fine bins. Sorted .1 .3 .5 .7 .9; ranks 0, 2, 4 give the edges .1 .5 .9 (no value
    holds more than 1/2 of them, so no point-mass edge). Right-closed bins (-inf, .1] (.1, .5]
    (.5, .9] (.9, inf) hold 1 2 2 0, then 1 missing; the largest bin with an interior holds
    2/5 (the KS bound). Coarse groups of 1/10 each: every non-empty bin closes a group, and
    the empty last one (under half a share) joins its neighbour."""
    columns: dict[str, list[object]] = {
        "score": [0.5, 0.1, None, 0.3, 0.9, 0.7],
        "prediction": [1, 0, 0, 0, 1, 1],
    }
    ref = build_reference("m", "binary_classification", columns, {}, fine_bins=2)
    score = ref.prediction
    assert isinstance(score, NumericProfile)
    assert score.edges.tolist() == [0.1, 0.5, 0.9]
    assert score.counts.tolist() == [1, 2, 2, 0, 1]
    assert score.ks_bound == 0.4
    assert score.coarse.tolist() == [0, 1, 2, 2] and score.n_coarse == 3
    assert (score.low, score.out_of_range) == (0.1, 0)
    assert ref.rows == 6


def test_build_reference_point_mass_profile_hand_computed() -> None:
    """Seven values, 0 four times (4/7 > 1/2 of them: a point mass), two fine bins. Ranks
    0, 3, 6 of 0 0 0 0 1 2 4 give 0 0 4; the point mass adds nextafter(0, -inf) (-5e-324).
    Bins (-inf, -5e-324] (-5e-324, 0] (0, 4] (4, inf) hold 0 4 3 0; the point-mass bin has
    no interior, so the KS bound is 3/7 from (0, 4], not 4/7."""
    columns: dict[str, list[object]] = {"v": [1.0, 0.0, 4.0, 0.0, 2.0, 0.0, 0.0]}
    ref = build_reference("m", "regression", columns, {"v": "numeric"}, fine_bins=2)
    v = ref.features["v"]
    assert isinstance(v, NumericProfile)
    assert v.edges.tolist() == [-5e-324, 0.0, 4.0]
    assert v.counts.tolist() == [0, 4, 3, 0, 0]
    assert v.ks_bound == 3 / 7
    assert ref.prediction is None


def test_build_reference_prediction_profile_per_task() -> None:
    columns = training_columns()
    regression = build_reference("m", "regression", columns, FEATURES)
    assert isinstance(regression.prediction, NumericProfile)
    assert int(regression.prediction.counts.sum()) == 2_000
    multiclass = build_reference("m", "multiclass_classification", columns, FEATURES)
    assert isinstance(multiclass.prediction, CategoricalProfile)
    assert multiclass.prediction.categories in {("0", "1"), ("1", "0")}
    del columns["score"]
    assert build_reference("m", "binary_classification", columns, FEATURES).prediction is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("amount"), r"missing from the training data: \['amount'\]"),
        (lambda c: c["country"].pop(), "different lengths"),
        (lambda c: c["amount"].__setitem__(7, "n/a"), "'amount' is numeric but row 7 holds 'n/a'"),
        (lambda c: [col.clear() for col in c.values()], "no rows"),
    ],
    ids=["missing feature", "ragged columns", "non-numeric value", "no rows"],
)
def test_build_reference_rejects_bad_columns(change: Any, message: str) -> None:
    columns = training_columns(100)
    change(columns)
    with pytest.raises(ReferenceProfileError, match=message):
        build_reference("m", "binary_classification", columns, FEATURES)


def test_build_reference_rejects_unknown_task() -> None:
    with pytest.raises(ReferenceProfileError, match="task must be one of"):
        build_reference("m", "ranking", training_columns(10), FEATURES)


# --- JSON round trip and validation --------------------------------------------------------


@pytest.fixture
def reference() -> ReferenceProfile:
    return build_reference("fraud", "binary_classification", training_columns(), FEATURES)


def test_save_load_round_trip(reference: ReferenceProfile, tmp_path: Path) -> None:
    path = tmp_path / "fraud.json"
    reference.save(path)
    loaded = ReferenceProfile.load(path)
    assert loaded == reference
    assert loaded.content_hash == reference.content_hash
    assert loaded.to_dict() == reference.to_dict()
    assert list(tmp_path.iterdir()) == [path]  # the temp file was renamed into place


def test_content_hash_tracks_content_not_feature_order(reference: ReferenceProfile) -> None:
    other = build_reference("fraud", "binary_classification", training_columns(seed=6), FEATURES)
    assert other.content_hash != reference.content_hash
    renamed = build_reference("fraud2", "binary_classification", training_columns(), FEATURES)
    assert renamed.content_hash != reference.content_hash
    reordered = dict(reversed(list(reference.features.items())))
    assert reference.content_hash == compute_content_hash(
        "fraud", "binary_classification", reference.rows, reordered, reference.prediction
    )


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_truncated_file_is_a_clear_error(reference: ReferenceProfile, tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    reference.save(path)
    path.write_text(path.read_text()[:500])
    with pytest.raises(ReferenceProfileError, match=r"ref\.json is not valid JSON .*truncated"):
        ReferenceProfile.load(path)


def test_edited_file_fails_the_content_hash(reference: ReferenceProfile, tmp_path: Path) -> None:
    data = reference.to_dict()
    data["features"]["amount"]["counts"][3] += 1
    data["features"]["amount"]["counts"][4] -= 1
    with pytest.raises(ReferenceProfileError, match="content hash mismatch"):
        ReferenceProfile.load(write_json(tmp_path / "ref.json", data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["features"]["amount"]["edges"].reverse(), "'amount': edges must be strictly"),
        (lambda d: d["features"]["amount"]["counts"].pop(), "'amount': counts must be"),
        (lambda d: d["features"]["amount"].pop("ks_bound"), "'amount': missing field 'ks_bound'"),
        (lambda d: d["features"]["amount"].update(kind="text"), "'amount': unknown kind 'text'"),
        (lambda d: d["features"]["country"]["counts"].__setitem__(0, 1.5), "'country': counts"),
        (lambda d: d["features"]["country"]["counts"].__setitem__(0, 0), "'country': counts sum"),
        (lambda d: d["prediction"]["coarse"].__setitem__(0, 1), "prediction: coarse must"),
        (lambda d: d.update(rows=True), "field 'rows' must be int"),
        (lambda d: d.update(task="ranking"), "task must be one of"),
        (lambda d: d.update(format_version=9), "unsupported format_version 9"),
        (lambda d: d.pop("model"), "missing field 'model'"),
    ],
)
def test_invalid_content_names_the_problem(
    reference: ReferenceProfile, tmp_path: Path, edit: Any, message: str
) -> None:
    data = reference.to_dict()
    edit(data)
    path = write_json(tmp_path / "ref.json", data)
    with pytest.raises(ReferenceProfileError, match=message) as info:
        ReferenceProfile.load(path)
    assert str(path) in str(info.value)


def test_missing_file_and_non_object(tmp_path: Path) -> None:
    with pytest.raises(ReferenceProfileError, match="cannot read reference profile"):
        ReferenceProfile.load(tmp_path / "absent.json")
    with pytest.raises(ReferenceProfileError, match="expected a JSON object"):
        ReferenceProfile.load(write_json(tmp_path / "list.json", [1, 2]))


# --- training files ------------------------------------------------------------------------


def test_read_csv(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("amount,country,score,zip\n12.5,DE,0.9,01234\n,FR,0.1,\n\n3,,1e-3,99\n")
    assert read_training_file(path) == {
        "amount": [12.5, None, 3.0],
        "country": ["DE", "FR", None],
        "score": [0.9, 0.1, 0.001],
        "zip": [1234.0, None, 99.0],
    }
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ReferenceProfileError, match=r"train\.csv:3: expected 2 fields, found 1"):
        read_training_file(path)


def test_read_csv_keeps_categorical_cells_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("amount,zip,score\n12.5,01234,0.9\n7,,0.1\n3,1e3,0.5\n")
    kinds: dict[str, FeatureKind] = {"amount": "numeric", "zip": "categorical"}
    assert read_training_file(path, kinds) == {
        "amount": [12.5, 7.0, 3.0],
        "zip": ["01234", None, "1e3"],
        "score": [0.9, 0.1, 0.5],
    }
    # The category built from the file is the code live events carry, leading zero and all.
    ref = build_reference("m", "regression", read_training_file(path, kinds), kinds)
    zip_profile = ref.features["zip"]
    assert isinstance(zip_profile, CategoricalProfile)
    assert zip_profile.bin_index(["01234", "1234", "1e3"]).tolist() == [0, 2, 1]


def test_read_jsonl_flattens_features(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    lines = [
        {"id": "a", "features": {"amount": 1.5, "country": "DE"}, "score": 0.2, "label": 0},
        {"id": "b", "features": {"amount": None}, "score": 0.7},
        {"id": "c", "features": {"country": "FR", "age": 40}, "label": 1},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert read_training_file(path) == {
        "id": ["a", "b", "c"],
        "score": [0.2, 0.7, None],
        "label": [0, None, 1],
        "amount": [1.5, None, None],
        "country": ["DE", None, "FR"],
        "age": [None, None, 40],
    }
    path.write_text('{"id": 1}\n{"id": 2,\n')
    with pytest.raises(ReferenceProfileError, match=r"train\.jsonl:2: invalid JSON"):
        read_training_file(path)
    path.write_text('{"score": 1, "features": {"score": 2}}\n')
    with pytest.raises(ReferenceProfileError, match=r"features \['score'\] clash"):
        read_training_file(path)


def test_unsupported_or_missing_training_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceProfileError, match=r"unsupported training file type '\.parquet'"):
        read_training_file(tmp_path / "train.parquet")
    with pytest.raises(ReferenceProfileError, match="cannot read training file"):
        read_training_file(tmp_path / "absent.csv")


def test_file_to_saved_reference(tmp_path: Path) -> None:
    g = np.random.default_rng(8)
    rows = ["amount,country,score,label"] + [
        f"{a:.4f},{c},{s:.3f},{int(s > 0.5)}"
        for a, c, s in zip(
            g.exponential(size=500), g.choice(["DE", "FR"], 500), g.random(500), strict=True
        )
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    columns = read_training_file(tmp_path / "train.csv")
    ref = build_reference("fraud", "binary_classification", columns, FEATURES)
    ref.save(tmp_path / "fraud.json")
    assert ReferenceProfile.load(tmp_path / "fraud.json") == ref
    assert ref.features["country"].counts.sum() == 500
