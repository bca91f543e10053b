"""Procedural scenes whose colours are drawn from stated distributions, to test the paper's claims.

A scene is a blue sky whose lightness rises towards the horizon, textured green grass below it,
and ``N_OBJECTS`` flat objects (a disc, a square or a triangle) whose colour depends on the
shape by the rules below. Lightness carries only the layout, the texture and the shapes: the
two colours a shape can take always share one L, so no network can read the colour from L.
What the best possible prediction is follows from the rules, so each claim of Zhang, Isola &
Efros (2016) has a known answer here:

- **Regression desaturates.** A disc is red or green, equally often, at the same L. The
  prediction that minimises the squared error is their mean, ``DISC_MEAN_AB``, of chroma
  10, against 46 for either colour. A classifier can keep both modes (about half its
  probability near each, ``mass_near``); note that the annealed mean of exactly equal modes is
  their mean too, so only a classifier that leans to one colour per pixel paints it vividly.
- **Rebalancing brings out rare colours.** A triangle (a tree) has the grass's ab, the
  scenes' commonest colour, except in ``P_TRIANGLE_YELLOW`` = 5 % of triangles, where it is
  yellow at the same L. Unweighted, the best classifier paints every tree green; weighting
  each pixel by ``helpers.color.rebalance_weights`` (λ = 0.5, over ``helpers.color``'s gamut
  bins) gives yellow more weight than green on triangles (the ratio is
  ``P_TRIANGLE_YELLOW · w_yellow / ((1 − P_TRIANGLE_YELLOW) · w_green)``), so the best
  rebalanced classifier paints the trees yellow, right on the rare ones, wrong on the rest.
- **The temperature** of the annealed mean moves a prediction from the mean of its
  distribution (T = 1) to its mode (T → 0).
- **A control.** A square is always violet: every method should get it right.

``make_scenes`` draws the scenes and ``stated_ab`` gives their true ab; ``claim_masks`` picks
the pixels each claim is measured on; ``two_coloured_chroma``, ``hue_share``, ``mass_near``,
``temperature_chroma`` and ``measure_claims`` measure the claims from a model's predictions
(after ``refresh_batch_norm``, for a network trained for only a minute). The colour science
(Lab, bins, annealed mean) is ``helpers.color``'s.
"""

from __future__ import annotations

import functools

import numpy as np

from helpers import color

N_OBJECTS = 3
"""Objects per scene, drawn independently and painted in order (later ones occlude earlier)."""

SHAPES = ("disc", "square", "triangle")
"""The object shapes, in the order of their codes in ``object_shape`` (0, 1, 2)."""

P_SHAPE = (0.4, 0.3, 0.3)
"""Probability that an object is a disc, a square, a triangle."""

REGIONS = ("sky", "grass", *SHAPES)
"""The codes of the ``region`` map: 0 sky, 1 grass, 2 disc, 3 square, 4 triangle."""

COLOURS = ("sky", "grass", "red", "green", "violet", "tree_green", "yellow")
"""The codes of the ``colour`` map and of ``object_colour``: 0 sky, 1 grass, 2 red, 3 green,
4 violet, 5 tree_green, 6 yellow."""

SKY_AB = (-5.0, -30.0)
"""The sky's a and b, the same at every height."""

SKY_L = (60.0, 80.0)
"""The sky's L at the top row and at the horizon, linear in between."""

HORIZON = (0.35, 0.6)
"""The horizon's row, as a share of the scene's height, uniform in this range."""

GRASS_AB = (-35.0, 40.0)
"""The grass's a and b, the same everywhere."""

GRASS_L = 48.0
"""The grass's mean L; its texture adds up to ``GRASS_TEXTURE`` either way."""

GRASS_TEXTURE = 10.0
"""Half the range of the grass's L: ``L = GRASS_L + GRASS_TEXTURE · (u_col + u_pix) / 2`` with
``u_col`` uniform in [-1, 1] per column (blades) and ``u_pix`` per pixel."""

RED = (65.0, 45.0, 10.0)
"""Lab of a red disc (probability ``P_DISC_RED``): chroma 46, hue 13° (a pinkish red)."""

