"""Per-dimension normalisation statistics of a demonstration dataset, computed in one streaming pass.

A dataset is far larger than RAM in general, so frames arrive as batches of shape (N, D) and every
statistic here is built incrementally and is mergeable (several workers may each see part of the
data): exact min and max, mean and population std with Chan et al.'s parallel update, and the 1st /
99th percentiles from a deterministic histogram sketch whose error has a guaranteed bound.

The helpers at the end turn the statistics into normalisation constants that never divide by zero,
even for a dimension that never varies (a gripper that is never used, a joint that is locked).

Pure numpy on purpose: this module is imported by data tools that must not pull in torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.shards import frame_reader

__all__ = ["QuantileSketch", "RunningStats", "minmax_scale_offset", "safe_std"]

_EPS = float(np.finfo(np.float64).eps)
# Allowance, in ulps of the magnitudes involved, for float64 rounding in the bin arithmetic (bin index
# computation, bin edges, left doublings). The exact-arithmetic bound is width + slack; this term is
# many orders of magnitude smaller than a bin for any realistic data.
_FP_ULPS = 256.0
# Largest accepted |value|: keeps max - min and the doubled histogram ranges finite in float64.
_MAX_ABS = 1e300
_FORMAT = "imitation.QuantileSketch"
_VERSION = 1
_KEYS = ("dim", "n_bins", "count", "lo", "width", "slack", "min", "max", "counts")
# Rows binned at once: bounds the temporaries of update() to about 16 MiB whatever the batch size.
_BIN_CHUNK_ELEMENTS = 1 << 21


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------


def _check_dim(dim: Any) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
        raise ValueError(f"dim={dim!r}: must be an int >= 1 (the number of feature dimensions); pass e.g. 14")
    return int(dim)


def _check_n_bins(n_bins: Any) -> int:
    ok = isinstance(n_bins, int | np.integer) and not isinstance(n_bins, bool) and n_bins >= 2
    if not ok or (int(n_bins) & (int(n_bins) - 1)) != 0:
        raise ValueError(
            f"n_bins={n_bins!r}: must be a power of two >= 2 (range doubling merges bins in pairs); "
            "pass e.g. 4096"
        )
    return int(n_bins)


def _check_q(q: Any) -> float:
    try:
        qf = float(q)
    except (TypeError, ValueError) as e:
        raise ValueError(f"q={q!r}: must be a real number in [0, 1]; pass e.g. 0.01") from e
    if not 0.0 <= qf <= 1.0:  # also refuses NaN
        raise ValueError(f"q={q!r}: must lie in [0, 1] (a fraction, not a percentage); pass e.g. 0.01")
    return qf


def _as_batch(x: Any, dim: int, who: str) -> np.ndarray:
    """Return x as a float64 (N, dim) array, refusing non-real dtypes, wrong shapes and non-finite values."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{who}: x has dtype {arr.dtype}; statistics need real numbers (bool, int or float); "
            "convert with x.astype(np.float64)"
        )
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(
            f"{who}: x has shape {arr.shape}; expected (N, {dim}) (frames by feature dimensions); "
            f"reshape with x.reshape(-1, {dim})"
        )
    arr = arr.astype(np.float64, copy=False)
    if arr.shape[0] == 0:
        return arr
    ok = (np.abs(arr) <= _MAX_ABS).all(axis=0)  # (D,); False for NaN and inf too
    if not ok.all():
        bad = np.flatnonzero(~ok)
        d = int(bad[0])
        col = arr[:, d]
        row = int(np.flatnonzero(~(np.abs(col) <= _MAX_ABS))[0])
        rule = (
            "every value must be finite"
            if not np.isfinite(col[row])
            else f"every |value| must be <= {_MAX_ABS:g} so the histogram range stays finite"
        )
        raise ValueError(
            f"{who}: dimension {d} holds {col[row]!r} at row {row} (bad dimensions: {bad.tolist()}); "
            f"{rule}; drop or repair those frames before computing statistics"
        )
    return arr


# ----------------------------------------------------------------------------------------------------
# Bin arithmetic shared by update and merge
# ----------------------------------------------------------------------------------------------------


