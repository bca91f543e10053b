"""Colorization after Zhang, Isola & Efros (2016): the algorithm, in NumPy and TensorFlow.

Lab conversion (``rgb_to_lab`` / ``lab_to_rgb``, D65), the ab grid (``gamut_bins``,
``gamut_hull_bins``, ``used_bins``), the empirical prior and class rebalancing (``empirical_prior``,
``rebalance_weights``), soft targets (``soft_encode``), decoding (``annealed_mean``) and the
metrics (``error_auc``, ``rebalanced_error_auc``, ``balanced_error_auc``, ``mean_chroma``,
``soft_cross_entropy``, ``reliability``). The network, its windows, data, training and tiling are in
``helpers.colorizer``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

AB_RANGE = 110.0
"""The a and b channels of photographs stay within [-110, 110]."""

T_ANNEALED = 0.38
"""The paper's temperature of the annealed mean (between the mean, T = 1, and the mode)."""

AUC_MAX_THRESHOLD = 150.0
"""The largest ab error of the paper's AuC curve (thresholds 0, 1, ..., 150)."""

PROB_FLOOR = 1e-12
"""Probabilities are floored here before taking logs in ``soft_cross_entropy``."""

_WHITE_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPS = 0.008856  # (6/29)**3, where CIE's f(t) switches from linear to cube root
_SLOPE = 7.787  # (29/6)**2 / 3, the slope of f(t) below _EPS, rounded as CIE 1976 and scikit-image


def _check_channels(x: tf.Tensor, what: str) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    if x.shape.rank is None or x.shape.rank < 1 or x.shape[-1] != 3:
        raise ValueError(f"{what} must have shape (..., 3) with three channels last, got shape "
                         f"{tuple(x.shape)}; convert grey or RGBA images to RGB first.")
    return tf.cast(x, tf.float32) if not x.dtype.is_floating else x