GREEN = (65.0, -45.0, 10.0)
"""Lab of a green disc (probability ``1 − P_DISC_RED``): red's L and b, its a negated (hue
167°, a teal green; 90 ab units from red; both are in the sRGB gamut)."""

P_DISC_RED = 0.5
"""Probability that a disc is red rather than green."""

DISC_MEAN_AB = (0.0, 10.0)
"""The mean ab of the discs: what regression's squared error is minimised by."""

VIOLET = (40.0, 30.0, -45.0)
"""Lab of every square (the control: one shape, one colour)."""

TREE_GREEN = (85.0, *GRASS_AB)
"""Lab of a common triangle: the grass's ab (the commonest colour), at a lightness of its own."""

YELLOW = (85.0, 0.0, 80.0)
"""Lab of a rare triangle (probability ``P_TRIANGLE_YELLOW``): tree green's L."""

P_TRIANGLE_YELLOW = 0.05
"""Probability that a triangle is yellow rather than tree green."""

RADIUS = (0.09, 0.15)
"""Object radius as a share of the scene's side, uniform in this range. A disc has this radius,
a square a half-side of ``0.8 ×`` it, a triangle (apex up) a height and a base of twice it."""

L_STEP = 0.05
"""The sky's and the grass's L are rounded to multiples of this (their sRGB comes from a
palette computed once)."""

HUE_TOLERANCE = 20.0
"""Degrees of hue within which a predicted colour counts as the target's (``hue_share``)."""

MIN_CHROMA = 15.0
"""A predicted colour needs at least this chroma for its hue to count (``hue_share``)."""

_OBJECT_LAB = {"red": RED, "green": GREEN, "violet": VIOLET, "tree_green": TREE_GREEN,
               "yellow": YELLOW}
_CHUNK = 512  # scenes painted at once


def colour_lab(name: str) -> np.ndarray:
    """The stated Lab ``(3,)`` of an object colour (``red``, ``green``, ``violet``,
    ``tree_green`` or ``yellow``)."""
    if name not in _OBJECT_LAB:
        raise ValueError(f"Unknown object colour {name!r}; choose one of "
                         f"{', '.join(_OBJECT_LAB)} (sky and grass have no single L).")
    return np.asarray(_OBJECT_LAB[name], np.float32)


def stated_ab(labels: dict[str, np.ndarray]) -> np.ndarray:
    """The stated a and b of every pixel, from its colour code (the truth, without Lab).

    Args:
        labels: from ``make_scenes`` (only ``colour`` is used).

    Returns:
        float32 ``(n, size, size, 2)``.
    """
    table = np.zeros((len(COLOURS), 2), np.float32)
    table[COLOURS.index("sky")], table[COLOURS.index("grass")] = SKY_AB, GRASS_AB
    for name, value in _OBJECT_LAB.items():
        table[COLOURS.index(name)] = value[1:]
    return table[np.asarray(labels["colour"])]


def _object_masks(shape: np.ndarray, cy: np.ndarray, cx: np.ndarray, r: np.ndarray,
                  size: int) -> np.ndarray:
    """Boolean masks ``(n, size, size)`` of one object per scene (pixel centres inside it)."""
    y = np.arange(size, dtype=np.float32)[None, :, None] + 0.5
    x = np.arange(size, dtype=np.float32)[None, None, :] + 0.5
    dy, dx = y - cy[:, None, None], x - cx[:, None, None]
    r = r[:, None, None]
    disc = dy * dy + dx * dx <= r * r
    square = (np.abs(dy) <= 0.8 * r) & (np.abs(dx) <= 0.8 * r)
    triangle = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    s = shape[:, None, None]
    return np.where(s == 0, disc, np.where(s == 1, square, triangle))