def _initial_width(lo: np.ndarray, hi: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin width so that n_bins bins starting at lo cover [lo, hi]; 0 where lo == hi (an exact point).

    (hi - lo) / n_bins can round down so that lo + n_bins * width falls an ulp short of hi; the width is
    then nudged up (one ulp adds n_bins ulps to the range, so one or two nudges suffice in practice).
    """
    span = hi - lo
    width = span / n_bins
    width = np.where((span > 0) & (width == 0), np.nextafter(0.0, 1.0), width)
    for it in range(1100):
        short = (span > 0) & (lo + n_bins * width < hi)
        if not short.any():
            return width
        # After a few ulp nudges grow geometrically, which terminates for any finite lo < hi.
        grown = (
            np.nextafter(width, np.inf) if it < 8 else np.maximum(np.nextafter(width, np.inf), width * 1.5)
        )
        width = np.where(short, grown, width)
    raise RuntimeError("unreachable: the histogram width did not converge")  # pragma: no cover


def _bin_index(v: np.ndarray, lo: np.ndarray, width: np.ndarray, n_bins: int) -> np.ndarray:
    """Index of the bin holding each value; the right edge of the range belongs to the last bin."""
    t = np.asarray((v - lo) / width, dtype=np.float64)
    np.floor(t, out=t)
    np.clip(t, 0, n_bins - 1, out=t)
    return t.astype(np.int64)


# ----------------------------------------------------------------------------------------------------
# QuantileSketch
# ----------------------------------------------------------------------------------------------------


class QuantileSketch:
    """Deterministic, mergeable, per-dimension streaming histogram with range doubling.

    Why a histogram: exact percentiles need all the data in memory (or a second pass); a fixed-size
    histogram gives them in one pass, with a bound on the error that can be reported with the result,
    and two histograms merge (parallel workers, cached per-episode sketches). It is deterministic: the
    same batches in the same order give the same sketch, bit for bit.

    State, per dimension d: ``lo[d]`` (left edge), ``width[d]`` (bin width), ``counts[d]`` (n_bins
    int64), the exact ``min[d]``/``max[d]``, and ``slack[d]`` (see below); the total ``count`` is
    shared by all dimensions. Bin k is [lo + k·w, lo + (k+1)·w); the right edge of the range,
    lo + n_bins·w, belongs to the last bin, so the range covers the closed interval [lo, lo + n_bins·w].

    - The first batch sets lo = min and w = (max - min) / n_bins.
    - A value outside the range doubles it: adjacent bins merge in pairs, and the old bins occupy the
      left half (the range extends to the right) or the right half (it extends to the left, lo moves
      down by n_bins·w); repeated until the batch is covered.
    - A dimension whose values are all identical has w = 0 and all its count in bin 0 at lo, exact. As
      soon as a different value arrives it becomes a histogram over [min, max] of the values so far.

    Quantile estimate: with numpy's default ('linear') method the q-quantile of x_(0) <= ... <= x_(n-1)
    is Q = (1 - f)·x_(i) + f·x_(i+1), with h = q(n - 1), i = floor(h), f = h - i. The sketch estimates
    each of the two order statistics x_(r) by a point inside the bin B_k that holds rank r (the k with
    C[k-1] <= r < C[k], C the cumulative counts; the c items of a bin are spread evenly across it),
    interpolates between the two estimates with f as numpy does, and clamps into [min, max].
    (Interpolating at rank h inside a single bin would be wrong when x_(i) and x_(i+1) sit in bins
    separated by empty ones: for the data {0, 100}, Q(0.5) = 50 but that bin holds only 0.)

    Error bound, derived (``error_bound()`` returns it):

    1. Lemma. Suppose every value lies in its recorded bin widened by s on each side. Then
       x_(r) is in [left(B_k) - s, right(B_k) + s]: C[k] >= r + 1 values are recorded in bins <= k,
       all are <= right(B_k) + s, so x_(r) <= right(B_k) + s; n - C[k-1] >= n - r values are recorded
       in bins >= k, all are >= left(B_k) - s, so x_(r) >= left(B_k) - s. The estimate of x_(r) lies in
       B_k, hence |estimate - x_(r)| <= w + s.
    2. The estimate of Q is the same convex combination of the two order-statistic estimates, so its
       error is <= (1 - f)(w + s) + f(w + s) = w + s; clamping into [min, max], which contains Q, can
       only move it closer. Both values lie in [min, max], so the error is also <= max - min.
    3. s = 0 for a sketch built by ``update`` alone (each value is counted in the bin that contains
       it; a doubling merges whole bins, so that stays true). ``merge`` re-bins one sketch into the
       other's grid and records the actual worst overhang of the re-binned bins into ``slack``: 0 if
       the grids align (whole bins merge), at most s_src + w_src / 2 <= s_src + w / 2 otherwise (each
       source bin goes to the target bin holding its centre).
    4. The width stays small: w < 4·(max - min) / n_bins. Invariant: the data straddle the midpoint of
       the range, min <= lo + R/2 <= max with R = n_bins·w. It holds after the first batch (R = max -
       min) and after a doubling, whose new midpoint is the old right (or left) edge, beyond which lies
       the value that triggered it. A doubling from R to 2R happens only because a value v lies
       outside [lo, lo + R]; if v > lo + R then max - min >= v - (lo + R/2) > R/2 by the invariant
       before the doubling (symmetrically for the left), so R_new = 2R < 4·(max - min). A merge keeps
       this: the target grid's invariant holds for the merged data, and each doubling is triggered by
       a value of the other sketch.

    So ``error_bound() = min(w + slack + fp, max - min)`` per dimension, where fp = 256·eps·(|lo| +
    |lo + R| + |min| + |max|) is an allowance for float64 rounding in the bin arithmetic. For an
    unmerged sketch that is < 4·(max - min)/n_bins; after one merge of unmerged sketches, slack
    <= w/2 and the bound is < 6·(max - min)/n_bins; chains of merges can add up to half a bin per
    re-binning (the returned value always counts it). Constant dimensions are exact (bound 0).
    Caveat: with (max - min)/n_bins below the smallest normal float (~2e-308) the width is limited
    by float64 resolution, not by step 4; the returned bound is still honest (it is <= max - min).
    """

    def __init__(self, dim: int, n_bins: int = 4096) -> None:
        self._dim = _check_dim(dim)
        self._n_bins = _check_n_bins(n_bins)
        self._count = 0
        self._lo = np.zeros(self._dim)  # (D,)
        self._width = np.zeros(self._dim)  # (D,); 0 = every value so far equals lo
        self._slack = np.zeros(self._dim)  # (D,); how far a value may lie outside its recorded bin
        self._min = np.full(self._dim, np.inf)  # (D,)
        self._max = np.full(self._dim, -np.inf)  # (D,)
        self._counts = np.zeros((self._dim, self._n_bins), dtype=np.int64)  # (D, n_bins)

    # -- read-only views -------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def n_bins(self) -> int:
        return self._n_bins

    @property
    def count(self) -> int:
        """Number of frames seen (the same for every dimension)."""
        return self._count

    @property
    def lo(self) -> np.ndarray:
        """(D,) left edge of each dimension's histogram range (a copy)."""
        return self._lo.copy()

    @property
    def width(self) -> np.ndarray:
        """(D,) bin width per dimension (a copy); 0 for a dimension whose values are all equal."""
        return self._width.copy()

    @property
    def counts(self) -> np.ndarray:
        """(D, n_bins) int64 bin counts (a copy)."""
        return self._counts.copy()

    @property
    def slack(self) -> np.ndarray:
        """(D,) how far a value may lie outside its recorded bin; nonzero only after unaligned merges."""
        return self._slack.copy()

    @property
    def min(self) -> np.ndarray:
        """(D,) exact minimum (+inf while empty)."""
        return self._min.copy()

    @property
    def max(self) -> np.ndarray:
        """(D,) exact maximum (-inf while empty)."""
        return self._max.copy()

    def __repr__(self) -> str:
        return f"QuantileSketch(dim={self._dim}, n_bins={self._n_bins}, count={self._count})"

    # -- streaming -------------------------------------------------------------------------------------

    def update(self, x: np.ndarray) -> None:
        """Add a batch x of shape (N, dim), any real dtype; NaN/inf raise naming the dimension."""
        arr = _as_batch(x, self._dim, "QuantileSketch.update")
        if arr.shape[0]:
            self._add(arr)

    def _add(self, x: np.ndarray) -> None:
        """Add a validated float64 (N, D) batch with N >= 1."""
        bmin = x.min(axis=0)  # (D,)
        bmax = x.max(axis=0)  # (D,)
        if self._count == 0:
            self._lo = bmin.copy()
            self._width = _initial_width(bmin, bmax, self._n_bins)
            self._slack[:] = 0.0
            self._counts[:] = 0
        else:
            # Constant dimensions that receive a different value become histograms over [min, max].
            start = (self._width == 0) & ((bmin < self._lo) | (bmax > self._lo))
            if start.any():
                self._start_histograms(
                    start, np.minimum(bmin, self._lo)[start], np.maximum(bmax, self._lo)[start]
                )
        self._cover(bmin, bmax, self._width > 0)
        self._min = np.minimum(self._min, bmin)
        self._max = np.maximum(self._max, bmax)
        self._bin(x)
        self._count += x.shape[0]

    def _start_histograms(self, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Turn the constant dimensions `rows` (mask) into histograms over [lo, hi], keeping their point."""
        idx = np.flatnonzero(rows)
        value = self._lo[idx]  # (k,) the exact value every earlier frame had
        held = self._counts[idx, 0].copy()  # (k,)
        width = _initial_width(lo, hi, self._n_bins)
        counts = np.zeros((idx.size, self._n_bins), dtype=np.int64)
        counts[np.arange(idx.size), _bin_index(value, lo, width, self._n_bins)] = held
        self._lo[idx] = lo
        self._width[idx] = width
        self._counts[idx] = counts

    def _cover(self, need_lo: np.ndarray, need_hi: np.ndarray, active: np.ndarray) -> None:
        """Double the ranges of the `active` (mask) dimensions until they cover [need_lo, need_hi]."""
        n = self._n_bins
        while True:
            left = active & (need_lo < self._lo)
            right = active & ~left & (need_hi > self._lo + n * self._width)
            grow = left | right
            if not grow.any():
                return
            self._double(np.flatnonzero(grow), left[grow])

    def _double(self, rows: np.ndarray, to_left: np.ndarray) -> None:
        """Double the range of dimensions `rows`, extending left where to_left else right."""
        n, half = self._n_bins, self._n_bins // 2
        merged = self._counts[rows].reshape(rows.size, half, 2).sum(axis=2)  # (k, n/2)
        new = np.zeros((rows.size, n), dtype=np.int64)
        new[~to_left, :half] = merged[~to_left]  # old bins in the left half: the range grows right
        new[to_left, half:] = merged[to_left]  # old bins in the right half: the range grows left
        self._counts[rows] = new
        self._lo[rows] = np.where(to_left, self._lo[rows] - n * self._width[rows], self._lo[rows])
        self._width[rows] *= 2.0

    def _bin(self, x: np.ndarray) -> None:
        """Count a covered batch into the bins; constant dimensions count into bin 0."""
        n = self._n_bins
        hist = self._width > 0
        self._counts[~hist, 0] += x.shape[0]
        if not hist.any():
            return
        cols = np.flatnonzero(hist)
        k = cols.size
        lo, width = self._lo[cols], self._width[cols]
        offsets = np.arange(k, dtype=np.int64) * n  # (k,) flat index of each dimension's bin 0
        step = max(1, _BIN_CHUNK_ELEMENTS // k)
        for start in range(0, x.shape[0], step):
            chunk = x[start : start + step]
            if k != self._dim:
                chunk = chunk[:, cols]
            idx = _bin_index(chunk, lo, width, n) + offsets  # (rows, k)
            self._counts[cols] += np.bincount(idx.ravel(), minlength=k * n).reshape(k, n)

    # -- merging ---------------------------------------------------------------------------------------

    def merge(self, other: QuantileSketch) -> None:
        """Add everything `other` has seen to this sketch (other is left unchanged).

        Per dimension both are brought to the grid with the coarser width, doubled until it covers
        both data ranges; the finer one is re-binned by the centre of each of its bins, and the
        worst overhang that causes is recorded in `slack` so that error_bound() stays honest.
        """
        if not isinstance(other, QuantileSketch):
            raise ValueError(
                f"merge: got {type(other).__name__}; can only merge another QuantileSketch; "
                "build one with QuantileSketch(dim, n_bins)"
            )
        if other._dim != self._dim or other._n_bins != self._n_bins:
            raise ValueError(
                f"merge: other has dim={other._dim}, n_bins={other._n_bins}; must equal this sketch's "
                f"dim={self._dim}, n_bins={self._n_bins}; build both sketches with the same arguments"
            )
        if other._count == 0:
            return
        if self._count == 0:
            self._copy_from(other)
            return
        o_lo, o_width, o_slack = other._lo.copy(), other._width.copy(), other._slack.copy()
        o_counts, o_min, o_max = other._counts.copy(), other._min.copy(), other._max.copy()
        for d in range(self._dim):
            self._merge_dim(d, o_lo[d], o_width[d], o_slack[d], o_counts[d], o_min[d], o_max[d])
        self._min = np.minimum(self._min, o_min)
        self._max = np.maximum(self._max, o_max)
        self._count += other._count

    def _copy_from(self, other: QuantileSketch) -> None:
        self._count = other._count
        self._lo = other._lo.copy()
        self._width = other._width.copy()
        self._slack = other._slack.copy()
        self._min = other._min.copy()
        self._max = other._max.copy()
        self._counts = other._counts.copy()

    def _only(self, d: int) -> np.ndarray:
        mask = np.zeros(self._dim, dtype=bool)
        mask[d] = True
        return mask

    def _add_point(self, d: int, value: float, count: int) -> None:
        """Count `count` copies of an exact value into histogram dimension d (doubling as needed)."""
        self._cover(np.full(self._dim, value), np.full(self._dim, value), self._only(d))
        k = _bin_index(np.float64(value), self._lo[d], self._width[d], self._n_bins)
        self._counts[d, k] += count

    def _merge_dim(
        self,
        d: int,
        o_lo: float,
        o_width: float,
        o_slack: float,
        o_counts: np.ndarray,  # (n_bins,)
        o_min: float,
        o_max: float,
    ) -> None:
        n = self._n_bins
        if o_width == 0 and self._width[d] == 0:  # two exact points
            if o_lo == self._lo[d]:
                self._counts[d, 0] += o_counts[0]
                return
            mine, held = self._lo[d], self._counts[d, 0]
            lo, hi = np.array([min(mine, o_lo)]), np.array([max(mine, o_lo)])
            self._lo[d], self._width[d], self._slack[d] = lo[0], _initial_width(lo, hi, n)[0], 0.0
            self._counts[d] = 0
            self._counts[d, _bin_index(np.float64(mine), self._lo[d], self._width[d], n)] += held
            self._counts[d, _bin_index(np.float64(o_lo), self._lo[d], self._width[d], n)] += o_counts[0]
            return
        if o_width == 0:  # the other is an exact point: add it to our histogram
            self._add_point(d, o_lo, int(o_counts[0]))
            return
        if self._width[d] == 0:  # we are an exact point: adopt the other's histogram, add the point
            mine, held = self._lo[d], int(self._counts[d, 0])
            self._lo[d], self._width[d], self._slack[d], self._counts[d] = o_lo, o_width, o_slack, o_counts
            self._add_point(d, mine, held)
            return
        # Two histograms: the coarser grid is the target, the finer one is re-binned into it.
        if o_width > self._width[d]:
            src = (self._lo[d], self._width[d], self._slack[d], self._counts[d].copy())
            src_min, src_max = self._min[d], self._max[d]
            self._lo[d], self._width[d], self._slack[d], self._counts[d] = o_lo, o_width, o_slack, o_counts
        else:
            src = (o_lo, o_width, o_slack, o_counts)
            src_min, src_max = o_min, o_max
        self._cover(np.full(self._dim, src_min), np.full(self._dim, src_max), self._only(d))
        self._rebin(d, *src, src_min, src_max)

    def _rebin(
        self,
        d: int,
        s_lo: float,
        s_width: float,
        s_slack: float,
        s_counts: np.ndarray,  # (n_bins,)
        s_min: float,
        s_max: float,
    ) -> None:
        """Add a finer histogram to dimension d's grid by bin centre; record the worst overhang as slack."""
        n = self._n_bins
        j = np.flatnonzero(s_counts)  # only bins that hold values can put a value outside its new bin
        centre = s_lo + (j + 0.5) * s_width
        lo, width = self._lo[d], self._width[d]
        k = _bin_index(centre, lo, width, n)
        # Where the values of source bin j can be: the bin widened by its slack, within the data range.
        val_lo = np.maximum(s_lo + j * s_width - s_slack, s_min)
        val_hi = np.minimum(s_lo + (j + 1) * s_width + s_slack, s_max)
        overhang = np.maximum(np.maximum(lo + k * width - val_lo, val_hi - (lo + (k + 1) * width)), 0.0)
        np.add.at(self._counts[d], k, s_counts[j])
        self._slack[d] = max(self._slack[d], float(overhang.max(initial=0.0)))

    # -- queries ---------------------------------------------------------------------------------------

    def _require_data(self, what: str) -> None:
        if self._count == 0:
            raise ValueError(
                f"{what}: the sketch is empty (count=0); a quantile needs at least one frame; "
                "call update() with data first"
            )

    def _order_statistic(self, cum: np.ndarray, r: int) -> np.ndarray:
        """(D,) estimate of the r-th smallest value (0-based), a point inside the bin holding rank r."""
        rows = np.arange(self._dim)
        k = (cum <= r).sum(axis=1)  # (D,) first bin whose cumulative count exceeds r
        before = np.where(k > 0, cum[rows, np.maximum(k - 1, 0)], 0)  # (D,) values in earlier bins
        held = self._counts[rows, k]  # (D,) >= 1 by construction
        return self._lo + (k + (r - before + 0.5) / held) * self._width

    def quantile(self, q: float) -> np.ndarray:
        """(D,) float64 estimate of np.quantile(all_data, q, axis=0); error <= error_bound()."""
        qf = _check_q(q)
        self._require_data("quantile")
        h = qf * (self._count - 1)
        i = min(math.floor(h), self._count - 1)
        f = h - i
        cum = np.cumsum(self._counts, axis=1)  # (D, n_bins)
        est = self._order_statistic(cum, i)
        if f > 0:
            upper = self._order_statistic(cum, min(i + 1, self._count - 1))
            est = est + f * (upper - est)
        return np.clip(est, self._min, self._max)

    def error_bound(self) -> np.ndarray:
        """(D,) guaranteed bound on |quantile(q) - np.quantile(data, q)| for every q (see class doc)."""
        self._require_data("error_bound")
        hi = self._lo + self._n_bins * self._width
        fp = _FP_ULPS * _EPS * (np.abs(self._lo) + np.abs(hi) + np.abs(self._min) + np.abs(self._max))
        bound = np.where(self._width > 0, self._width + self._slack + fp, 0.0)
        return np.minimum(bound, self._max - self._min)

    # -- serialisation ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (ints, floats, lists; min/max are None while empty) for caching."""
        empty = self._count == 0
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "dim": self._dim,
            "n_bins": self._n_bins,
            "count": int(self._count),
            "lo": self._lo.tolist(),
            "width": self._width.tolist(),
            "slack": self._slack.tolist(),
            "min": None if empty else self._min.tolist(),
            "max": None if empty else self._max.tolist(),
            "counts": self._counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileSketch:
        """Rebuild a sketch from to_dict() output, checking that the state is consistent."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("version") != _VERSION:
            got = (data.get("format"), data.get("version")) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"from_dict: got format/version {got!r}; expected ({_FORMAT!r}, {_VERSION}); "
                "pass the output of QuantileSketch.to_dict() (recompute the statistics if it is stale)"
            )
        missing = [k for k in _KEYS if k not in data]
        if missing:
            raise ValueError(
                f"from_dict: keys {missing} are missing; pass the output of QuantileSketch.to_dict()"
            )
        sketch = cls(data["dim"], data["n_bins"])
        d, n = sketch._dim, sketch._n_bins
        count = data["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"from_dict: count={count!r}; must be an int >= 0; pass to_dict() output")

        def vec(key: str) -> np.ndarray:
            arr = np.asarray(data[key], dtype=np.float64)
            if arr.shape != (d,) or not np.isfinite(arr).all():
                raise ValueError(
                    f"from_dict: {key!r} has shape {arr.shape} or non-finite values; must be {d} finite "
                    "floats; pass to_dict() output"
                )
            return arr

        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != (d, n) or (counts < 0).any() or (counts.sum(axis=1) != count).any():
            raise ValueError(
                f"from_dict: 'counts' has shape {counts.shape} or sums {counts.sum(axis=-1).tolist()}; "
                f"must be ({d}, {n}) non-negative ints each summing to count={count}; pass to_dict() output"
            )
        sketch._count = count
        sketch._lo, sketch._width, sketch._slack = vec("lo"), vec("width"), vec("slack")
        sketch._counts = counts
        if (sketch._width < 0).any() or (sketch._slack < 0).any():
            raise ValueError("from_dict: 'width' and 'slack' must be >= 0; pass to_dict() output")
        if count > 0:
            sketch._min, sketch._max = vec("min"), vec("max")
            if (sketch._min > sketch._max).any():
                raise ValueError("from_dict: 'min' exceeds 'max' somewhere; pass to_dict() output")
        return sketch


# ----------------------------------------------------------------------------------------------------
# RunningStats
# ----------------------------------------------------------------------------------------------------


class RunningStats:
    """Streaming min, max, mean, population std and 1st/99th percentiles per feature dimension.

    Mean and variance use Chan et al.'s parallel update in float64: each batch contributes its own mean
    and sum of squared deviations (two-pass within the batch), combined with the running ones through
    the difference of the means. Unlike accumulating sum(x) and sum(x²), this does not cancel
    catastrophically for data like 1e6 + small noise, and stays stable for any number of frames.
    The moments are kept for x - shift, shift being the mean of the first batch: a batch mean of raw
    1e6 + noise values is off by ~eps·1e6, which, through the difference of the means, would cost
    the std about 1e-8 of relative accuracy; the shifted values are small and keep it near eps.
    """

    def __init__(self, dim: int, n_bins: int = 4096) -> None:
        self._sketch = QuantileSketch(dim, n_bins)
        self._shift = np.zeros(self._sketch.dim)  # (D,) fixed by the first batch
        self._mean = np.zeros(self._sketch.dim)  # (D,) mean of x - shift
        self._m2 = np.zeros(self._sketch.dim)  # (D,) sum of squared deviations from the mean

    @property
    def dim(self) -> int:
        return self._sketch.dim

    @property
    def count(self) -> int:
        return self._sketch.count

    @property
    def sketch(self) -> QuantileSketch:
        """The quantile sketch (shared, not a copy: do not update it directly)."""
        return self._sketch

    def update(self, x: np.ndarray) -> None:
        """Add a batch x of shape (N, dim), any real dtype; NaN/inf raise naming the dimension."""
        arr = _as_batch(x, self.dim, "RunningStats.update")
        if arr.shape[0] == 0:
            return
        if self.count == 0:
            self._shift = arr.mean(axis=0)
        y = arr - self._shift  # (N, D)
        mean_b = y.mean(axis=0)  # (D,) pairwise summation
        m2_b = np.square(y - mean_b).sum(axis=0)  # (D,)
        self._combine(arr.shape[0], mean_b, m2_b)
        self._sketch._add(arr)

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        """Chan et al.: fold in a part with n_b frames, mean mean_b (of x - self._shift) and M2 m2_b."""
        n_a = self._sketch.count
        if n_a == 0:
            self._mean, self._m2 = mean_b.copy(), m2_b.copy()
            return
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.square(delta) * (n_a * n_b / n)

    def merge(self, other: RunningStats) -> None:
        """Add everything `other` has seen (other is left unchanged)."""
        if not isinstance(other, RunningStats):
            raise ValueError(
                f"merge: got {type(other).__name__}; can only merge another RunningStats; "
                "build one with RunningStats(dim, n_bins)"
            )
        if other.dim != self.dim or other._sketch.n_bins != self._sketch.n_bins:
            raise ValueError(
                f"merge: other has dim={other.dim}, n_bins={other._sketch.n_bins}; must equal "
                f"dim={self.dim}, n_bins={self._sketch.n_bins}; build both with the same arguments"
            )
        if other.count == 0:
            return
        if self.count == 0:
            self._shift = other._shift.copy()
        # other's mean relative to our shift; shifts of similar data are close, so the difference is exact.
        self._combine(other.count, (other._shift - self._shift) + other._mean, other._m2)
        self._sketch.merge(other._sketch)  # after _combine, which reads our count

    def finalize(self) -> dict[str, Any]:
        """Statistics as JSON-able lists of floats per dimension, plus the frame count.

        Keys: min, max, mean, std (population), q01, q99, q_error (the sketch's bound on the error
        of q01/q99), count (int). A dimension that never varies gets mean = its value and std = 0
        exactly (rounding could otherwise leave a 1e-17 std that a later 1/std would blow up).
        """
        n = self.count
        if n == 0:
            raise ValueError(
                "finalize: count=0; statistics need at least one frame; call update() with data first "
                "(is the dataset or the selected feature empty?)"
            )
        lo, hi = self._sketch.min, self._sketch.max
        const = lo == hi
        mean = np.where(const, lo, self._shift + self._mean)
        std = np.where(const, 0.0, np.sqrt(np.maximum(self._m2 / n, 0.0)))
        return {
            "min": lo.tolist(),
            "max": hi.tolist(),
            "mean": mean.tolist(),
            "std": std.tolist(),
            "q01": self._sketch.quantile(0.01).tolist(),
            "q99": self._sketch.quantile(0.99).tolist(),
            "q_error": self._sketch.error_bound().tolist(),
            "count": int(n),
        }


# ----------------------------------------------------------------------------------------------------
# Normalisation helpers
# ----------------------------------------------------------------------------------------------------


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}={x!r}: must be numbers (an array or list of floats)") from e
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name} holds non-finite values ({arr!r}); statistics must be finite; recompute them"
        )
    return arr


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating | np.integer):
        raise ValueError(f"eps={eps!r}: must be a positive float; pass e.g. 1e-2")
    if not (math.isfinite(float(eps)) and eps > 0):
        raise ValueError(f"eps={eps!r}: must be a finite float > 0; pass e.g. 1e-2")
    return float(eps)


def safe_std(std: np.ndarray | Sequence[float], eps: float = 1e-2) -> np.ndarray:
    """np.maximum(std, eps) as float32: a std usable as a divisor, never 0.

    ACT clips std at >= 0.01 so that a dimension that (nearly) never varies is not blown up to huge
    values by (x - mean) / std; the same floor is the default here. Negative or non-finite std is a bug
    upstream and raises.
    """
    e = _check_eps(eps)
    arr = _as_float_array(std, "std")
    if (arr < 0).any():
        raise ValueError(f"std={arr!r} has negative values; a std is >= 0; recompute the statistics")
    return np.maximum(arr, e).astype(np.float32)


def minmax_scale_offset(
    min: np.ndarray | Sequence[float], max: np.ndarray | Sequence[float], eps: float = 1e-8
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset), float32, such that x * scale + offset maps [min, max] onto [-1, 1].

    scale = 2 / (max - min), offset = -(max + min) / (max - min). A dimension with max - min < eps
    never varies (or not measurably): it gets scale = 0 and offset = 0, so it maps to exactly 0 for
    any finite x, instead of dividing by zero (NaN/inf) or amplifying noise. The mapping is exact in
    real arithmetic; in float32 the endpoints land within a few ulps of -1 and 1.
    """
    e = _check_eps(eps)
    lo = _as_float_array(min, "min")
    hi = _as_float_array(max, "max")
    if lo.shape != hi.shape:
        raise ValueError(
            f"min has shape {lo.shape}, max has shape {hi.shape}; they must match (one per dimension)"
        )
    if (hi < lo).any():
        bad = np.flatnonzero(np.atleast_1d(hi < lo)).tolist()
        raise ValueError(f"max < min in dimensions {bad} (min={lo!r}, max={hi!r}); pass min first, then max")
    span = hi - lo
    varies = span >= e
    safe_span = np.where(varies, span, 1.0)
    scale = np.where(varies, 2.0 / safe_span, 0.0).astype(np.float32)
    offset = np.where(varies, -(hi + lo) / safe_span, 0.0).astype(np.float32)
    if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
        raise ValueError(
            f"min={lo!r}, max={hi!r}: the scale or offset overflows float32 (the values are huge compared "
            "with their range); centre the data before normalising or raise eps"
        )
    return scale, offset


def compute_store_stats(
    store: Any, *, max_image_frames: int = 2000, block_frames: int = 65536, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Statistics of every feature of a demo store except the timestamp.

    Low-dimensional features use every committed frame, read in blocks. Images are summarised per
    channel (in 0..255 pixel units) over at most ``max_image_frames`` frames spread evenly over the
    store, which pins mean and std to well under a pixel level at a fraction of the cost.
    """

    out: dict[str, dict[str, Any]] = {}
    n = store.n_frames
    keys = [k for k in store.features if k != "timestamp"]
    for key in tqdm(keys, desc="statistics", unit="feature", disable=not progress):
        feat = store.features[key]
        if feat.kind == "image":
            channels = feat.shape[2] if len(feat.shape) == 3 else 1
            rs = RunningStats(channels)
            idx = np.unique(np.linspace(0, n - 1, min(n, max_image_frames)).astype(np.int64))

            read = frame_reader(store, key)
            for lo in range(0, idx.size, 64):
                frames = read(idx[lo : lo + 64])
                rs.update(frames.reshape(-1, channels))  # (B*H*W, C)
            result = rs.finalize()
            result["sampled_frames"] = int(idx.size)
            result["shape"] = [channels]
        else:
            dim = int(np.prod(feat.shape, dtype=np.int64)) if feat.shape else 1
            rs = RunningStats(dim)
            for lo in range(0, n, block_frames):
                rs.update(store.read(key, lo, min(n, lo + block_frames)).reshape(-1, dim).astype(np.float64))
            result = rs.finalize()
            result["shape"] = list(feat.shape)
        out[key] = result
    return out
