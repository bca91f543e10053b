"""Colorization after Zhang, Isola & Efros (2016): Lab conversion, ab bins, prior, decoding.

Every step of the paper's algorithm is one small function here, so the chapter can show each
of them on real photographs: ``rgb_to_lab`` / ``lab_to_rgb`` (TensorFlow, D65),
``gamut_bins`` / ``used_bins`` (the ab grid), ``empirical_prior`` and ``rebalance_weights``
(class rebalancing), ``soft_encode`` (targets), ``build_model`` (the post's eight
convolutions), ``annealed_mean`` (decoding), ``predict_ab`` and ``colorize`` (whole images).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

AB_RANGE = 110.0
"""The a and b channels of photographs stay within [-110, 110]."""

WINDOW = 32
"""Side of the L window the network sees (pixels)."""

OUTPUT = 16
"""Side of the ab distribution the network predicts for the window's centre (pixels)."""

_WHITE_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPS = 0.008856  # (6/29)**3, where CIE's f(t) switches from linear to cube root


def split_cpu(n: int = 2) -> list:
    """Split the CPU into ``n`` logical devices (for ``MirroredStrategy`` on one machine).

    Call it before any other TensorFlow operation runs (first cell of a notebook).

    Args:
        n: number of logical CPU devices wanted.

    Returns:
        The logical CPU devices TensorFlow now has.
    """
    if n < 1:
        raise ValueError(f"Ask for at least one logical CPU device, got n={n}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as err:  # TensorFlow was already initialised
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) != n:
            raise ValueError(
                f"TensorFlow is already running with {len(existing)} CPU device(s); call "
                "split_cpu() in the first code cell, before any other TensorFlow operation "
                "(restart the kernel and run again).") from err
    return tf.config.list_logical_devices("CPU")


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
    f = tf.where(xyz > _EPS, _power(tf.maximum(xyz, _EPS), 1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
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
    xyz = tf.where(f > _EPS ** (1 / 3), f ** 3, (f - 16.0 / 116.0) / 7.787)
    xyz = xyz * tf.constant(_WHITE_D65, lab.dtype)
    linear = tf.tensordot(xyz, tf.constant(_XYZ_TO_RGB.T, lab.dtype), axes=1)
    linear = tf.maximum(linear, 0.0)
    rgb = tf.where(linear > 0.0031308, 1.055 * _power(linear, 1 / 2.4) - 0.055, 12.92 * linear)
    return tf.clip_by_value(rgb, 0.0, 1.0)


def _check_step(step: float) -> None:
    if not 0 < step <= AB_RANGE:
        raise ValueError(f"The ab grid step must be in (0, {AB_RANGE}], got {step}.")


def ab_to_bin_index(ab: np.ndarray, step: float = 10.0) -> np.ndarray:
    """Return the (row, column) of the grid cell of each ab pair on a grid of ``step``."""
    _check_step(step)
    ab = np.asarray(ab, dtype=np.float64)
    return np.round(np.clip(ab, -AB_RANGE, AB_RANGE) / step).astype(int)


def gamut_bins(step: float = 10.0, levels: int = 64) -> np.ndarray:
    """Return the centres of the ab bins any sRGB colour falls in (the paper's in-gamut bins).

    Args:
        step: side of the square ab bins.
        levels: how many values per RGB channel are sampled (``levels**3`` colours).

    Returns:
        Array of shape ``(Q, 2)`` of bin centres (multiples of ``step``).
    """
    if levels < 2:
        raise ValueError(f"Sample at least 2 levels per RGB channel, got {levels}.")
    g = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    rgb = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    return used_bins(rgb_to_lab(rgb).numpy()[:, 1:], step)


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


_CELL = 5.0     # side of the cells of the candidate table (ab units)
_REACH = 120.0  # the table covers [-_REACH, _REACH]² (every sRGB colour's a and b)
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


def _nearest_bin_np(ab: np.ndarray, bins: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """``nearest_bin`` over a flat NumPy array, in chunks (the distances take N×Q floats)."""
    flat = np.asarray(ab, np.float32).reshape(-1, 2)
    return np.concatenate([nearest_bin(flat[i:i + chunk], bins).numpy()
                           for i in range(0, len(flat), chunk)] or [np.zeros(0, np.int32)])


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


def _soft_encode_nearest(ab: tf.Tensor, bins: np.ndarray, sigma: float,
                         k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Soft targets ``(..., Q)`` and nearest-bin indices ``(...,)`` of ab values."""
    d2, idx = _nearest_k(ab, bins, k)  # sorted: idx[..., 0] is the nearest bin
    w = tf.nn.softmax(-d2 / (2.0 * sigma**2), axis=-1)  # normalised Gaussian weights
    q = len(bins)
    flat_idx = tf.reshape(idx, (-1, k))
    rows = tf.shape(flat_idx)[0]
    # each pixel's k weights summed into its row of a flat (pixels × Q) array
    flat = tf.reshape(flat_idx + q * tf.range(rows)[:, None], [-1])
    z = tf.math.unsorted_segment_sum(tf.reshape(w, [-1]), flat, rows * q)
    return tf.reshape(z, tf.concat([tf.shape(idx)[:-1], [q]], 0)), idx[..., 0]


def annealed_mean(probs: tf.Tensor, bins: np.ndarray, T: float = 0.38) -> tf.Tensor:
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


# ---------------------------------------------------------------- the network and its data


def build_model(q: int, variant: str = "classification",
                precision: str = "float32") -> tf.keras.Model:
    """Build the post's network: 8 unpadded 3×3 convolutions, 32×32 L → 16×16 output.

    Filters grow in steps of Q/8 (Q/8, 2Q/8, ..., Q); the input is ``L − 50``.

    Args:
        q: number of ab bins Q (sets the widths, even for regression).
        variant: ``"classification"`` (softmax over Q bins) or ``"regression"`` (2 ab values).
        precision: ``"float32"`` or ``"mixed_bfloat16"`` (the convolutions compute in
            bfloat16 with float32 weights; the softmax and the outputs stay float32).

    Returns:
        An uncompiled Keras model.
    """
    import keras

    if variant not in {"classification", "regression"}:
        raise ValueError(f"variant must be 'classification' or 'regression', got {variant!r}.")
    if q < 8:
        raise ValueError(f"Q must be at least 8 so that the widths Q/8 are whole, got {q}.")
    if precision not in {"float32", "mixed_bfloat16"}:
        raise ValueError(f"precision must be 'float32' or 'mixed_bfloat16', got {precision!r}.")
    inputs = keras.Input((WINDOW, WINDOW, 1), name="L")
    x = keras.layers.Rescaling(1.0, offset=-50.0, name="L_minus_50")(inputs)
    step = max(1, round(q / 8))
    for i in range(1, 8):
        x = keras.layers.Conv2D(step * i, 3, activation="relu", name=f"conv{i}",
                                dtype=precision)(x)
    if precision == "float32":
        if variant == "classification":
            outputs = keras.layers.Conv2D(q, 3, activation="softmax", name="probs")(x)
        else:
            outputs = keras.layers.Conv2D(2, 3, name="ab")(x)
    else:  # last convolution in bfloat16, its softmax (and so the loss) in float32
        x = keras.layers.Conv2D(q if variant == "classification" else 2, 3, dtype=precision,
                                name="logits" if variant == "classification" else "ab_bf16")(x)
        outputs = keras.layers.Activation(
            "softmax" if variant == "classification" else "linear", dtype="float32",
            name="probs" if variant == "classification" else "ab")(x)
    return keras.Model(inputs, outputs, name=f"colorizer_{variant}")


def random_windows(images: list[np.ndarray], n: int, seed: int = 0,
                   size: int = WINDOW) -> np.ndarray:
    """Cut ``n`` random ``size``×``size`` RGB windows from a list of images.

    Args:
        images: float RGB arrays of shape ``(H, W, 3)``, each at least ``size`` on a side.
        n: number of windows.
        seed: random seed.
        size: side of the windows.

    Returns:
        float32 array of shape ``(n, size, size, 3)``.
    """
    if n < 1 or not images:
        raise ValueError(f"Ask for at least one window from at least one image (n={n}, "
                         f"{len(images)} images).")
    for im in images:
        _check_image(im, size)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(images), n)
    out = np.empty((n, size, size, 3), np.float32)
    for j, i in enumerate(which):
        h, w = images[i].shape[:2]
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[j] = images[i][y:y + size, x:x + size]
    return out


def _check_image(im: np.ndarray, size: int = WINDOW) -> None:
    if im.ndim != 3 or im.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3), got shape {im.shape}; "
                         "convert grey or RGBA images with PIL's .convert('RGB').")
    if min(im.shape[:2]) < size:
        raise ValueError(f"The image is {im.shape[0]}×{im.shape[1]} px, smaller than the "
                         f"{size}×{size} window; upscale it or use a larger working size.")


def make_targets(windows: tf.Tensor, bins: np.ndarray, weights: np.ndarray | None = None,
                 variant: str = "classification", sigma: float = 5.0,
                 k: int = 5) -> tuple:
    """Turn a batch of RGB windows into ``(L, target, pixel_weight)`` for training.

    Args:
        windows: float tensor ``(B, 32, 32, 3)`` of RGB in [0, 1].
        bins: bin centres ``(Q, 2)``.
        weights: rebalancing weights ``(Q,)``; None gives every pixel weight 1.
        variant: ``"classification"`` (soft-encoded targets) or ``"regression"`` (ab).
        sigma: width of the soft-encoding Gaussian.
        k: neighbours in the soft encoding.

    Returns:
        ``L`` of shape ``(B, 32, 32, 1)``, the target ``(B, 16, 16, Q or 2)`` and the
        per-pixel weights ``(B, 16, 16)`` (weight of each pixel's nearest bin).
    """
    lab = rgb_to_lab(windows)
    m = (WINDOW - OUTPUT) // 2
    ab = lab[:, m:m + OUTPUT, m:m + OUTPUT, 1:]
    if weights is None and variant != "classification":
        return lab[..., :1], ab, tf.ones(tf.shape(ab)[:-1])
    if variant == "classification":  # the nearest bin comes with the soft targets
        target, nearest = _soft_encode_nearest(ab, bins, sigma, k)
    else:
        target, nearest = ab, nearest_bin(ab, bins)
    if weights is None:
        pixel_w = tf.ones(tf.shape(ab)[:-1])
    else:
        pixel_w = tf.gather(tf.constant(weights, tf.float32), nearest)
    return lab[..., :1], target, pixel_w


def make_dataset(windows: np.ndarray, bins: np.ndarray, weights: np.ndarray | None = None,
                 variant: str = "classification", batch_size: int = 32, seed: int = 0,
                 sigma: float = 5.0, k: int = 5) -> tf.data.Dataset:
    """Return an endless, shuffled ``tf.data`` pipeline of ``(L, target, pixel_weight)``.

    Lab conversion, soft-encoding and weights are computed per batch, vectorised.

    Args:
        windows: float32 RGB windows ``(N, 32, 32, 3)``.
        bins: bin centres ``(Q, 2)``.
        weights: rebalancing weights or None.
        variant: ``"classification"`` or ``"regression"``.
        batch_size: windows per batch.
        seed: shuffling seed.
        sigma: width of the soft-encoding Gaussian.
        k: neighbours in the soft encoding.

    Returns:
        A ``tf.data.Dataset`` yielding batches forever.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    ds = tf.data.Dataset.from_tensor_slices(windows).repeat()
    ds = ds.shuffle(min(len(windows), 4096), seed=seed).batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda w: make_targets(w, bins, weights, variant, sigma, k),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train(variant: str, windows: np.ndarray, bins: np.ndarray, weights: np.ndarray | None,
          steps: int, cache: Path, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
          strategy: tf.distribute.Strategy | None = None, retrain: bool = False,
          chunk: int = 100, log: Callable[[str], None] | None = None, sigma: float = 5.0,
          k: int = 5, precision: str = "float32") -> tuple:
    """Train one variant, resuming from checkpoints and reusing finished weights.

    The weights live in ``cache / <variant>-<hash of the configuration>``; a
    ``tf.train.CheckpointManager`` saves every ``chunk`` steps, so an interrupted run
    continues where it stopped, and a finished run is only loaded (unless ``retrain``).

    Args:
        variant: ``"regression"``, ``"classification"`` or ``"rebalanced"``.
        windows: training RGB windows ``(N, 32, 32, 3)``.
        bins: bin centres ``(Q, 2)``.
        weights: rebalancing weights (used only by ``"rebalanced"``).
        steps: optimisation steps.
        cache: folder for checkpoints.
        batch_size: global batch size (split across the strategy's replicas).
        lr: Adam learning rate.
        seed: initialisation and shuffling seed.
        strategy: a ``tf.distribute`` strategy; default: the current one.
        retrain: ignore finished weights and train again from scratch.
        chunk: steps between checkpoints.
        log: optional function called with a progress line after each chunk.
        sigma: width of the soft-encoding Gaussian (classification variants).
        k: neighbours of the soft encoding (the paper says 5, its code uses 10).
        precision: ``"float32"`` or ``"mixed_bfloat16"`` (see ``build_model``).

    Returns:
        ``(model, info)`` where info holds the losses per chunk, the steps trained in this
        call and the seconds they took, the total training seconds of the finished run
        (kept with its weights) and its throughput in windows per second (chunks after the
        first, which includes tracing).
    """
    import keras

    if variant not in {"regression", "classification", "rebalanced"}:
        raise ValueError("variant must be 'regression', 'classification' or 'rebalanced', "
                         f"got {variant!r}.")
    if steps < 1 or chunk < 1:
        raise ValueError(f"steps and chunk must be positive, got {steps} and {chunk}.")
    strategy = strategy or tf.distribute.get_strategy()
    config = {"variant": variant, "steps": steps, "batch": batch_size, "lr": lr, "seed": seed,
              "n": len(windows), "bins": np.asarray(bins).tolist(), "sigma": sigma, "k": k,
              "data": hashlib.sha1(np.ascontiguousarray(windows, np.float32)).hexdigest(),
              "weights": None if weights is None else np.round(weights, 6).tolist(),
              "replicas": strategy.num_replicas_in_sync}
    if precision != "float32":  # float32 keeps the cache keys it always had
        config["precision"] = precision
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache) / f"{variant}-{key}"
    if retrain and folder.exists():
        import shutil

        shutil.rmtree(folder)
    kind = "regression" if variant == "regression" else "classification"
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(len(bins), kind, precision)
        optimizer = keras.optimizers.Adam(lr)
        loss = (keras.losses.MeanSquaredError() if kind == "regression"
                else keras.losses.CategoricalCrossentropy())
        model.compile(optimizer=optimizer, loss=loss)
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        optimizer.build(model.trainable_variables)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(ckpt, folder, max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).expect_partial()
    history = json.loads((folder / "losses.json").read_text()) if (
        folder / "losses.json").exists() else []
    timing = json.loads((folder / "timing.json").read_text()) if (
        folder / "timing.json").exists() else []  # [steps, seconds] of each chunk
    use_w = weights if variant == "rebalanced" else None
    done_before, spent = int(step.numpy()), 0.0
    while int(step.numpy()) < steps:
        n = min(chunk, steps - int(step.numpy()))
        # a fresh shuffle per chunk: a new iterator over one seeded dataset would replay it
        ds = make_dataset(windows, bins, use_w, kind, batch_size, seed + int(step.numpy()),
                          sigma, k)
        t0 = time.perf_counter()
        h = model.fit(ds, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False)
        spent += time.perf_counter() - t0
        timing.append([n, time.perf_counter() - t0])
        step.assign_add(n)
        history.append([int(step.numpy()), float(h.history["loss"][-1])])
        manager.save(checkpoint_number=int(step.numpy()))
        (folder / "losses.json").write_text(json.dumps(history))
        (folder / "timing.json").write_text(json.dumps(timing))
        if log:
            log(f"{variant}: step {int(step.numpy())}/{steps}, loss {history[-1][1]:.3f}")
    trained = int(step.numpy()) - done_before
    steady = timing[1:] if len(timing) > 1 else timing  # the first chunk includes tracing
    steady_s = sum(sec for _, sec in steady)
    info = {"losses": history, "steps_trained": trained, "seconds": spent,
            "train_seconds": sum(sec for _, sec in timing),
            "windows_per_s": (sum(n for n, _ in steady) * batch_size / steady_s
                              if steady_s > 0 else float("nan")),
            "folder": str(folder)}
    return model, info


# ---------------------------------------------------------------- whole images and metrics


def predict_tiles(model: tf.keras.Model, L: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run the network over a whole image: stride-16 windows, padded so every pixel is covered.

    The L image is padded by 8 px (reflection) plus whatever makes its sides multiples of 16;
    every 32×32 window predicts its 16×16 centre, and the centres tile the image exactly.

    Args:
        model: a classification or regression model from ``build_model``.
        L: lightness image of shape ``(H, W)`` (0–100), at least 16 px on a side.
        batch_size: windows per forward pass.

    Returns:
        The network's output per pixel, shape ``(H, W, Q)`` (probabilities) or ``(H, W, 2)``.
    """
    L = np.asarray(L, np.float32)
    if L.ndim != 2 or min(L.shape) < OUTPUT:
        raise ValueError(f"predict_ab needs a 2-D L image at least {OUTPUT} px on a side, got "
                         f"shape {L.shape}.")
    h, w = L.shape
    m = (WINDOW - OUTPUT) // 2
    ny, nx = -(-h // OUTPUT), -(-w // OUTPUT)
    pad = ((m, m + ny * OUTPUT - h), (m, m + nx * OUTPUT - w))
    padded = np.pad(L, pad, mode="reflect" if min(h, w) > m + OUTPUT else "edge")
    patches = tf.image.extract_patches(padded[None, :, :, None], [1, WINDOW, WINDOW, 1],
                                       [1, OUTPUT, OUTPUT, 1], [1, 1, 1, 1], "VALID")
    patches = tf.reshape(patches, (ny * nx, WINDOW, WINDOW, 1))
    out = np.asarray(model.predict(patches, batch_size=batch_size, verbose=0))
    c = out.shape[-1]
    out = out.reshape(ny, nx, OUTPUT, OUTPUT, c).transpose(0, 2, 1, 3, 4)
    return out.reshape(ny * OUTPUT, nx * OUTPUT, c)[:h, :w]


def predict_ab(model: tf.keras.Model, L: np.ndarray, bins: np.ndarray | None = None,
               T: float = 0.38, batch_size: int = 256) -> np.ndarray:
    """Colour a whole image: ``predict_tiles``, then the annealed mean for classifiers.

    Args:
        model: a classification or regression model from ``build_model``.
        L: lightness image of shape ``(H, W)`` (0–100), at least 16 px on a side.
        bins: bin centres (needed for classification models).
        T: temperature of the annealed mean (classification models).
        batch_size: windows per forward pass.

    Returns:
        ab image of shape ``(H, W, 2)``.
    """
    out = predict_tiles(model, L, batch_size)
    if out.shape[-1] == 2:
        return out
    if bins is None:
        raise ValueError("A classification model needs the bins to decode its output.")
    return annealed_mean(out, bins, T).numpy()


def error_auc(pred_ab: np.ndarray, true_ab: np.ndarray, max_threshold: float = 150.0,
              pixel_weights: np.ndarray | None = None) -> float:
    """Area under the curve of the fraction of pixels within each ab-error threshold.

    The thresholds run from 0 to ``max_threshold`` (paper: 150) in steps of 1; the area is
    normalised so a perfect prediction scores 1.

    Args:
        pred_ab: predicted ab, shape ``(..., 2)``.
        true_ab: true ab, same shape.
        max_threshold: the largest ab distance of the curve.
        pixel_weights: optional weights per pixel (shape ``(...)``), e.g. for the
            class-rebalanced variant.

    Returns:
        The normalised area, in [0, 1].
    """
    pred_ab, true_ab = np.asarray(pred_ab, np.float64), np.asarray(true_ab, np.float64)
    if pred_ab.shape != true_ab.shape or pred_ab.shape[-1] != 2:
        raise ValueError(f"Predicted and true ab must have the same shape (..., 2), got "
                         f"{pred_ab.shape} and {true_ab.shape}.")
    err = np.sqrt(np.sum((pred_ab - true_ab) ** 2, axis=-1)).ravel()
    w = np.ones_like(err) if pixel_weights is None else np.asarray(pixel_weights, float).ravel()
    thresholds = np.arange(0.0, max_threshold + 1.0)
    curve = np.array([np.sum(w * (err <= t)) for t in thresholds]) / np.sum(w)
    return float(np.trapezoid(curve, thresholds) / max_threshold)


def class_balanced_pixel_weights(true_ab: np.ndarray, bins: np.ndarray,
                                 prior: np.ndarray) -> np.ndarray:
    """Weights ``1/p̃(bin)`` per pixel, so every colour bin counts equally in a metric."""
    prior = _check_prior(prior)
    true_ab = np.asarray(true_ab, np.float32)
    idx = _nearest_bin_np(true_ab, bins).reshape(true_ab.shape[:-1])
    return 1.0 / np.maximum(prior[idx], 1e-12)


def mean_chroma(ab: np.ndarray) -> float:
    """Mean chroma ``sqrt(a² + b²)`` over pixels (colourfulness; 0 for grey)."""
    ab = np.asarray(ab, np.float64)
    if ab.shape[-1] != 2:
        raise ValueError(f"mean_chroma needs ab values of shape (..., 2), got {ab.shape}.")
    return float(np.mean(np.sqrt(np.sum(ab**2, axis=-1))))


def colorize(model: tf.keras.Model, rgb: np.ndarray, bins: np.ndarray | None = None,
             T: float = 0.38) -> np.ndarray:
    """Colour a photograph from its lightness alone: keep its L, predict its ab.

    Args:
        model: a classification or regression model from ``build_model``.
        rgb: float RGB image ``(H, W, 3)`` in [0, 1] (only its L channel is used).
        bins: bin centres (needed for classification models).
        T: temperature of the annealed mean (classification models).

    Returns:
        The coloured float RGB image, same shape.
    """
    rgb = np.asarray(rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"colorize needs an RGB image of shape (H, W, 3), got {rgb.shape}.")
    L = rgb_to_lab(rgb).numpy()[..., 0]
    ab = predict_ab(model, L, bins, T)
    return lab_to_rgb(np.concatenate([L[..., None], ab], axis=-1)).numpy()