def _draw_objects(rng: np.random.Generator, n: int, size: int) -> dict[str, np.ndarray]:
    """Shapes, colours, centres and radii of ``N_OBJECTS`` objects in each of ``n`` scenes."""
    shape = rng.choice(len(SHAPES), size=(n, N_OBJECTS), p=P_SHAPE).astype(np.int8)
    u = rng.random((n, N_OBJECTS))
    red, yellow = COLOURS.index("red"), COLOURS.index("yellow")
    disc_colour = np.where(u < P_DISC_RED, red, COLOURS.index("green"))
    tree_colour = np.where(u < P_TRIANGLE_YELLOW, yellow, COLOURS.index("tree_green"))
    colour = np.select([shape == 0, shape == 1], [disc_colour, COLOURS.index("violet")],
                       tree_colour).astype(np.int8)
    radius = (size * rng.uniform(*RADIUS, (n, N_OBJECTS))).astype(np.float32)
    centre = radius[..., None] + rng.random((n, N_OBJECTS, 2)) * (size - 2 * radius[..., None])
    return {"object_shape": shape, "object_colour": colour,
            "object_centre": centre.astype(np.float32), "object_radius": radius}


def make_scenes(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``n`` scenes by the module's stated rules, deterministically for a given seed.

    Args:
        n: number of scenes.
        size: side of each scene in pixels (at least 16).
        seed: random seed; the same ``(n, size, seed)`` gives the same scenes.

    Returns:
        ``(rgb, labels)``: float32 sRGB ``(n, size, size, 3)`` in [0, 1], and a dict of
        ``region`` (int8 ``(n, size, size)``, codes of ``REGIONS``), ``colour`` (int8, codes of
        ``COLOURS``), ``object`` (int8, the index of the object seen at each pixel, −1 for sky
        and grass), ``horizon`` (int ``(n,)``, first grass row), and per object
        ``object_shape`` and ``object_colour`` (int8 ``(n, N_OBJECTS)``), ``object_centre``
        (``(n, N_OBJECTS, 2)``, row and column) and ``object_radius`` (pixels).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"Ask for at least one scene, got n={n}.")
    if int(size) != size or size < 16:
        raise ValueError(f"Scenes need at least 16 px a side for their objects, got size={size}.")
    n, size = int(n), int(size)
    rng = np.random.default_rng(seed)
    horizon = np.round(size * rng.uniform(*HORIZON, n)).astype(np.int64)
    labels = {"horizon": horizon, **_draw_objects(rng, n, size)}
    palette = _palette()
    rgb = np.empty((n, size, size, 3), np.float32)
    region = np.empty((n, size, size), np.int8)
    colour = np.empty((n, size, size), np.int8)
    obj = np.empty((n, size, size), np.int8)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(n, start + _CHUNK))
        index, region[part], colour[part], obj[part] = _paint(rng, labels, part, size)
        np.take(palette, index, axis=0, out=rgb[part])
    labels.update(region=region, colour=colour, object=obj)
    return rgb, labels


_N_L = int(round(100 / L_STEP)) + 1  # lightness levels of the sky's and the grass's palettes


@functools.cache
def _palette() -> np.ndarray:
    """sRGB ``(2·_N_L + len(COLOURS), 3)`` of every colour a scene can hold: the sky's ab and
    the grass's at each L level, then the object colours by their codes."""
    L = np.arange(_N_L, dtype=np.float32) * L_STEP
    lab = np.zeros((2 * _N_L + len(COLOURS), 3), np.float32)
    lab[:_N_L, 0], lab[:_N_L, 1:] = L, SKY_AB
    lab[_N_L:2 * _N_L, 0], lab[_N_L:2 * _N_L, 1:] = L, GRASS_AB
    for name, value in _OBJECT_LAB.items():
        lab[2 * _N_L + COLOURS.index(name)] = value
    return color.lab_to_rgb(lab).numpy()


