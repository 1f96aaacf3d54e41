"""Tests of imitation.data.stats: streaming normalisation statistics and the quantile sketch's bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from imitation.data.stats import QuantileSketch, RunningStats, minmax_scale_offset, safe_std

EPS = float(np.finfo(np.float64).eps)
QS = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def _mixed_data(rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    """(n, 7) columns: uniform, normal, clipped Cauchy, bimodal, constant, integers with ties, 1e6 + noise."""
    return np.stack(
        [
            rng.uniform(-1.0, 3.0, n),
            rng.normal(5.0, 2.0, n),
            np.clip(rng.standard_cauchy(n), -1e3, 1e3),
            np.where(rng.random(n) < 0.3, rng.normal(-10.0, 0.5, n), rng.normal(10.0, 0.5, n)),
            np.full(n, 7.25),
            rng.integers(0, 5, n).astype(np.float64),
            1e6 + rng.normal(0.0, 1e-3, n),
        ],
        axis=1,
    )


def _growing(x: np.ndarray) -> np.ndarray:
    """Reorder each column from its median outwards, so the observed range grows on both sides over time."""
    order = np.argsort(np.abs(x - np.median(x, axis=0)), axis=0, kind="stable")
    return np.take_along_axis(x, order, axis=0)


def _batches(x: np.ndarray, rng: np.random.Generator, max_size: int = 3000) -> list[np.ndarray]:
    """Split the rows of x into consecutive batches of random sizes (some empty)."""
    out, start = [], 0
    while start < len(x):
        size = int(rng.integers(0, max_size))
        out.append(x[start : start + size])
        start += size
    return out


def _fp_allowance(x: np.ndarray) -> np.ndarray:
    return 1024 * EPS * np.abs(x).max(axis=0)


def _check_bound(sketch: QuantileSketch, data: np.ndarray, qs=QS) -> np.ndarray:
    bound = sketch.error_bound()
    for q in qs:
        err = np.abs(sketch.quantile(q) - np.quantile(data, q, axis=0))
        assert (err <= bound).all(), (q, err, bound)
    return bound


# ----------------------------------------------------------------------------------------------------
# Exact values against numpy
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [64, 4096])
def test_streamed_quantiles_within_bound_of_numpy(n_bins: int) -> None:
    rng = np.random.default_rng(1)
    x = _growing(_mixed_data(rng))
    sketch = QuantileSketch(x.shape[1], n_bins)
    batches = _batches(x, rng)
    sketch.update(batches[0])
    lo0, hi0 = sketch.lo, sketch.lo + n_bins * sketch.width
    for b in batches[1:]:
        sketch.update(b)

    span = x.max(axis=0) - x.min(axis=0)
    varies = span > 0
    # The range grew both ways: doubling to the left (lo moved down) and to the right (hi moved up).
    assert (sketch.lo[varies] < lo0[varies]).all()
    assert (sketch.lo + n_bins * sketch.width > hi0)[varies].all()

    assert sketch.count == len(x)
    np.testing.assert_array_equal(sketch.min, x.min(axis=0))
    np.testing.assert_array_equal(sketch.max, x.max(axis=0))
    assert (sketch.counts.sum(axis=1) == len(x)).all()
    bound = _check_bound(sketch, x)
    # Derived in the class docstring: width < 4 * span / n_bins, error <= width (no merge).
    assert (sketch.width <= 4 * span / n_bins).all()
    assert (bound <= 4 * span / n_bins + _fp_allowance(x)).all()
    assert bound[4] == 0.0  # the constant column is exact


def test_running_stats_exact_moments() -> None:
    rng = np.random.default_rng(2)
    x = _mixed_data(rng)
    stats = RunningStats(x.shape[1])
    for b in _batches(x, rng):
        stats.update(b.astype(np.float64))
    out = stats.finalize()
    assert out["count"] == len(x)
    assert out["min"] == x.min(axis=0).tolist()
    assert out["max"] == x.max(axis=0).tolist()
    np.testing.assert_allclose(out["mean"], x.mean(axis=0), rtol=1e-9, atol=0)
    np.testing.assert_allclose(out["std"], x.std(axis=0), rtol=1e-9, atol=1e-15)
    for key, q in (("q01", 0.01), ("q99", 0.99)):
        err = np.abs(np.asarray(out[key]) - np.quantile(x, q, axis=0))
        assert (err <= np.asarray(out["q_error"])).all(), (key, err, out["q_error"])
    assert set(out) == {"min", "max", "mean", "std", "q01", "q99", "q_error", "count"}
    json.dumps(out)  # JSON-able as is


def test_large_offset_and_many_frames_are_stable() -> None:
    # 1e6 + small noise in many batches: naive sum/sum-of-squares would lose every digit of the std.
    rng = np.random.default_rng(3)
    x = 1e6 + rng.normal(0.0, 1e-4, (200_000, 1))
    stats = RunningStats(1, n_bins=256)
    for b in np.array_split(x, 97):
        stats.update(b)
    out = stats.finalize()
    np.testing.assert_allclose(out["mean"], x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(out["std"], x.std(axis=0), rtol=1e-9)


def test_integer_dtypes_and_ties() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (5000, 2)).astype(np.int16)
    sketch = QuantileSketch(2, n_bins=8)
    for b in np.array_split(x, 13):
        sketch.update(b)
    _check_bound(sketch, x.astype(np.float64), qs=np.linspace(0, 1, 41))


def test_hand_worked_doubling_example() -> None:
    # n_bins = 4. First batch 0, 1, 2, 3, 4: lo = 0, width = (4 - 0) / 4 = 1, range [0, 4] with the
    # right edge in the last bin: bins [0,1) [1,2) [2,3) [3,4] hold 0 | 1 | 2 | 3, 4 -> counts 1 1 1 2.
    s = QuantileSketch(1, n_bins=4)
    s.update(np.array([[0.0], [1.0], [2.0], [3.0], [4.0]]))
    assert (s.lo[0], s.width[0], s.counts[0].tolist()) == (0.0, 1.0, [1, 1, 1, 2])
    # 6 > 4: double to the right. Pairs merge (1+1, 1+2) into the left half; width 2, range [0, 8];
    # 6 lands in bin floor((6 - 0) / 2) = 3 -> counts 2 3 0 1.
    s.update(np.array([[6.0]]))
    assert (s.lo[0], s.width[0], s.counts[0].tolist()) == (0.0, 2.0, [2, 3, 0, 1])
    # -1 < 0: double to the left. Pairs merge (2+3, 0+1) into the right half; lo = 0 - 4 * 2 = -8,
    # width 4, range [-8, 8]; -1 lands in bin floor((-1 + 8) / 4) = 1 -> counts 0 1 5 1.
    s.update(np.array([[-1.0]]))
    assert (s.lo[0], s.width[0], s.counts[0].tolist()) == (-8.0, 4.0, [0, 1, 5, 1])
    # Median of -1 0 1 2 3 4 6 is x_(3) = 2. Rank 3 is in bin 2 (cumulative 0 1 6 7), the 3rd - 1 = 2nd
    # (0-based) of its 5 values, estimated at -8 + (2 + 2.5 / 5) * 4 = 2. Bound: width 4 (< span 7).
    assert s.quantile(0.5)[0] == 2.0
    assert s.error_bound()[0] == pytest.approx(4.0)
    # Width 4 < 4 * span / n_bins = 4 * 7 / 4 = 7, as derived.


def test_gap_between_order_statistics() -> None:
    # Interpolating inside the single bin holding rank q(n-1) would give ~0 here; numpy gives 50.
    s = QuantileSketch(1, n_bins=4)
    data = np.array([[0.0], [100.0]])
    s.update(data)
    _check_bound(s, data, qs=np.linspace(0, 1, 11))
    assert abs(s.quantile(0.5)[0] - 50.0) <= s.error_bound()[0]


# ----------------------------------------------------------------------------------------------------
# Merging
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bins", [16, 4096])
def test_merge_matches_single_sketch(n_bins: int) -> None:
    rng = np.random.default_rng(5)
    x = _mixed_data(rng, 12_000)
    parts = np.array_split(_growing(x), 3)
    single = QuantileSketch(x.shape[1], n_bins)
    merged = QuantileSketch(x.shape[1], n_bins)
    for part in parts:
        single.update(part)
        s = QuantileSketch(x.shape[1], n_bins)
        for b in _batches(part, rng, 1000):
            s.update(b)
        merged.merge(s)
    assert merged.count == single.count == len(x)
    np.testing.assert_array_equal(merged.min, x.min(axis=0))
    np.testing.assert_array_equal(merged.max, x.max(axis=0))
    assert (merged.counts.sum(axis=1) == len(x)).all()
    bound = _check_bound(merged, x)
    for q in QS:
        gap = np.abs(merged.quantile(q) - single.quantile(q))
        assert (gap <= bound + single.error_bound()).all()
    span = x.max(axis=0) - x.min(axis=0)
    # Merged sketches: width < 4 span / n_bins as before, plus up to half a bin of slack per re-binning
    # (two merges that re-bin here, so < 2 * width).
    assert (merged.width <= 4 * span / n_bins).all()
    assert (bound <= 8 * span / n_bins + _fp_allowance(x)).all()


def test_merge_very_different_ranges_and_constants() -> None:
    rng = np.random.default_rng(6)
    n = 3000
    # Columns: tiny vs huge range; histogram vs constant; constant vs histogram; two different constants;
    # two equal constants; far-apart clusters.
    a = np.stack(
        [rng.uniform(0, 1e-3, n), rng.normal(0, 1, n), np.full(n, 2.0), np.full(n, -1.0), np.full(n, 3.0),
         rng.uniform(-1e5, -1e5 + 1, n)],
        axis=1,
    )  # fmt: skip
    b = np.stack(
        [rng.uniform(1e3, 1e5, n), np.full(n, 50.0), rng.normal(0, 1, n), np.full(n, 4.0), np.full(n, 3.0),
         rng.uniform(1e5, 1e5 + 1, n)],
        axis=1,
    )  # fmt: skip
    for first, second in ((a, b), (b, a)):
        sa, sb = QuantileSketch(6, 64), QuantileSketch(6, 64)
        for part in np.array_split(first, 4):
            sa.update(part)
        for part in np.array_split(second, 5):
            sb.update(part)
        before = sb.to_dict()
        sa.merge(sb)
        assert sb.to_dict() == before  # the other sketch is not modified
        data = np.concatenate([first, second])
        np.testing.assert_array_equal(sa.min, data.min(axis=0))
        np.testing.assert_array_equal(sa.max, data.max(axis=0))
        bound = _check_bound(sa, data, qs=np.linspace(0, 1, 21))
        assert bound[4] == 0.0  # equal constants stay exact
        span = data.max(axis=0) - data.min(axis=0)
        assert (bound <= 6 * span / 64 + _fp_allowance(data)).all()  # one merge: width + half a bin


def test_merge_aligned_grids_is_exact() -> None:
    # Both sketches see the overall min and max first, so their grids coincide: whole bins merge, no slack,
    # and the counts equal those of one sketch fed everything.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 3))
    ends = np.stack([x.min(axis=0), x.max(axis=0)])
    first, second = np.concatenate([ends, x[:2000]]), np.concatenate([ends, x[2000:]])
    sa, sb, single = QuantileSketch(3, 128), QuantileSketch(3, 128), QuantileSketch(3, 128)
    sa.update(first)
    sb.update(second)
    single.update(np.concatenate([first, second]))
    sa.merge(sb)
    assert (sa.slack == 0).all()
    np.testing.assert_array_equal(sa.counts, single.counts)
    np.testing.assert_array_equal(sa.error_bound(), single.error_bound())


def test_merge_into_empty_and_with_empty() -> None:
    x = np.arange(20.0).reshape(10, 2)
    s = QuantileSketch(2, 8)
    s.update(x)
    empty = QuantileSketch(2, 8)
    empty.merge(s)
    assert empty.to_dict() == s.to_dict()
    s.merge(QuantileSketch(2, 8))
    assert empty.to_dict() == s.to_dict()
    s.merge(s)  # merging with itself counts everything twice
    assert s.count == 20
    np.testing.assert_array_equal(s.counts, 2 * empty.counts)
    _check_bound(s, np.concatenate([x, x]))


def test_running_stats_merge() -> None:
    rng = np.random.default_rng(8)
    x = _mixed_data(rng, 9000)
    parts = [RunningStats(x.shape[1], 512) for _ in range(3)]
    for st_, part in zip(parts, np.array_split(x, 3), strict=True):
        st_.update(part)
    total = RunningStats(x.shape[1], 512)
    for st_ in parts:
        total.merge(st_)
    total.merge(RunningStats(x.shape[1], 512))
    out = total.finalize()
    assert out["count"] == len(x)
    np.testing.assert_allclose(out["mean"], x.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(out["std"], x.std(axis=0), rtol=1e-9, atol=1e-15)
    err = np.abs(np.asarray(out["q99"]) - np.quantile(x, 0.99, axis=0))
    assert (err <= np.asarray(out["q_error"])).all()


# ----------------------------------------------------------------------------------------------------
# Property test
# ----------------------------------------------------------------------------------------------------


@st.composite
def _stream(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 3))
    finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    x = draw(hnp.arrays(np.float64, (n, d), elements=finite))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    n_bins = draw(st.sampled_from([2, 4, 8, 64]))
    merge_at = draw(st.none() | st.integers(0, len(cuts) + 1))
    qs = draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5))
    return x, cuts, n_bins, merge_at, qs


@settings(max_examples=300, deadline=None)
@given(_stream())
def test_property_bound_holds(case) -> None:
    x, cuts, n_bins, merge_at, qs = case
    batches = np.split(x, cuts)
    sketches = [QuantileSketch(x.shape[1], n_bins)]
    for i, b in enumerate(batches):
        if merge_at is not None and i == merge_at:
            sketches.append(QuantileSketch(x.shape[1], n_bins))  # the rest goes to a second sketch
        sketches[-1].update(b)
    sketch = sketches[0]
    for other in sketches[1:]:
        sketch.merge(other)
    assert sketch.count == len(x)
    np.testing.assert_array_equal(sketch.min, x.min(axis=0))
    np.testing.assert_array_equal(sketch.max, x.max(axis=0))
    bound = sketch.error_bound()
    for q in [*qs, 0.01, 0.99]:
        err = np.abs(sketch.quantile(q) - np.quantile(x, q, axis=0))
        assert (err <= bound).all(), (q, err, bound)
    span = x.max(axis=0) - x.min(axis=0)
    assert (sketch.width <= 4 * span / n_bins * (1 + 1e-12) + 1e-300).all()
    limit = (6 if len(sketches) > 1 else 4) * span / n_bins + _fp_allowance(x)
    assert (bound <= limit).all()


# ----------------------------------------------------------------------------------------------------
# Constant dimensions and the normalisation helpers
# ----------------------------------------------------------------------------------------------------


def test_constant_dimension_never_divides_by_zero() -> None:
    x = np.stack([np.full(1000, 0.3), np.linspace(-2.0, 6.0, 1000)], axis=1)
    stats = RunningStats(2, 64)
    for b in np.array_split(x, 7):
        stats.update(b)
    out = stats.finalize()
    assert out["std"][0] == 0.0
    assert out["mean"][0] == 0.3
    assert out["q01"][0] == out["q99"][0] == 0.3
    assert out["q_error"][0] == 0.0

    std = safe_std(out["std"])
    assert std.dtype == np.float32
    assert std[0] == np.float32(1e-2)
    assert std[1] == np.float32(out["std"][1])
    np.testing.assert_array_equal(safe_std([0.0, 0.5], eps=0.1), np.array([0.1, 0.5], np.float32))

    scale, offset = minmax_scale_offset(out["min"], out["max"])
    assert scale.dtype == offset.dtype == np.float32
    y = x.astype(np.float32) * scale + offset
    assert np.isfinite(y).all()
    assert (y[:, 0] == 0.0).all()
    np.testing.assert_allclose(y[[0, -1], 1], [-1.0, 1.0], atol=1e-6)
    assert (np.abs(y[:, 1]) <= 1.0 + 1e-6).all()
    s1, o1 = minmax_scale_offset([5.0], [5.0 + 1e-9])  # below eps: treated as constant
    assert (s1[0], o1[0]) == (0.0, 0.0)


def test_constant_dimension_then_varies() -> None:
    s = QuantileSketch(1, 4)
    s.update(np.full((5, 1), 2.0))
    assert (s.width[0], s.counts[0].tolist()) == (0.0, [5, 0, 0, 0])
    s.update(np.full((3, 1), 2.0))
    s.update(np.array([[6.0], [-2.0]]))  # a histogram over [-2, 6]: width 2; 8 x 2.0 in bin 2
    assert (s.lo[0], s.width[0], s.counts[0].tolist()) == (-2.0, 2.0, [1, 0, 8, 1])
    _check_bound(s, np.array([[2.0]] * 8 + [[6.0], [-2.0]]), qs=np.linspace(0, 1, 21))


def test_helper_validation() -> None:
    with pytest.raises(ValueError, match="negative"):
        safe_std([-1.0])
    with pytest.raises(ValueError, match="eps"):
        safe_std([1.0], eps=0.0)
    with pytest.raises(ValueError, match="max < min"):
        minmax_scale_offset([1.0], [0.0])
    with pytest.raises(ValueError, match="shape"):
        minmax_scale_offset([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        minmax_scale_offset([np.nan], [1.0])


# ----------------------------------------------------------------------------------------------------
# Errors and serialisation
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_names_the_dimension(bad: float) -> None:
    x = np.zeros((10, 4))
    x[7, 2] = bad
    for obj in (QuantileSketch(4), RunningStats(4)):
        with pytest.raises(ValueError, match="dimension 2"):
            obj.update(x)
        assert obj.count == 0  # nothing was half-applied


def test_argument_errors() -> None:
    for n_bins in (0, 1, 3, 100, 2.0, True):
        with pytest.raises(ValueError, match="power of two"):
            QuantileSketch(2, n_bins)
    with pytest.raises(ValueError, match="dim"):
        QuantileSketch(0)
    s = QuantileSketch(2, 8)
    with pytest.raises(ValueError, match="empty"):
        s.quantile(0.5)
    with pytest.raises(ValueError, match=r"expected \(N, 2\)"):
        s.update(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="dtype"):
        s.update(np.zeros((3, 2), dtype=complex))
    s.update(np.zeros((0, 2)))  # empty batch: a no-op
    assert s.count == 0
    s.update(np.ones((3, 2)))
    for q in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            s.quantile(q)
    with pytest.raises(ValueError, match="n_bins"):
        s.merge(QuantileSketch(2, 16))
    with pytest.raises(ValueError, match="count=0"):
        RunningStats(3).finalize()


def test_to_dict_round_trip() -> None:
    rng = np.random.default_rng(9)
    x = _mixed_data(rng, 2000)
    s = QuantileSketch(x.shape[1], 32)
    other = QuantileSketch(x.shape[1], 32)
    s.update(x[:1000])
    other.update(x[1000:1500] * 3.0)
    s.merge(other)  # slack > 0 somewhere, which must survive the round trip
    assert (s.slack > 0).any()
    restored = QuantileSketch.from_dict(json.loads(json.dumps(s.to_dict())))
    assert restored.to_dict() == s.to_dict()
    for q in QS:
        np.testing.assert_array_equal(restored.quantile(q), s.quantile(q))
    np.testing.assert_array_equal(restored.error_bound(), s.error_bound())
    s.update(x[1500:])
    restored.update(x[1500:])
    assert restored.to_dict() == s.to_dict()

    empty = QuantileSketch(3, 8)
    assert QuantileSketch.from_dict(json.loads(json.dumps(empty.to_dict()))).to_dict() == empty.to_dict()

    broken = s.to_dict()
    broken["counts"][0][0] += 1
    with pytest.raises(ValueError, match="counts"):
        QuantileSketch.from_dict(broken)
    with pytest.raises(ValueError, match="format"):
        QuantileSketch.from_dict({"format": "something else"})
    del broken["slack"]
    with pytest.raises(ValueError, match="missing"):
        QuantileSketch.from_dict(broken)
