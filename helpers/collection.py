"""A photo collection read lazily: one streaming pass for the prior, crops drawn with tf.data.

``scan`` walks a folder once, photo by photo, and keeps only a histogram of ab grid cells:
from it come the bins the photos use, the smoothed empirical prior and the rebalancing
weights (``helpers.color``'s definitions), so a folder of 100,000 photos never has to fit in
memory. Unreadable and non-image files are skipped and counted in one warning; grey-scale
photos carry no colour and are left out of training. ``windows_dataset`` draws training
windows from the file names with ``tf.data`` in an order fixed by the seed, so a resumed run
continues the same sequence and every input pipeline (worker) reads only its own photos.
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers import color

GREY_CHROMA = 2.0
"""A photo in which nine pixels in ten have a chroma (ab units) below this is treated as
grey-scale (so that a coloured object cut out on a grey background, a tenth of the picture or
more, still counts as colour)."""

MAX_HELD_OUT = 4
"""At most this many photos are held out of training (scored and shown in TensorBoard)."""

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F", "La"}
_N_CELLS = int(2 * color.AB_RANGE) + 1  # enough grid cells for any step >= 1


@dataclass
class Collection:
    """What the streaming pass learnt about a folder of photos."""

    folder: Path
    train: list[str]
    """Colour photos used for training (paths relative to ``folder``)."""
    held_out: list[str]
    """Colour photos held out of training (relative paths)."""
    grey: int
    """Grey-scale photos left out of training."""
    skipped: int
    """Files that could not be read as images."""
    step: float
    """Side of the ab bins."""
    size: int
    """Working resolution: the shorter side photos are scaled to (pixels)."""
    bins: np.ndarray
    """Centres of the bins the training photos use, ``(Q, 2)``."""
    counts: np.ndarray
    """Training pixels per bin, ``(Q,)``."""
    prior: np.ndarray
    """The smoothed empirical prior over the bins, ``(Q,)``."""
    weights: np.ndarray
    """The rebalancing weights, ``(Q,)``."""
    sigma: float
    lam: float

    working: Path | None = None
    """Folder of the photos' working-size copies (``<name>.png``), or None to read originals."""
    held_out_folder: Path | None = None
    """The separate folder the held-out photos come from, or None (held out of ``folder``)."""
    pixels: list[int] | None = None
    """Opaque pixels of each training photo at the working size (a cut-out's object only);
    ``windows_dataset`` visits photos in proportion to them. None: every photo equally."""

    def paths(self, which: str = "train") -> list[str]:
        """Paths of the training (``"train"``) or held-out (``"held_out"``) photos to read.

        The working-size copies where the scan wrote them, the originals otherwise.
        """
        if which not in {"train", "held_out"}:
            raise ValueError(f"which must be 'train' or 'held_out', got {which!r}.")
        names = self.train if which == "train" else self.held_out
        apart = which == "held_out" and self.held_out_folder is not None
        if self.working is not None:
            base = self.working / "held_out" if apart else self.working
            return [str(base / f"{n}.png") for n in names]
        return [str((self.held_out_folder if apart else self.folder) / n) for n in names]


def read_photo(path: str | Path, size: int | None = None) -> tuple[np.ndarray, bool]:
    """Read an image file as float32 RGB in [0, 1], optionally scaled to a shorter side.

    Args:
        path: an image file PIL can read; transparent pixels (cut-out objects, such as Tux
            Paint's photographed stamps) are composited on mid grey, a colourless background.
        size: shorter side of the result in pixels (never upscaled below it); None keeps the
            file's resolution.

    Returns:
        ``(rgb, grey_mode)``: the ``(H, W, 3)`` array, and whether the file is stored as a
        grey-scale image (its three channels are then equal).

    Raises:
        OSError: if the file is not an image PIL can decode.
    """
    from PIL import Image

    with Image.open(path) as im:
        grey_mode = im.mode in _GREY_MODES
        if im.mode in {"RGBA", "LA", "PA"} or "transparency" in im.info:
            rgba = im.convert("RGBA")  # a cut-out object: its background becomes mid grey
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (128, 128, 128, 255)), rgba)
        if size is not None:
            scale = size / min(im.size)
            target = (max(size, round(im.size[0] * scale)), max(size, round(im.size[1] * scale)))
            im.draft("RGB", target)  # JPEG: decode at a reduced size
            im = im.convert("RGB").resize(target, Image.Resampling.BILINEAR)
        else:
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.float32) / 255.0, grey_mode