def _paint(rng: np.random.Generator, labels: dict, part: slice,
           size: int) -> tuple[np.ndarray, ...]:
    """Palette index, region, colour and object maps of the scenes ``part``."""
    horizon = labels["horizon"][part]
    m = len(horizon)
    row = np.arange(size, dtype=np.float32)[None, :, None]
    sky = np.broadcast_to(row < horizon[:, None, None], (m, size, size))
    sky_L = SKY_L[0] + (SKY_L[1] - SKY_L[0]) * row / np.maximum(horizon, 1)[:, None, None]
    texture = (rng.uniform(-1, 1, (m, 1, size)) + rng.uniform(-1, 1, (m, size, size))) / 2
    grass_L = GRASS_L + GRASS_TEXTURE * texture
    index = np.where(sky, np.rint(sky_L / L_STEP), _N_L + np.rint(grass_L / L_STEP))
    index = index.astype(np.int16)
    region = np.where(sky, REGIONS.index("sky"), REGIONS.index("grass")).astype(np.int8)
    colour = np.where(sky, COLOURS.index("sky"), COLOURS.index("grass")).astype(np.int8)
    obj = np.full((m, size, size), -1, np.int8)
    for k in range(N_OBJECTS):
        shape = labels["object_shape"][part, k]
        cy, cx = labels["object_centre"][part, k].T
        inside = _object_masks(shape, cy, cx, labels["object_radius"][part, k], size)
        code = labels["object_colour"][part, k][:, None, None]
        np.copyto(index, (2 * _N_L + code.astype(np.int16)), where=inside)
        np.copyto(region, (shape[:, None, None] + 2).astype(np.int8), where=inside)
        np.copyto(colour, code, where=inside)
        np.copyto(obj, np.int8(k), where=inside)
    return index, region, colour, obj


# ---------------------------------------------------------------- where the claims are measured


def object_core(labels: dict[str, np.ndarray], margin: int = 1) -> np.ndarray:
    """Object pixels at least ``margin`` pixels (in rows and columns) inside what is seen of
    their object: the ``(2·margin + 1)``² square around them shows the same object.

    Args:
        labels: from ``make_scenes``.
        margin: pixels of border left out (0 keeps every object pixel).

    Returns:
        Boolean array ``(n, size, size)``.
    """
    if margin < 0:
        raise ValueError(f"margin counts pixels and cannot be negative, got {margin}.")
    obj = np.asarray(labels["object"])
    core = obj >= 0
    if margin == 0:
        return core
    side = obj.shape[-1]
    padded = np.pad(obj, ((0, 0), (margin, margin), (margin, margin)), constant_values=-1)
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            core &= padded[:, dy:dy + side, dx:dx + side] == obj
    return core


def claim_masks(labels: dict[str, np.ndarray], margin: int = 1, factor: int = 1,
                offset: int = 0) -> dict[str, np.ndarray]:
    """The pixels each claim is measured on, optionally at a network's output grid.

    Args:
        labels: from ``make_scenes``.
        margin: border pixels of each object left out (see ``object_core``).
        factor, offset: keep rows and columns ``offset, offset + factor, ...`` (the main
            network predicts at ``factor = 4``, ``offset = 3``, ``helpers.colorizer``'s
            ``CONTEXT_DOWNSAMPLE`` and ``MAIN_TARGET_OFFSET``).

    Returns:
        Boolean masks ``(n, h, w)``: ``two_coloured`` (discs), ``red`` and ``green`` (discs of
        each colour), ``fixed`` (squares), ``rare`` (yellow triangles) and ``rare_common``
        (tree-green triangles).
    """
    if factor < 1 or not 0 <= offset < factor:
        raise ValueError(f"Need factor >= 1 and 0 <= offset < factor, got factor={factor}, "
                         f"offset={offset}.")
    core = object_core(labels, margin)
    region, colour = np.asarray(labels["region"]), np.asarray(labels["colour"])
    disc = core & (region == REGIONS.index("disc"))
    triangle = core & (region == REGIONS.index("triangle"))
    masks = {"two_coloured": disc,
             "red": disc & (colour == COLOURS.index("red")),
             "green": disc & (colour == COLOURS.index("green")),
             "fixed": core & (region == REGIONS.index("square")),
             "rare": triangle & (colour == COLOURS.index("yellow")),
             "rare_common": triangle & (colour == COLOURS.index("tree_green"))}
    return {k: v[:, offset::factor, offset::factor] for k, v in masks.items()}


# ---------------------------------------------------------------- measuring the claims