def _power(x: tf.Tensor, p: float) -> tf.Tensor:
    """``x ** p`` for the positive branch of a ``tf.where`` (x <= 0 gives 0, never NaN).

    ``exp(p · log x)`` is about three times faster than ``tf.pow`` on a CPU, to float precision.
    """
    tiny = np.finfo(x.dtype.as_numpy_dtype).tiny
    return tf.exp(p * tf.math.log(tf.maximum(x, tiny)))


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """Convert sRGB in [0, 1] to CIE Lab (D65), vectorised over any leading shape.

    Args:
        rgb: float tensor of shape ``(..., 3)`` with values in [0, 1].

    Returns:
        Lab tensor of the same shape: L in [0, 100], a and b roughly in [-110, 110].
    """
    rgb = _check_channels(rgb, "rgb_to_lab's input")
    linear = tf.where(rgb > 0.04045, _power((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = tf.tensordot(linear, tf.constant(_RGB_TO_XYZ.T, rgb.dtype), axes=1)
    xyz = xyz / tf.constant(_WHITE_D65, rgb.dtype)
    f = tf.where(xyz > _EPS, _power(tf.maximum(xyz, _EPS), 1.0 / 3.0), _SLOPE * xyz + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """Convert CIE Lab (D65) to sRGB, clipping colours outside the sRGB gamut to [0, 1].

    Args:
        lab: float tensor of shape ``(..., 3)``.

    Returns:
        sRGB tensor of the same shape with values in [0, 1].
    """
    lab = _check_channels(lab, "lab_to_rgb's input")
    L, a, b = tf.unstack(lab, axis=-1)
    fy = (L + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, tf.maximum(fy - b / 200.0, 0.0)], axis=-1)
    xyz = tf.where(f > _EPS ** (1 / 3), f ** 3, (f - 16.0 / 116.0) / _SLOPE)
    xyz = xyz * tf.constant(_WHITE_D65, lab.dtype)
    linear = tf.tensordot(xyz, tf.constant(_XYZ_TO_RGB.T, lab.dtype), axes=1)
    linear = tf.maximum(linear, 0.0)
    rgb = tf.where(linear > 0.0031308, 1.055 * _power(linear, 1 / 2.4) - 0.055, 12.92 * linear)
    return tf.clip_by_value(rgb, 0.0, 1.0)


def _check_step(step: float) -> None:
    if not 0 < step <= AB_RANGE:
        raise ValueError(f"The ab grid step must be in (0, {AB_RANGE}], got {step}.")


def ab_to_bin_index(ab: np.ndarray, step: float = 10.0) -> np.ndarray:
    """Return the (row, column) of the grid cell of each ab pair on a grid of ``step``.

    Args:
        ab: array of shape ``(..., 2)`` with a and b within ``[-AB_RANGE, AB_RANGE]``.
        step: side of the square ab bins.

    Returns:
        Integer array of the same shape: ``round(ab / step)``.
    """
    _check_step(step)
    ab = np.asarray(ab, dtype=np.float64)
    worst = float(np.abs(ab).max()) if ab.size else 0.0
    if not worst <= AB_RANGE:
        raise ValueError(f"ab values must lie within [-{AB_RANGE:.0f}, {AB_RANGE:.0f}] (every sRGB "
                         f"colour does), got |ab| up to {worst:.1f}; convert sRGB photographs "
                         "with rgb_to_lab, or clip out-of-gamut values yourself before binning.")
    return np.round(ab / step).astype(int)


def _srgb_samples(levels: int, faces: bool) -> np.ndarray:
    """sRGB colours ``(N, 3)`` sampled at ``levels`` values per channel: the whole cube, or
    only its six faces."""
    if levels < 2:
        raise ValueError(f"Sample at least 2 levels per RGB channel, got {levels}.")
    g = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    if not faces:
        return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    u, v = (x.ravel() for x in np.meshgrid(g, g, indexing="ij"))
    sides = []
    for axis in range(3):
        for value in (0.0, 1.0):
            face = np.insert(np.stack([u, v], axis=1), axis, value, axis=1)
            sides.append(face)
    return np.concatenate(sides).astype(np.float32)


def gamut_bins(step: float = 10.0, levels: int = 64, faces: bool = False) -> np.ndarray:
    """Return the centres of the ab bins any sRGB colour falls in (the paper's in-gamut bins).

    Args:
        step: side of the square ab bins.
        levels: how many values per RGB channel are sampled (``levels**3`` colours).
        faces: sample only the six faces of the RGB cube (``6 * levels**2`` colours). The ab
            projection of the gamut is that of its surface (the extremes of every line of
            constant ab lie on it), so this reaches the same bins with far fewer colours.

    Returns:
        Array of shape ``(Q, 2)`` of bin centres (multiples of ``step``).
    """
    _check_step(step)
    rgb = _srgb_samples(levels, faces)
    return used_bins(rgb_to_lab(rgb).numpy()[:, 1:], step)


def _squares_meeting_polygon(vertices: np.ndarray, step: float,
                             reach: float | None = None) -> np.ndarray:
    """Centres (multiples of ``step`` within ``AB_RANGE``) of the closed grid squares of side
    ``step`` that meet the closed convex polygon ``vertices`` (in order), by the separating
    axis test: the two meet unless their projections on one of the square's axes or on one
    of the polygon's edge normals are disjoint. With ``reach``, the squares are of side
    ``2 · reach`` around the same centres (the centres within ``reach`` of the polygon in a and
    in b)."""
    reach = step / 2 if reach is None else reach
    n = int((AB_RANGE + reach) // step)
    c = np.arange(-n, n + 1) * step
    centres = np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)
    edges = np.roll(vertices, -1, axis=0) - vertices
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    axes = np.concatenate([np.eye(2), normals[np.hypot(*normals.T) > 0]])
    proj = vertices @ axes.T  # (vertices, axes)
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    mid = centres @ axes.T  # (centres, axes)
    half = reach * np.abs(axes).sum(axis=1)  # the square's half-extent along each axis
    meets = np.all((mid - half <= hi) & (mid + half >= lo), axis=1)
    return centres[meets].astype(np.float32)


def gamut_hull_bins(step: float = 10.0, levels: int = 256,
                    reach: float | None = None) -> np.ndarray:
    """Return the centres of the ab bin squares that meet the convex hull of the sRGB gamut's
    ab projection.

    The hull is that of the ab values of the colours on the six faces of the RGB cube sampled
    at ``levels`` values per channel (the projection of the gamut is that of its surface).
    The squares are closed, of side ``step``, centred on multiples of ``step`` as the bins of
    ``gamut_bins`` and ``used_bins`` are. Every bin of ``gamut_bins`` is among them.

    Args:
        step: side of the square ab bins.
        levels: values per RGB channel on each face of the cube.
        reach: keep the grid points within this distance of the hull in a and in b (default
            ``step / 2``: the bin squares that meet it); ``reach = step`` keeps those within
            one grid step.

    Returns:
        Array of shape ``(Q, 2)`` of bin centres, sorted by a then b.
    """
    from scipy.spatial import ConvexHull

    if reach is not None and not reach > 0:
        raise ValueError(f"reach must be a positive distance in ab units, got {reach}.")

    _check_step(step)
    ab = rgb_to_lab(_srgb_samples(levels, faces=True)).numpy()[:, 1:].astype(np.float64)
    hull = ConvexHull(ab)
    return _squares_meeting_polygon(ab[hull.vertices], step, reach)


def used_bins(ab: np.ndarray, step: float = 10.0, min_count: int = 1) -> np.ndarray:
    """Return the centres of the ab bins that at least ``min_count`` of the pixels fall in.

    Args:
        ab: array of shape ``(..., 2)`` of a and b values.
        step: side of the square ab bins.
        min_count: a bin needs this many pixels to be kept.

    Returns:
        Array of shape ``(Q, 2)``, sorted by a then b.
    """
    ab = np.asarray(ab)
    if ab.shape[-1] != 2 or ab.size == 0:
        raise ValueError(f"used_bins needs a non-empty array of shape (..., 2), got {ab.shape}.")
    idx, counts = np.unique(ab_to_bin_index(ab.reshape(-1, 2), step), axis=0, return_counts=True)
    return (idx[counts >= min_count] * step).astype(np.float32)


def _sq_distances(ab: tf.Tensor, bins: np.ndarray) -> tf.Tensor:
    """Squared distances ``(..., Q)`` from each ab pair to every bin centre.

    Computed per axis, ``(a − a_q)² + (b − b_q)²``: exact, and several times faster on a CPU
    than broadcasting to ``(..., Q, 2)`` and summing the last axis.
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    c = tf.constant(np.asarray(bins, np.float32))
    return tf.square(ab[..., :1] - c[:, 0]) + tf.square(ab[..., 1:] - c[:, 1])


_CELL = 5.0  # side of the cells of the candidate table (ab units)
_REACH = AB_RANGE + 2 * _CELL
"""The table covers [-_REACH, _REACH]²: every ab within AB_RANGE, and two cells of margin so
that a pixel at the edge still has its whole neighbourhood of cells inside the table (points
beyond it fall back to a search over all bins)."""
_N_CELLS = int(round(2 * _REACH / _CELL)) + 1  # cells along each axis
_TABLES: dict = {}


def _candidate_table(bins: np.ndarray, k: int) -> np.ndarray:
    """For each cell of a grid over the ab plane, the bins that can be among the k nearest.

    A point ``p`` in the cell centred on ``g`` is at most ``h`` (half the cell's diagonal)
    from ``g``, so its k-th nearest bin is within ``r_k(g) + h`` of it, and every bin among
    its k nearest is within ``r_k(g) + 2h`` of ``g``. Rows list those bins in increasing
    index order (as ``top_k`` breaks ties) and are padded with ``Q``, a far-away dummy.
    """
    key = (np.asarray(bins, np.float32).tobytes(), k)
    if key not in _TABLES:
        g = -_REACH + _CELL * np.arange(_N_CELLS)
        centres = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
        d = np.sqrt(((centres[:, None, :] - np.asarray(bins, np.float64)) ** 2).sum(-1))
        r_k = np.partition(d, k - 1, axis=1)[:, k - 1]
        ok = d <= r_k[:, None] + _CELL * np.sqrt(2.0) + 1e-3  # 2h, and a margin for rounding
        table = np.full((len(centres), ok.sum(1).max()), len(bins), np.int32)
        for row, mask in zip(table, ok):
            row[:mask.sum()] = np.flatnonzero(mask)
        _TABLES[key] = table
    return _TABLES[key]


def _nearest_k(ab: tf.Tensor, bins: np.ndarray, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The k nearest bins of each ab pair: ``(squared distances, indices)``, each ``(..., k)``.

    Nearest first, ties to the lower index: the same as ``top_k`` over all Q distances,
    which is what runs for ab values outside the table. Inside it (every sRGB colour), only
    the few candidates of each pixel's cell (see ``_candidate_table``) are compared.
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    table = _candidate_table(bins, k)
    padded = np.concatenate([np.asarray(bins, np.float32), [[1e4, 1e4]]]).astype(np.float32)

    def full() -> tuple[tf.Tensor, tf.Tensor]:
        neg_d2, idx = tf.math.top_k(-_sq_distances(ab, bins), k=k)
        return -neg_d2, idx

    def table_lookup() -> tuple[tf.Tensor, tf.Tensor]:
        cell = tf.cast(tf.round((ab + _REACH) / _CELL), tf.int32)
        cand = tf.gather(tf.constant(table), cell[..., 0] * _N_CELLS + cell[..., 1])  # (..., M)
        c = tf.gather(tf.constant(padded), cand)  # (..., M, 2)
        d2 = tf.square(ab[..., :1] - c[..., 0]) + tf.square(ab[..., 1:] - c[..., 1])
        neg_d2, j = tf.math.top_k(-d2, k=k)
        return -neg_d2, tf.gather(cand, j, batch_dims=len(ab.shape) - 1)

    inside = tf.reduce_all(tf.abs(ab) <= _REACH)
    return tf.cond(inside, table_lookup, full)


def nearest_bin(ab: tf.Tensor, bins: np.ndarray) -> tf.Tensor:
    """Return the index of the nearest bin centre for each ab pair (shape ``(...,)``)."""
    return _nearest_k(ab, bins, 1)[1][..., 0]


def _check_ab(ab, what: str) -> np.ndarray:
    ab = np.asarray(ab)
    if ab.ndim < 1 or ab.shape[-1] != 2:
        raise ValueError(f"{what} must be ab values of shape (..., 2), got shape {ab.shape}; "
                         "pass the a and b channels (lab[..., 1:]), not L, Lab or RGB.")
    return ab


_RECENT_NEAREST: dict = {}
"""The last few ``_nearest_bin_np`` results, keyed by the bytes' digest: the metrics of one
photo all need the nearest bin of the same true colours, once per network scored."""


def _nearest_bin_np(ab: np.ndarray, bins: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """``nearest_bin`` over a flat NumPy array, in chunks (the distances take N×Q floats)."""
    flat = np.ascontiguousarray(_check_ab(ab, "The colours to bin"), np.float32).reshape(-1, 2)
    b = np.ascontiguousarray(bins, np.float32)
    key = hashlib.sha1(flat.tobytes() + b.tobytes()).digest()
    if key not in _RECENT_NEAREST:
        if len(_RECENT_NEAREST) >= 32:
            _RECENT_NEAREST.pop(next(iter(_RECENT_NEAREST)))  # the oldest
        _RECENT_NEAREST[key] = np.concatenate(
            [nearest_bin(flat[i:i + chunk], b).numpy() for i in range(0, len(flat), chunk)]
            or [np.zeros(0, np.int32)])
    return _RECENT_NEAREST[key].copy()


def empirical_prior(ab: np.ndarray, bins: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Return the empirical distribution p̃ of pixels over the bins, Gaussian-smoothed.

    Each pixel counts for its nearest bin; the histogram is then smoothed over the ab
    plane with a Gaussian kernel of width ``sigma`` (ab units) and normalised to sum 1.

    Args:
        ab: array of shape ``(..., 2)`` of the training pixels' a and b.
        bins: bin centres, shape ``(Q, 2)``.
        sigma: width of the smoothing kernel; 0 leaves the histogram unsmoothed.

    Returns:
        Array of shape ``(Q,)`` summing to 1.
    """
    if sigma < 0:
        raise ValueError(f"sigma is a width and cannot be negative, got {sigma}.")
    counts = np.bincount(_nearest_bin_np(ab, bins), minlength=len(bins)).astype(np.float64)
    if sigma > 0:
        d2 = np.sum((bins[:, None, :] - bins[None, :, :]) ** 2, axis=-1)
        counts = np.exp(-d2 / (2 * sigma**2)) @ counts
    return counts / counts.sum()


def _check_prior(prior: np.ndarray) -> np.ndarray:
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 1 or np.any(prior < 0) or not np.isclose(prior.sum(), 1.0, atol=1e-5):
        raise ValueError("The prior must be a 1-D array of non-negative probabilities that sum "
                         f"to 1 (got sum {prior.sum():.4g}); divide the counts by their total.")
    return prior


def rebalance_weights(prior: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """Return class-rebalancing weights ``w ∝ ((1 − λ) p̃ + λ/Q)^−1`` with ``Σ p̃ w = 1``.

    Args:
        prior: the empirical distribution p̃ over the Q bins (sums to 1).
        lam: λ in [0, 1]; 0 gives weights ``1/p̃`` (full rebalancing), 1 uniform weights.

    Returns:
        Array of shape ``(Q,)`` of weights.
    """
    prior = _check_prior(prior)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam mixes the prior with a uniform distribution and must be in "
                         f"[0, 1], got {lam}.")
    mix = (1.0 - lam) * prior + lam / len(prior)
    if np.any(mix == 0):
        raise ValueError("With lam=0 every bin needs a non-zero prior; smooth the prior "
                         "(sigma > 0) or use lam > 0.")
    w = 1.0 / mix
    return w / np.sum(prior * w)


def soft_encode(ab: tf.Tensor, bins: np.ndarray, sigma: float = 5.0, k: int = 5) -> tf.Tensor:
    """Soft-encode ab values as distributions over the bins (the training targets).

    Each pixel spreads its mass over its ``k`` nearest bin centres with Gaussian weights of
    width ``sigma``. The paper says 5 neighbours, its released code uses 10.

    Args:
        ab: tensor of shape ``(..., 2)``.
        bins: bin centres, shape ``(Q, 2)``.
        sigma: width of the Gaussian (ab units).
        k: number of nearest bins that share the mass.

    Returns:
        Tensor of shape ``(..., Q)`` whose last axis sums to 1.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    if not 1 <= k <= len(bins):
        raise ValueError(f"k must be between 1 and the number of bins ({len(bins)}), got {k}.")
    return _soft_encode_nearest(ab, bins, sigma, k)[0]


def _soft_neighbours(ab: tf.Tensor, bins: np.ndarray, sigma: float,
                     k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The soft targets' non-zero part: weights and bin indices ``(..., k)``, nearest first."""
    d2, idx = _nearest_k(ab, bins, k)  # sorted: idx[..., 0] is the nearest bin
    return tf.nn.softmax(-d2 / (2.0 * sigma**2), axis=-1), idx  # normalised Gaussian weights


def _soft_encode_nearest(ab: tf.Tensor, bins: np.ndarray, sigma: float,
                         k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft targets ``(..., Q)`` and nearest-bin indices ``(...,)`` of ab values."""
    w, idx = _soft_neighbours(ab, bins, sigma, k)
    q = len(bins)
    flat_idx = tf.reshape(idx, (-1, k))
    rows = tf.shape(flat_idx)[0]
    # each pixel's k weights summed into its row of a flat (pixels × Q) array
    flat = tf.reshape(flat_idx + q * tf.range(rows)[:, None], [-1])
    z = tf.math.unsorted_segment_sum(tf.reshape(w, [-1]), flat, rows * q)
    return tf.reshape(z, tf.concat([tf.shape(idx)[:-1], [q]], 0)), idx[..., 0]


def annealed_mean(probs: tf.Tensor, bins: np.ndarray, T: float = T_ANNEALED) -> tf.Tensor:
    """Decode distributions over bins into ab values with the annealed mean.

    The distribution is sharpened to ``p^(1/T)`` (renormalised) and its mean taken:
    T = 1 gives the mean, T → 0 the mode.

    Args:
        probs: tensor of shape ``(..., Q)`` of probabilities.
        bins: bin centres, shape ``(Q, 2)``.
        T: temperature, > 0.

    Returns:
        Tensor of shape ``(..., 2)``.
    """
    if not T > 0:
        raise ValueError(f"The temperature T must be positive (T -> 0 gives the mode), got {T}.")
    probs = tf.convert_to_tensor(probs, tf.float32)
    if probs.shape[-1] != len(bins):
        raise ValueError(f"probs has {probs.shape[-1]} classes but there are {len(bins)} bins.")
    logits = tf.math.log(tf.maximum(probs, 1e-30)) / T
    return tf.tensordot(tf.nn.softmax(logits, axis=-1), tf.constant(bins, tf.float32), axes=1)


# ---------------------------------------------------------------- metrics


def _check_pair(pred_ab: np.ndarray, true_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred_ab, true_ab = np.asarray(pred_ab, np.float64), np.asarray(true_ab, np.float64)
    if pred_ab.shape != true_ab.shape or pred_ab.shape[-1] != 2:
        raise ValueError(f"Predicted and true ab must have the same shape (..., 2), got "
                         f"{pred_ab.shape} and {true_ab.shape}.")
    return pred_ab, true_ab


def pixel_auc(pred_ab: np.ndarray, true_ab: np.ndarray,
              max_threshold: float = AUC_MAX_THRESHOLD) -> np.ndarray:
    """Each pixel's share of the AuC: the normalised area under its own 0/1 curve.

    A pixel whose ab error is ``e`` is "within threshold" for every threshold ``t >= e``; its
    curve, sampled at ``t = 0, 1, ..., max_threshold`` and integrated with the trapezoid rule,
    gives the area ``error_auc`` averages.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        max_threshold: the largest ab distance of the curve (the paper: 150).

    Returns:
        Array of shape ``(...)`` with values in [0, 1].
    """
    if not max_threshold >= 1:
        raise ValueError(f"max_threshold must be at least 1 ab unit, got {max_threshold}.")
    pred_ab, true_ab = _check_pair(pred_ab, true_ab)
    err = np.sqrt(np.sum((pred_ab - true_ab) ** 2, axis=-1))
    first = np.ceil(err)  # the first integer threshold the pixel is within
    area = np.where(first > 0, max_threshold - first + 0.5, max_threshold)
    return np.where(first <= max_threshold, area, 0.0) / max_threshold


def error_auc(pred_ab: np.ndarray, true_ab: np.ndarray,
              max_threshold: float = AUC_MAX_THRESHOLD,
              pixel_weights: np.ndarray | None = None) -> float:
    """Area under the curve of the fraction of pixels within each ab-error threshold.

    The thresholds run from 0 to ``max_threshold`` (paper: 150) in steps of 1; the area is
    normalised so a perfect prediction scores 1.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        max_threshold: the largest ab distance of the curve.
        pixel_weights: optional non-negative weights per pixel (shape ``(...)``).

    Returns:
        The normalised area, in [0, 1].
    """
    scores = pixel_auc(pred_ab, true_ab, max_threshold).ravel()
    if pixel_weights is None:
        return float(scores.mean())
    w = np.asarray(pixel_weights, np.float64).ravel()
    if w.shape != scores.shape or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"pixel_weights must be non-negative, not all zero, one per pixel "
                         f"({scores.size}), got {w.size} values.")
    return float(np.sum(w * scores) / w.sum())


def class_auc_sums(pred_ab: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                   max_threshold: float = AUC_MAX_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Per colour class (the true ab's nearest bin): the sum of pixel AuCs, and the pixel count.

    Sums add up over photos, so the balanced AuC of any set of photos (a bootstrap resample,
    say) follows from the per-photo sums with ``balanced_auc_from_sums``.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        bins: bin centres ``(Q, 2)`` that define the colour classes.
        max_threshold: the largest ab distance of the curve.

    Returns:
        ``(sums, counts)``, each of shape ``(Q,)``.
    """
    scores = pixel_auc(pred_ab, true_ab, max_threshold).ravel()
    cls = _nearest_bin_np(np.asarray(true_ab, np.float32), bins)
    q = len(bins)
    return np.bincount(cls, scores, q), np.bincount(cls, minlength=q).astype(np.float64)


def balanced_auc_from_sums(sums: np.ndarray, counts: np.ndarray) -> float:
    """The class-balanced AuC from per-class sums: the mean AuC of the classes present."""
    sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.float64)
    if sums.shape != counts.shape or not np.any(counts > 0):
        raise ValueError("sums and counts need the same shape and at least one pixel.")
    present = counts > 0
    return float(np.mean(sums[present] / counts[present]))


def balanced_error_auc(pred_ab: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                       max_threshold: float = AUC_MAX_THRESHOLD) -> float:
    """A class-balanced AuC of this book's own: each colour class present counts once.

    Not the paper's metric (that is ``rebalanced_error_auc``). Pixels are weighted inversely by
    the frequency of their colour class counted among the pixels scored, so every colour class
    present carries the same total weight: the result is the mean over classes of each class's
    AuC.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        bins: bin centres ``(Q, 2)`` that define the colour classes.
        max_threshold: the largest ab distance of the curve.

    Returns:
        The normalised area, in [0, 1].
    """
    return balanced_auc_from_sums(*class_auc_sums(pred_ab, true_ab, bins, max_threshold))


def rebalanced_auc_sums(pred_ab: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                        prior: np.ndarray,
                        max_threshold: float = AUC_MAX_THRESHOLD) -> tuple[float, float]:
    """The paper's class-rebalanced AuC, as a weighted sum and its total weight.

    Each pixel is weighted by ``rebalance_weights(prior, lam=0)`` of its true colour's nearest
    bin: inversely by that class's probability under the training prior (the paper's
    Equation 4 with λ = 0, normalised so the weights average 1 under the prior). Sums add up
    over photos, so the score of a whole test set is ``sum(sums) / sum(totals)``.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        bins: bin centres ``(Q, 2)``.
        prior: the training prior p̃ over the Q bins (every bin non-zero, e.g. smoothed).
        max_threshold: the largest ab distance of the curve.

    Returns:
        ``(weighted sum of pixel AuCs, sum of the pixel weights)``.
    """
    prior = _check_prior(prior)
    if len(prior) != len(bins):
        raise ValueError(f"The prior has {len(prior)} classes but there are {len(bins)} bins; "
                         "pass the prior computed over these bins.")
    w = rebalance_weights(prior, lam=0.0)[_nearest_bin_np(np.asarray(true_ab, np.float32), bins)]
    scores = pixel_auc(pred_ab, true_ab, max_threshold).ravel()
    return float(np.sum(w * scores)), float(np.sum(w))


def rebalanced_error_auc(pred_ab: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                         prior: np.ndarray, max_threshold: float = AUC_MAX_THRESHOLD) -> float:
    """The paper's class-rebalanced AuC of one set of pixels (weights 1/p̃ of the training prior).

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        bins: bin centres ``(Q, 2)``.
        prior: the training prior p̃ over the Q bins.
        max_threshold: the largest ab distance of the curve.

    Returns:
        The weighted normalised area, in [0, 1].
    """
    total, weight = rebalanced_auc_sums(pred_ab, true_ab, bins, prior, max_threshold)
    return total / weight


def mean_chroma(ab: np.ndarray) -> float:
    """Mean chroma ``sqrt(a² + b²)`` over pixels (colourfulness; 0 for grey)."""
    ab = np.asarray(ab, np.float64)
    if ab.shape[-1] != 2:
        raise ValueError(f"mean_chroma needs ab values of shape (..., 2), got {ab.shape}.")
    return float(np.mean(np.sqrt(np.sum(ab**2, axis=-1))))


HUE_MIN_TRUE_CHROMA = 20.0
"""``hue_hits`` scores only pixels at least this colourful (ab units): clearly coloured ones."""

HUE_MIN_PRED_CHROMA = 5.0
"""A prediction needs at least this chroma (ab units) to have a hue at all (grey has none)."""

HUE_MAX_ANGLE = 30.0
"""A predicted hue within this many degrees of the true hue counts as the right colour."""


def hue_hits(pred_ab: np.ndarray, true_ab: np.ndarray, *,
             min_true_chroma: float = HUE_MIN_TRUE_CHROMA,
             min_pred_chroma: float = HUE_MIN_PRED_CHROMA,
             max_angle: float = HUE_MAX_ANGLE) -> tuple[int, int]:
    """How many clearly coloured pixels got the right colour: a measure grey cannot win.

    Among the pixels whose true chroma is at least ``min_true_chroma``, a pixel is a hit when
    its prediction has a chroma of at least ``min_pred_chroma`` and a hue (the angle of its
    ab vector) within ``max_angle`` degrees of the true hue. Grey everywhere scores no hit.
    Counts add up over photos: the share of a set of photos is ``sum(hits) / sum(scored)``.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        min_true_chroma: the chroma a true colour needs to be scored.
        min_pred_chroma: the chroma a prediction needs to have a hue.
        max_angle: the largest hue difference that counts as right (degrees, up to 180).

    Returns:
        ``(hits, scored pixels)``.
    """
    pred_ab, true_ab = _check_pair(pred_ab, true_ab)
    if not 0 < max_angle <= 180 or min_true_chroma < 0 or min_pred_chroma < 0:
        raise ValueError(f"max_angle must be in (0, 180] degrees and the chroma thresholds "
                         f"non-negative, got {max_angle}, {min_true_chroma}, {min_pred_chroma}.")
    true_c = np.hypot(true_ab[..., 0], true_ab[..., 1])
    pred_c = np.hypot(pred_ab[..., 0], pred_ab[..., 1])
    scored = true_c >= min_true_chroma
    turn = np.arctan2(pred_ab[..., 1], pred_ab[..., 0]) - np.arctan2(true_ab[..., 1],
                                                                      true_ab[..., 0])
    angle = np.degrees(np.abs(np.angle(np.exp(1j * turn))))  # wrapped to [0, 180]
    hit = scored & (pred_c >= min_pred_chroma) & (angle <= max_angle)
    return int(hit.sum()), int(scored.sum())


def hue_range_scores(pred_ab: list[np.ndarray], true_ab: list[np.ndarray],
                     hue_range: tuple[float, float], *,
                     min_true_chroma: float = HUE_MIN_TRUE_CHROMA) -> dict[str, float]:
    """The right-hue share and the typical predicted hue where the true hue is in a range.

    Over a set of photos (e.g. the sky: true hues 225° to 315°), takes the clearly coloured
    pixels (true chroma at least ``min_true_chroma``) whose true hue, in degrees from 0 to 360,
    lies in ``[low, high)``, scores them with :func:`hue_hits` and takes the median hue of
    the predictions there.

    Args:
        pred_ab: one predicted ab array ``(..., 2)`` per photo.
        true_ab: the true ab arrays, same shapes.
        hue_range: ``(low, high)`` in degrees, ``0 <= low < high <= 360``.
        min_true_chroma: the chroma a true colour needs to be counted.

    Returns:
        ``pixels`` (counted), ``photos`` (with at least one such pixel), ``top_share`` (the
        largest photo's share of the pixels), ``hits``, ``share`` (hits / pixels) and
        ``median_hue`` (of the predictions, degrees) and ``median_chroma`` (of the
        predictions: a hue of a near-grey prediction means little); the ratios and medians are
        NaN when no pixel is counted.
    """
    low, high = (float(h) for h in hue_range)
    if not 0 <= low < high <= 360:
        raise ValueError(f"hue_range must be (low, high) degrees with 0 <= low < high <= 360, "
                         f"got {hue_range!r}.")
    if len(pred_ab) != len(true_ab):
        raise ValueError(f"hue_range_scores needs one prediction per photo: got {len(pred_ab)} "
                         f"predictions for {len(true_ab)} photos.")
    counts, hits, hues, chromas = [], 0, [], []
    for pred, true in zip(pred_ab, true_ab):
        pred, true = _check_pair(pred, true)
        hue = np.degrees(np.arctan2(true[..., 1], true[..., 0])) % 360
        keep = ((hue >= low) & (hue < high)
                & (np.hypot(true[..., 0], true[..., 1]) >= min_true_chroma))
        hits += hue_hits(pred[keep], true[keep], min_true_chroma=min_true_chroma)[0]
        counts.append(int(keep.sum()))
        hues.append(np.degrees(np.arctan2(pred[keep][:, 1], pred[keep][:, 0])) % 360)
        chromas.append(np.hypot(pred[keep][:, 0], pred[keep][:, 1]))
    pixels = sum(counts)
    nan = float("nan")
    return {"pixels": pixels, "photos": sum(c > 0 for c in counts),
            "top_share": max(counts) / pixels if pixels else nan, "hits": hits,
            "share": hits / pixels if pixels else nan,
            "median_hue": float(np.median(np.concatenate(hues))) if pixels else nan,
            "median_chroma": float(np.median(np.concatenate(chromas))) if pixels else nan}


def soft_cross_entropy(probs: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                       sigma: float = 5.0, k: int = 5) -> float:
    """Mean cross-entropy (nats per pixel) of predicted distributions against the soft targets.

    Probabilities below ``PROB_FLOOR`` count as ``PROB_FLOOR`` (a smoothed prior can
    underflow to 0 far from the photos' colours), so the score stays finite.

    Args:
        probs: predicted distributions ``(..., Q)``, or one distribution ``(Q,)`` for every
            pixel (e.g. the training prior, the trivial baseline).
        true_ab: true ab ``(..., 2)``.
        bins: bin centres ``(Q, 2)``.
        sigma: width of the soft-encoding Gaussian.
        k: neighbours of the soft encoding.

    Returns:
        The mean over pixels of ``-sum_q z_q log p_q``.
    """
    true_ab = _check_ab(true_ab, "soft_cross_entropy's true_ab")
    true_ab = np.asarray(true_ab, np.float32).reshape(-1, 2)
    probs = np.asarray(probs, np.float64)
    if probs.shape[-1] != len(bins) or probs.size // len(bins) not in (1, len(true_ab)):
        raise ValueError(f"probs must have Q = {len(bins)} classes and one row per pixel (or a "
                         f"single row), got {probs.shape} for {len(true_ab)} pixels.")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}.")
    if not 1 <= k <= len(bins):
        raise ValueError(f"k must be between 1 and the number of bins ({len(bins)}), got {k}.")
    log_p = np.log(np.maximum(probs.reshape(-1, len(bins)), PROB_FLOOR))
    # the soft target has only k non-zero entries per pixel: sum over those, never over all Q
    z, idx = _soft_neighbours(true_ab, bins, sigma, k)
    z, idx = z.numpy().astype(np.float64), idx.numpy()
    picked = log_p[0][idx] if len(log_p) == 1 else np.take_along_axis(log_p, idx, axis=1)
    total = -float(np.sum(z * picked))
    return total / len(true_ab)


def reliability(probs: np.ndarray, true_ab: np.ndarray, bins: np.ndarray,
                n_groups: int = 10) -> dict[str, np.ndarray]:
    """Calibration of the most likely bin: its predicted probability against how often it is right.

    Pixels are grouped by the probability of their most likely bin (``n_groups`` equal-width
    groups over [0, 1]); a pixel is right when that bin is its true colour's nearest bin.

    Args:
        probs: predicted distributions ``(..., Q)``.
        true_ab: true ab ``(..., 2)``.
        bins: bin centres ``(Q, 2)``.
        n_groups: number of confidence groups.

    Returns:
        ``confidence``, ``accuracy`` and ``count`` per group (NaN where a group is empty), and
        ``ece``, the count-weighted mean gap between the two (expected calibration error).
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be positive, got {n_groups}.")
    probs = np.asarray(probs, np.float32)
    if probs.shape[-1] != len(bins):
        raise ValueError(f"reliability needs probs with Q = {len(bins)} classes last, got shape "
                         f"{probs.shape}.")
    probs = probs.reshape(-1, len(bins))
    true_ab = np.asarray(_check_ab(true_ab, "reliability's true_ab"), np.float32).reshape(-1, 2)
    if len(probs) != len(true_ab):
        raise ValueError(f"probs and true_ab must have one row per pixel, got {len(probs)} and "
                         f"{len(true_ab)}.")
    conf, right = probs.max(-1), probs.argmax(-1) == _nearest_bin_np(true_ab, bins)
    group = np.minimum((conf * n_groups).astype(int), n_groups - 1)
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(group, conf, n_groups) / count
        accuracy = np.bincount(group, right, n_groups) / count
    gaps = np.where(count > 0, np.abs(confidence - accuracy), 0.0)
    return {"confidence": confidence, "accuracy": accuracy, "count": count,
            "ece": np.float64(np.sum(count * gaps) / count.sum())}