def opaque_mask(path: str | Path, size: int | None = None) -> np.ndarray | None:
    """Where a cut-out photo is opaque, at the size ``read_photo(path, size)`` reads it.

    Args:
        path: an image file.
        size: shorter side in pixels, as for ``read_photo`` (None: the file's own size).

    Returns:
        A boolean ``(H, W)`` array, True where the alpha channel is at least one half; None
        for an image without transparency (every pixel is the photo).
    """
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in {"RGBA", "LA", "PA"} and "transparency" not in im.info:
            return None
        alpha = im.convert("RGBA").getchannel("A")
        if size is not None:
            scale = size / min(alpha.size)
            alpha = alpha.resize((max(size, round(alpha.size[0] * scale)),
                                  max(size, round(alpha.size[1] * scale))),
                                 Image.Resampling.BILINEAR)
        return np.asarray(alpha) >= 128


def _histogram(path: Path, size: int, step: float,
               copy: Path | None = None) -> tuple[np.ndarray | None, str]:
    """One photo's opaque pixel counts per ab grid cell, or None with the reason it is left out.

    A cut-out's transparent background is neither counted nor judged for colour. A colour
    photo is also written to ``copy`` (PNG, lossless, its transparency kept) at the working
    size, so that training decodes a small file rather than the original.
    """
    try:
        rgb, grey_mode = read_photo(path, size)
        opaque = opaque_mask(path, size)
    except Exception:  # PIL raises many types for broken or foreign files
        return None, "skipped"
    if grey_mode or (opaque is not None and not opaque.any()):
        return None, "grey"
    ab = color.rgb_to_lab(rgb).numpy()[..., 1:]
    ab = (ab if opaque is None else ab[opaque]).reshape(-1, 2)
    if np.percentile(np.hypot(ab[:, 0], ab[:, 1]), 90) < GREY_CHROMA:
        return None, "grey"
    cells = color.ab_to_bin_index(np.clip(ab, -color.AB_RANGE, color.AB_RANGE), step)
    centre = _N_CELLS // 2
    flat = (cells[:, 0] + centre) * _N_CELLS + cells[:, 1] + centre
    if copy is not None:
        from PIL import Image

        copy.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.round(rgb * 255).astype(np.uint8)
        if opaque is not None:  # keep the cut-out's outline for training's masks
            pixels = np.dstack([pixels, np.where(opaque, 255, 0).astype(np.uint8)])
        Image.fromarray(pixels).save(copy, compress_level=1)
    return np.bincount(flat, minlength=_N_CELLS**2), "colour"


def _smooth(counts: np.ndarray, bins: np.ndarray, sigma: float) -> np.ndarray:
    """``color.empirical_prior``'s smoothing of per-bin counts, normalised to sum 1."""
    counts = np.asarray(counts, np.float64)
    if sigma > 0:
        d2 = np.sum((bins[:, None, :] - bins[None, :, :]) ** 2, axis=-1)
        counts = np.exp(-d2 / (2 * sigma**2)) @ counts
    return counts / counts.sum()