def _masked(x: np.ndarray, mask: np.ndarray, what: str) -> np.ndarray:
    """The rows of ``x`` (``(..., C)``) where ``mask`` (``(...)``) is true; at least one."""
    x, mask = np.asarray(x), np.asarray(mask, bool)
    if x.shape[:-1] != mask.shape:
        raise ValueError(f"{what} of shape {x.shape} does not match the mask {mask.shape}; "
                         "predict on the same grid as the masks (see claim_masks' factor).")
    if not mask.any():
        raise ValueError(f"The mask selects no pixels for {what}; draw more scenes or lower "
                         "the margin.")
    return x[mask].astype(np.float32)  # float16 predictions are decoded in float32


def two_coloured_chroma(pred_ab: np.ndarray, mask: np.ndarray) -> float:
    """Mean chroma of the predicted ab over the masked pixels (``helpers.color.mean_chroma``).

    Args:
        pred_ab: predicted ab ``(..., 2)``.
        mask: boolean ``(...)``, e.g. ``claim_masks(...)["two_coloured"]``.

    Returns:
        The mean chroma: about 46 for the true disc colours, 10 for their mean.
    """
    return color.mean_chroma(_masked(pred_ab, mask, "pred_ab"))


def hue_share(pred_ab: np.ndarray, mask: np.ndarray, target_ab: tuple[float, float] | np.ndarray,
              max_angle: float = HUE_TOLERANCE, min_chroma: float = MIN_CHROMA) -> float:
    """Share of the masked pixels predicted in the target's hue: within ``max_angle`` degrees
    of it, with a chroma of at least ``min_chroma`` (grey has no hue).

    Args:
        pred_ab: predicted ab ``(..., 2)``.
        mask: boolean ``(...)``.
        target_ab: the colour's a and b, e.g. ``colour_lab("yellow")[1:]``.
        max_angle: tolerance in degrees, in (0, 180].
        min_chroma: chroma below which a prediction counts as a miss.

    Returns:
        A share in [0, 1].
    """
    if not 0 < max_angle <= 180:
        raise ValueError(f"max_angle is a hue difference in degrees, in (0, 180]; got "
                         f"{max_angle}.")
    a, b = np.asarray(target_ab, np.float64)
    if np.hypot(a, b) < 1e-6:
        raise ValueError("The target is grey and has no hue; measure its chroma instead.")
    ab = _masked(pred_ab, mask, "pred_ab").astype(np.float64)
    diff = np.degrees(np.arctan2(ab[:, 1], ab[:, 0]) - np.arctan2(b, a))
    diff = (diff + 180.0) % 360.0 - 180.0
    hit = (np.abs(diff) <= max_angle) & (np.hypot(ab[:, 0], ab[:, 1]) >= min_chroma)
    return float(hit.mean())


def mass_near(probs: np.ndarray, bins: np.ndarray, mask: np.ndarray,
              target_ab: tuple[float, float] | np.ndarray, radius: float = 15.0) -> float:
    """Mean predicted probability of the bins within ``radius`` of a colour, over the masked
    pixels: how much of a classifier's belief a colour holds (about 0.5 for red on discs).

    Args:
        probs: predicted distributions ``(..., Q)``.
        bins: bin centres ``(Q, 2)``.
        mask: boolean ``(...)``.
        target_ab: the colour's a and b.
        radius: ab distance from the colour of the bins counted.

    Returns:
        A probability in [0, 1].
    """
    bins = np.asarray(bins, np.float64)
    if bins.ndim != 2 or bins.shape[1] != 2:
        raise ValueError(f"bins must have shape (Q, 2), got {bins.shape}.")
    p = _masked(probs, mask, "probs")
    if p.shape[-1] != len(bins):
        raise ValueError(f"probs has {p.shape[-1]} classes but there are {len(bins)} bins.")
    near = np.hypot(*(bins - np.asarray(target_ab, np.float64)).T) <= radius
    if not near.any():
        raise ValueError(f"No bin lies within {radius} of {tuple(target_ab)}; widen radius.")
    return float(p[:, near].sum(-1).mean())


def temperature_chroma(probs: np.ndarray, bins: np.ndarray, mask: np.ndarray,
                       temperatures: tuple[float, ...] = (1.0, color.T_ANNEALED, 0.01)
                       ) -> dict[float, float]:
    """Mean chroma of the annealed mean (``helpers.color.annealed_mean``) at each temperature.

    Args:
        probs: predicted distributions ``(..., Q)``.
        bins: bin centres ``(Q, 2)``.
        mask: boolean ``(...)``, e.g. the discs.
        temperatures: the temperatures T (> 0): 1 is the mean, towards 0 the mode.

    Returns:
        ``{T: mean chroma}``.
    """
    p = _masked(probs, mask, "probs")
    return {float(t): color.mean_chroma(color.annealed_mean(p, bins, t).numpy())
            for t in temperatures}


def measure_claims(pred: np.ndarray, masks: dict[str, np.ndarray], bins: np.ndarray | None = None,
                   T: float = color.T_ANNEALED) -> dict[str, float]:
    """Every claim's number from one model's predictions on the grid of ``masks``.

    Args:
        pred: predicted ab ``(..., 2)`` (regression) or distributions ``(..., Q)``
            (classification, decoded with the annealed mean at ``T``).
        masks: from ``claim_masks``, on the predictions' grid.
        bins: bin centres ``(Q, 2)``; needed for distributions.
        T: temperature of the annealed mean.

    Returns:
        ``disc_chroma`` (truth 46, the mean of red and green 10), ``fixed_error`` (mean ab
        distance from violet on squares), ``rare_share`` (yellow triangles predicted yellow),
        ``common_share`` (green triangles predicted green); for distributions also
        ``chroma_T1``, ``chroma_T0.38``, ``chroma_T0.01`` on the discs and ``red_mass`` and
        ``green_mass`` (probability near each disc colour on the discs).
    """
    pred = np.asarray(pred)  # float16 stays float16: only masked pixels are converted
    probs = None
    if pred.shape[-1] != 2:
        if bins is None:
            raise ValueError("Distributions over bins need the bins to be decoded (bins=...).")
        probs = pred
        anywhere = np.zeros(pred.shape[:-1], bool)
        for m in masks.values():
            anywhere |= m
        ab = np.zeros((*pred.shape[:-1], 2), np.float32)
        ab[anywhere] = color.annealed_mean(pred[anywhere].astype(np.float32), bins, T).numpy()
    else:
        ab = pred.astype(np.float32)
    out = {"disc_chroma": two_coloured_chroma(ab, masks["two_coloured"]),
           "fixed_error": float(np.mean(np.hypot(
               *(_masked(ab, masks["fixed"], "pred_ab") - colour_lab("violet")[1:]).T))),
           "rare_share": hue_share(ab, masks["rare"], colour_lab("yellow")[1:]),
           "common_share": hue_share(ab, masks["rare_common"], colour_lab("tree_green")[1:])}
    if probs is not None:
        for t, c in temperature_chroma(probs, bins, masks["two_coloured"]).items():
            out[f"chroma_T{t:g}"] = c
        out["red_mass"] = mass_near(probs, bins, masks["two_coloured"], colour_lab("red")[1:])
        out["green_mass"] = mass_near(probs, bins, masks["two_coloured"],
                                      colour_lab("green")[1:])
    return out


def refresh_batch_norm(model, L: np.ndarray) -> int:
    """Set the moving statistics of every batch normalisation layer to those of one batch.

    A minute of training is a few hundred steps; with Keras' momentum of 0.99 the moving
    averages still remember the first steps' statistics and the initial ones, and a network
    that trains well can predict badly in inference mode (on these scenes, a square's colour
    off by about 50 ab units instead of a few). One forward pass in training mode with the
    momentum set to 0 replaces them by the statistics of ``L``; the weights are not changed.

    Args:
        model: a Keras model (e.g. ``helpers.colorizer.build_model``'s ``"main"`` network).
        L: a batch of its input, e.g. the L of a few hundred training scenes ``(B, H, W, 1)``.

    Returns:
        The number of batch normalisation layers refreshed.
    """
    import keras

    layers = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    saved = [lay.momentum for lay in layers]
    try:
        for lay in layers:
            lay.momentum = 0.0
        model(np.asarray(L, np.float32), training=True)
    finally:
        for lay, momentum in zip(layers, saved):
            lay.momentum = momentum
    return len(layers)