def _held_out_names(names: list[str]) -> set[str]:
    """Every k-th photo by name, at most ``MAX_HELD_OUT`` and none when there are under 5."""
    if len(names) < 5:
        return set()
    k = max(5, len(names) // MAX_HELD_OUT)
    return set(names[k - 1::k][:MAX_HELD_OUT])


def _list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def scan(folder: str | Path, *, step: float = 10.0, size: int = 128, sigma: float = 5.0,
         lam: float = 0.5, threads: int | None = None,
         working: str | Path | None = None,
         held_out_folder: str | Path | None = None) -> Collection:
    """Walk a photo folder once and compute its bins, prior and rebalancing weights.

    Only a histogram over the ab grid is kept in memory. Files are listed recursively;
    those PIL cannot read are skipped (one warning counts them), grey-scale photos are left
    out, and a few colour photos are held out of training.

    Args:
        folder: a folder of photographs (searched recursively).
        step: side of the ab bins.
        size: working resolution (shorter side in pixels) the photos are read at.
        sigma: width of the Gaussian smoothing the prior (``color.empirical_prior``).
        lam: λ of ``color.rebalance_weights``.
        threads: photos decoded at once (default: the CPUs this process may use).
        working: optional folder for lossless working-size copies of the colour photos
            (what training then reads: a large JPEG takes far longer to decode).
        held_out_folder: optional folder whose colour photos are the held-out ones (e.g.
            whole scenes kept apart for early stopping); then every colour photo of
            ``folder`` is trained on. Default: a few photos of ``folder`` are held out.

    Returns:
        A ``Collection``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder; pass --photos a folder of photos.")
    if size < 32:
        raise ValueError(f"The working size must be at least 32 px (one window), got {size}.")
    if not 1 <= step <= color.AB_RANGE:
        raise ValueError(f"The ab bin side must be between 1 and {color.AB_RANGE:.0f}, got {step}.")
    files = _list_files(folder)
    if not files:
        raise ValueError(f"{str(folder)!r} holds no files; put your photographs in it.")
    held = _held_out_names([str(p.relative_to(folder)) for p in files])
    apart: list[Path] = []
    if held_out_folder is not None:
        held_out_folder = Path(held_out_folder)
        if not held_out_folder.is_dir():
            raise ValueError(f"{str(held_out_folder)!r} is not a folder; pass --held-out a "
                             "folder of photos kept out of training.")
        held, apart = set(), _list_files(held_out_folder)
    total = np.zeros(_N_CELLS**2, np.int64)
    train, held_out, grey, skipped, pixels = [], [], 0, [], []
    workers = threads or max(1, len(os.sched_getaffinity(0)))
    rel = [str(p.relative_to(folder)) for p in files]
    copies = [None if working is None else Path(working) / f"{n}.png" for n in rel]
    with ThreadPoolExecutor(workers) as pool:  # PIL and TensorFlow release the GIL
        for path, (hist, kind) in zip(files, pool.map(
                lambda pc: _histogram(pc[0], size, step, pc[1]), zip(files, copies))):
            name = str(path.relative_to(folder))
            if kind == "skipped":
                skipped.append(name)
            elif kind == "grey":
                grey += 1
            elif name in held:
                held_out.append(name)
            else:
                train.append(name)
                pixels.append(int(hist.sum()))
                total += hist
        copies = [None if working is None else Path(working) / "held_out" /
                  f"{p.relative_to(held_out_folder)}.png" for p in apart]
        for path, (_hist, kind) in zip(apart, pool.map(
                lambda pc: _histogram(pc[0], size, step, pc[1]), zip(apart, copies))):
            if kind == "colour":
                held_out.append(str(path.relative_to(held_out_folder)))
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} file(s) in {str(folder)!r} that are not readable "
                      f"images (e.g. {skipped[0]!r}).", stacklevel=2)
    if not train:
        raise ValueError(f"{str(folder)!r} holds no colour photographs to train on "
                         f"({len(files)} file(s): {grey} grey-scale, {len(skipped)} unreadable, "
                         f"{len(held_out)} held out).")
    used = np.flatnonzero(total)
    centre = _N_CELLS // 2
    bins = (np.stack([used // _N_CELLS - centre, used % _N_CELLS - centre], -1)
            * step).astype(np.float32)
    counts = total[used]
    prior = _smooth(counts, bins, sigma)
    return Collection(folder=folder.resolve(), train=train, held_out=held_out, grey=grey,
                      skipped=len(skipped), step=float(step), size=int(size), bins=bins,
                      counts=counts, prior=prior,
                      weights=color.rebalance_weights(prior, lam).astype(np.float32),
                      sigma=float(sigma), lam=float(lam),
                      working=None if working is None else Path(working).resolve(),
                      held_out_folder=None if not apart else held_out_folder.resolve(),
                      pixels=pixels)


def save(collection: Collection, run: str | Path) -> None:
    """Write a collection into a run folder (``collection.json`` and ``prior.npz``)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    meta = {k: getattr(collection, k) for k in
            ("train", "held_out", "grey", "skipped", "step", "size", "sigma", "lam",
             "pixels")}
    meta["folder"] = str(collection.folder)
    working = collection.working
    if working is not None and working.resolve().is_relative_to(run.resolve()):
        working = working.resolve().relative_to(run.resolve())  # the run folder may move
    meta["working"] = None if working is None else str(working)
    apart = collection.held_out_folder
    meta["held_out_folder"] = None if apart is None else str(apart)
    np.savez(run / "prior.npz", bins=collection.bins, counts=collection.counts,
             prior=collection.prior, weights=collection.weights)
    (run / "collection.json").write_text(json.dumps(meta))


def load(run: str | Path) -> Collection:
    """Read the collection a run was trained on back from its run folder.

    Args:
        run: a run folder written by ``save`` (``python -m helpers.colorizer train``).

    Returns:
        The ``Collection``.
    """
    run = Path(run)
    if not (run / "collection.json").is_file() or not (run / "prior.npz").is_file():
        raise ValueError(f"{str(run)!r} is not a run folder (no collection.json and prior.npz); "
                         "train one first with `python -m helpers.colorizer train --photos DIR "
                         f"--out {run}`.")
    meta = json.loads((run / "collection.json").read_text())
    with np.load(run / "prior.npz") as z:
        arrays = {k: z[k] for k in ("bins", "counts", "prior", "weights")}
    working = meta.pop("working", None)
    apart = meta.pop("held_out_folder", None)
    return Collection(folder=Path(meta.pop("folder")), **meta, **arrays,
                      working=None if working is None else run / working,
                      held_out_folder=None if apart is None else Path(apart))


def multiscale_crops(rgb: np.ndarray, count: int, window: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Square crops of random size from one image, scaled to ``window`` px, half mirrored.

    Each crop's side is drawn between ``window`` and the photo's shorter side, uniform in its
    logarithm (so each doubling of scale is drawn as often, from the photo's finest detail to
    its whole height), its position uniformly, and it is mirrored left to right with
    probability ½.

    Args:
        rgb: float photo ``(H, W, C)`` in [0, 1] (RGB, or RGB and opacity), at least
            ``window`` px on each side.
        count: how many crops.
        window: side of the returned crops.
        rng: the random generator that places them.

    Returns:
        float32 crops ``(count, window, window, C)``.
    """
    from PIL import Image

    h, w = rgb.shape[:2]
    if min(h, w) < window or count < 1:
        raise ValueError(f"Cannot cut {count} crop(s) of {window} px from a {h}×{w} photo; "
                         "read photos at a working size of at least the window (--size).")
    out = np.empty((count, window, window, rgb.shape[-1]), np.float32)
    for j in range(count):
        side = int(round(np.exp(rng.uniform(np.log(window), np.log(min(h, w))))))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        part = np.round(rgb[y:y + side, x:x + side] * 255).astype(np.uint8)
        if side != window:
            part = np.asarray(Image.fromarray(part).resize((window, window),
                                                           Image.Resampling.BILINEAR))
        if rng.random() < 0.5:
            part = part[:, ::-1]
        out[j] = part / np.float32(255)
    return out


def _crops(path: str, visit: int, *, size: int, window: int, crops: int,
           seed: int, augment: bool = False) -> np.ndarray:
    """``crops`` random windows of one photo, their positions fixed by (seed, visit);
    with ``augment``, ``multiscale_crops`` instead of windows at the working scale. A fourth
    channel holds the opacity (1 everywhere but a cut-out's background)."""
    try:
        rgb, _ = read_photo(path, size)
        opaque = opaque_mask(path, size)
    except Exception as err:
        raise ValueError(f"{path!r} could not be read while training ({err}); it was "
                         "readable during the scan: was the folder changed?") from None
    alpha = np.ones(rgb.shape[:2], np.float32) if opaque is None else opaque.astype(np.float32)
    rgba = np.dstack([rgb, alpha])
    rng = np.random.default_rng([seed, visit])
    if augment:
        return multiscale_crops(rgba, crops, window, rng)
    h, w = rgb.shape[:2]
    ys, xs = rng.integers(0, h - window + 1, crops), rng.integers(0, w - window + 1, crops)
    return np.stack([rgba[y:y + window, x:x + window] for y, x in zip(ys, xs)])


def crops_per_photo(batch: int, most: int = 4) -> int:
    """Windows cut from each photo read: the largest divisor of ``batch`` up to ``most``."""
    return math.gcd(batch, most)


def windows_dataset(paths: list[str], *, size: int, window: int, batch: int, seed: int = 0,
                    start: int = 0, pipeline: int = 0, pipelines: int = 1,
                    augment: bool = False, pixels: list[int] | None = None) -> tf.data.Dataset:
    """An endless ``tf.data`` stream of window batches (RGB and opacity) read from photo files.

    Visit ``v`` of the collection reads photo ``perm_p[v mod n]`` (``perm_p`` a seeded
    permutation for pass ``p = v // n``; with ``pixels``, ``n`` seeded draws with replacement,
    each photo drawn in proportion to its opaque pixels, so that every pixel of the collection
    is as likely to be trained on) and cuts ``crops_per_photo(batch)`` windows from it.
    Pipeline ``i`` of ``m`` takes visits ``i, i + m, i + 2m, ...``, so workers read disjoint
    photos of each pass. ``start`` skips the batches a resumed run has already trained on.

    Args:
        paths: photo files.
        size: working resolution (shorter side, pixels).
        window: side of the windows.
        batch: windows per batch (per replica).
        seed: the run's seed.
        start: batches this pipeline has already delivered (a resumed run's position).
        pipeline: this input pipeline's index (``tf.distribute.InputContext.input_pipeline_id``).
        pipelines: number of input pipelines.
        augment: cut ``multiscale_crops`` (random scale, mirrored half the time) instead of
            windows at the working scale.
        pixels: opaque pixels per photo (``Collection.pixels``), or None to visit each photo
            once per pass.

    Returns:
        A dataset of float32 batches ``(batch, window, window, 4)``: RGB, then the opacity.
    """
    if not paths:
        raise ValueError("windows_dataset needs at least one photo.")
    if window > size:
        raise ValueError(f"The {window}-px windows do not fit photos read at {size} px; "
                         "raise --size.")
    if not 0 <= pipeline < pipelines:
        raise ValueError(f"pipeline must be in 0..{pipelines - 1}, got {pipeline}.")
    crops = crops_per_photo(batch)
    n = len(paths)
    if pixels is not None:
        if len(pixels) != n or min(pixels) < 0 or sum(pixels) <= 0:
            raise ValueError(f"pixels needs one non-negative count per photo ({n}), not all "
                             f"zero; got {len(pixels)} count(s).")
        share = np.asarray(pixels, np.float64) / np.sum(pixels)

    @functools.lru_cache(maxsize=2)
    def permutation(p: int) -> np.ndarray:
        rng = np.random.default_rng([seed, p])
        return rng.permutation(n) if pixels is None else rng.choice(n, n, p=share)

    def read(k: np.int64) -> np.ndarray:
        v = int(k) * pipelines + pipeline  # the visit's index in the whole run
        path = paths[permutation(v // n)[v % n]]
        return _crops(path, v, size=size, window=window, crops=crops, seed=seed,
                      augment=augment)

    def load(k):
        out = tf.numpy_function(read, [k], tf.float32, stateful=False)
        return tf.ensure_shape(out, (crops, window, window, 4))

    ds = tf.data.Dataset.range(start * batch // crops, np.iinfo(np.int64).max)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.unbatch().batch(batch, drop_remainder=True)