def scene_batches(batch: int, steps: int, size: int = 64, seed: int = 0):
    """A ``tf.data`` stream of ``steps`` batches of new scenes, painted as training asks.

    Batch ``i`` is ``make_scenes(batch, size, seed=[seed, i])``'s RGB: every scene is new
    (the world's data are unlimited) and none is held in memory beyond its batch.

    Args:
        batch: scenes per batch.
        steps: number of batches.
        size: side of each scene in pixels.
        seed: the stream's seed.

    Returns:
        A ``tf.data.Dataset`` of float32 batches ``(batch, size, size, 3)``.
    """
    import tensorflow as tf

    if batch < 1 or steps < 1:
        raise ValueError(f"batch and steps must be positive, got {batch} and {steps}.")

    def paint(i):
        out = tf.numpy_function(lambda k: make_scenes(batch, size, seed=[seed, int(k)])[0],
                                [i], tf.float32, stateful=False)
        return tf.ensure_shape(out, (batch, size, size, 3))

    return tf.data.Dataset.range(steps).map(paint, num_parallel_calls=2, deterministic=True)


def train_network(variant: str, bins: np.ndarray, *, steps: int, weights: np.ndarray | None = None,
                  batch: int = 32, lr: float = 3e-3, seed: int = 1000, every: int = 25,
                  refresh: int = 128) -> tuple:
    """Train the book's main colorizer on a stream of new scenes; the world's live run.

    ``helpers.colorizer``'s own loop (``make_trainer``, ``make_targets``, ``train_loop``) on
    ``scene_batches``, then ``refresh_batch_norm`` on ``refresh`` further new scenes.

    Args:
        variant: ``"regression"``, ``"classification"`` or ``"rebalanced"``.
        bins: the ab bins ``(Q, 2)``.
        steps: training steps.
        weights: rebalancing weights ``(Q,)`` (used by ``"rebalanced"`` only; required there).
        batch: scenes per step.
        lr: Adam's learning rate.
        seed: the scene stream's seed (and the network's initialisation seed).
        every: steps between the recorded training losses.
        refresh: new scenes whose statistics replace batch normalisation's moving ones.

    Returns:
        ``(model, losses)``: the trained Keras model and ``[step, mean loss]`` per ``every``
        steps.
    """
    import tempfile

    import tensorflow as tf

    from helpers import colorizer

    if variant == "rebalanced" and weights is None:
        raise ValueError("The rebalanced variant needs the rebalancing weights (weights=...).")
    kind = "regression" if variant == "regression" else "classification"
    use_w = weights if variant == "rebalanced" else None
    trainer = colorizer.make_trainer(len(bins), variant, lr=lr, architecture="main", seed=seed)
    data = scene_batches(batch, steps, seed=seed).map(
        tf.autograph.experimental.do_not_convert(lambda w: colorizer.make_targets(
            w, bins, use_w, kind, architecture="main"))).prefetch(2)
    losses = []
    with tempfile.TemporaryDirectory(prefix="scenes-") as folder:
        manager = tf.train.CheckpointManager(trainer.checkpoint, folder, max_to_keep=1)
        colorizer.train_loop(trainer, data, until=steps, every=min(every, steps),
                             manager=manager,
                             on_chunk=lambda now, n, loss, s: losses.append([now, loss]))
    fresh, _ = make_scenes(refresh, seed=[seed, steps])  # batch `steps`: never trained on
    refresh_batch_norm(trainer.model, color.rgb_to_lab(fresh).numpy()[..., :1])
    return trainer.model, losses


def predict(model, L: np.ndarray, chunk: int = 100) -> np.ndarray:
    """The model's outputs for scenes' lightness ``L`` ``(N, H, W, 1)``, in chunks, as float16.

    Float16 keeps a classifier's probabilities for hundreds of scenes small (they are read
    back as float32 for decoding, to about three significant digits).
    """
    return np.concatenate([model(L[i:i + chunk], training=False).numpy().astype(np.float16)
                           for i in range(0, len(L), chunk)])
