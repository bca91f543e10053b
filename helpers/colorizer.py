"""The colorization networks and everything around them: windows, data, training, tiling.

``build_model`` makes the post's network (eight unpadded 3×3 convolutions, a 32×32 window of
L to the 16×16 colours of its centre) or a context network of about as many weights whose
receptive field spans a whole working image (a strided encoder, dilated convolutions, output
at a quarter of the resolution, as in the paper). ``random_windows`` cuts training crops,
``make_dataset`` turns a run's share of them into ``(L, target, pixel weight)`` batches,
``make_trainer`` and ``train_loop`` are the one training loop (under any ``tf.distribute``
strategy, in float32 or mixed precision), which ``python -m helpers.colorizer train`` runs on
windows streamed from a photo folder (the one training command and run record) and
``helpers.scenes.train_network`` on generated scenes, and ``predict_tiles``, ``predict_ab`` and
``colorize`` colour whole photographs. The algorithm itself is in ``helpers.color``.
"""

from __future__ import annotations

if __name__ == "__main__":  # python -m helpers.colorizer: the command (helpers/colorizer_cli.py),
    from helpers.colorizer_cli import main  # which imports this module once, as helpers.colorizer

    raise SystemExit(main())

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers import color

WINDOW = 32
"""Side of the L window the post's network sees (pixels)."""

OUTPUT = 16
"""Side of the ab distribution the post's network predicts for the window's centre (pixels)."""

MARGIN = (WINDOW - OUTPUT) // 2
"""Pixels between a window's edge and the centre it colours: 8, one per unpadded convolution."""

CONTEXT_WINDOW = 96
"""Side of the training crops of the context network (pixels; a multiple of ``CONTEXT_STRIDE``)."""

CONTEXT_DOWNSAMPLE = 4
"""The context network predicts ab at a quarter of the input resolution, as the paper does."""

CONTEXT_STRIDE = 8
"""The context network's input sides must be multiples of this (three stride-2 convolutions)."""

VARIANTS = ("regression", "classification", "rebalanced")
"""The three training variants the paper compares."""

ARCHITECTURES = ("post", "context", "local", "main")
"""The networks: the post's eight convolutions, the context network, and its local control
(the context network's stride, padding, output resolution and targets, with a receptive field
about the post's), and the main colorizer (the paper's design at a CPU's scale: blocks of
convolutions each closed by batch normalisation, scaled input, point-subsampled targets)."""

MAIN_WIDTHS = (16, 32, 64, 128, 64)
"""Widths of the main colorizer's five blocks (the paper's are 64, 128, 256, 512, ..., 256)."""

MAIN_TARGET_OFFSET = 3
"""Row and column, within each 4×4 block, of the pixel whose ab is the main colorizer's target
(the paper's code point-subsamples too, with a 1×1 stride-4 convolution). Probed by gradients,
the receptive field of output ``i`` is centred on input ``4i + 3`` or ``4i + 7`` (alternating);
3 is the in-block pixel nearest to those centres."""

MAIN_WINDOW = 128
"""Side of the main colorizer's training crops (pixels, a multiple of ``CONTEXT_STRIDE``)."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""Training precisions: float32, or mixed with bfloat16 (CPUs that have it) or float16 (GPUs)."""


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


def cpu_bf16_flags() -> list[str]:
    """The CPU's bfloat16 instruction sets (``avx512_bf16``, ``amx_bf16``) listed by Linux.

    Returns:
        The flags found in ``/proc/cpuinfo`` (empty where there are none, or no such file).
    """
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(words & {"avx512_bf16", "amx_bf16", "avx_ne_convert"})


# ---------------------------------------------------------------- the networks


def _check_build(q: int, variant: str, precision: str, architecture: str) -> None:
    if variant not in {"classification", "regression"}:
        raise ValueError(f"variant must be 'classification' or 'regression', got {variant!r}.")
    if q < 8:
        raise ValueError(f"Q must be at least 8 so that the widths Q/8 are whole, got {q}.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                         f"got {architecture!r}.")


def _head(x, q: int, variant: str, precision: str, kernel: int):
    """The last convolution; its softmax (and so the loss) in float32 whatever the precision."""
    import keras

    out = q if variant == "classification" else 2
    x = keras.layers.Conv2D(out, kernel, dtype=precision, name="logits")(x)
    return keras.layers.Activation("softmax" if variant == "classification" else "linear",
                                   dtype="float32", name="probs" if out == q else "ab")(x)


def _post_body(x, q: int, precision: str):
    import keras

    step = max(1, round(q / 8))
    for i in range(1, 8):
        x = keras.layers.Conv2D(step * i, 3, activation="relu", name=f"conv{i}",
                                dtype=precision)(x)
    return x


def context_width(q: int) -> int:
    """Width of the context network that gives it about as many weights as the post's."""
    return max(8, int(round(0.75 * q / 4)) * 4)


def _context_body(x, q: int, precision: str):
    import keras

    w = context_width(q)
    conv = dict(activation="relu", padding="same", dtype=precision)
    for i, width in enumerate((w // 4, w // 2, w)):  # 1/2, 1/4, 1/8 of the input resolution
        x = keras.layers.Conv2D(width, 3, strides=2, name=f"down{i + 1}", **conv)(x)
    for rate in (1, 2, 4):  # dilated: the receptive field doubles with each
        x = keras.layers.Conv2D(w, 3, dilation_rate=rate, name=f"dilated{rate}", **conv)(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", dtype=precision, name="up")(x)
    return keras.layers.Conv2D(w, 3, name="refine", **conv)(x)  # at 1/4 resolution


def _local_body(x, q: int, precision: str):
    import keras

    w, u = context_width(q), local_width(q)
    conv = dict(activation="relu", padding="same", dtype=precision)
    for i, width in enumerate((w // 4, w // 2, w)):  # the context network's encoder, unchanged
        x = keras.layers.Conv2D(width, 3, strides=2, name=f"down{i + 1}", **conv)(x)
    for i in range(3):  # 1×1 where the context network has its dilated 3×3 convolutions
        x = keras.layers.Conv2D(u, 1, name=f"mix{i + 1}", **conv)(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", dtype=precision, name="up")(x)
    return keras.layers.Conv2D(u, 1, name="refine", **conv)(x)  # at 1/4 resolution


def _main_body(x, q: int, precision: str):
    """Five blocks; each ends in batch normalisation, as every block of the paper's network.

    1/2 and 1/4 resolution (two convolutions each, the second with stride 2), 1/8 (three, the
    last with stride 2), two dilated convolutions (rate 2) at 1/8, a bilinear upsampling and
    two convolutions back at 1/4, where the head predicts.
    """
    import keras

    w1, w2, w3, w4, w5 = MAIN_WIDTHS
    conv = dict(activation="relu", padding="same", dtype=precision)
    plan = [(w1, 1, 1), (w1, 2, 1), "bn", (w2, 1, 1), (w2, 2, 1), "bn",
            (w3, 1, 1), (w3, 1, 1), (w3, 2, 1), "bn", (w4, 1, 2), (w4, 1, 2), "bn",
            "up", (w5, 1, 1), (w5, 1, 1), "bn"]
    n_conv = n_bn = 0
    for item in plan:
        if item == "bn":
            n_bn += 1
            x = keras.layers.BatchNormalization(dtype=precision, name=f"bn{n_bn}")(x)
        elif item == "up":
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", dtype=precision,
                                          name="up")(x)
        else:
            width, stride, rate = item
            n_conv += 1
            x = keras.layers.Conv2D(width, 3, strides=stride, dilation_rate=rate,
                                    name=f"conv{n_conv}", **conv)(x)
    return x


def local_width(q: int) -> int:
    """Width of the local control's 1×1 layers that brings its weights closest to the context
    network's (a multiple of 4)."""
    w = context_width(q)
    target = _context_weights(q, w)
    encoder = 9 * (w // 4) + (w // 4) + 9 * (w // 4) * (w // 2) + (w // 2) + 9 * (w // 2) * w + w

    def weights(u: int) -> int:  # encoder, three 1×1 mixes, 1×1 refine, 1×1 head over Q
        return encoder + (w * u + u) + 3 * (u * u + u) + (u * q + q)

    return min(range(4, 8 * w + 4, 4), key=lambda u: abs(weights(u) - target))


def _context_weights(q: int, w: int) -> int:
    """Weights of the classification context network of width ``w`` (kernels and biases)."""
    convs = [(1, w // 4, 9), (w // 4, w // 2, 9), (w // 2, w, 9)] + [(w, w, 9)] * 4 + [(w, q, 1)]
    return sum(k * cin * cout + cout for cin, cout, k in convs)


def build_model(q: int, variant: str = "classification", precision: str = "float32",
                architecture: str = "post") -> tf.keras.Model:
    """Build a colorization network over the Q ab bins.

    ``"post"``: 8 unpadded 3×3 convolutions, widths Q/8, 2Q/8, ..., Q, 32×32 L → 16×16 output.
    ``"context"``: three stride-2 convolutions, three dilated ones (rates 1, 2, 4), a bilinear
    upsampling and a 3×3 convolution: any L image whose sides are multiples of 8 → output at
    a quarter of its resolution.
    ``"local"``: the control for the context network: the same encoder, stride, padding,
    output resolution and targets, but 1×1 convolutions (widened to about the same number of
    weights) where the context network has its dilated 3×3 ones and its last 3×3, so that
    its receptive field (23 px) is about the post network's (17 px).
    The input is ``L − 50`` in all three.

    Args:
        q: number of ab bins Q (sets the widths, even for regression).
        variant: ``"classification"`` (softmax over Q bins) or ``"regression"`` (2 ab values).
        precision: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"`` (the
            convolutions compute in bfloat16 or float16 with float32 weights; the softmax
            and the outputs stay float32).
        architecture: ``"post"``, ``"context"`` or ``"local"``.

    Returns:
        An uncompiled Keras model named ``colorizer_<architecture>_<variant>``.
    """
    import keras

    _check_build(q, variant, precision, architecture)
    side = WINDOW if architecture == "post" else None
    inputs = keras.Input((side, side, 1), name="L")
    if architecture == "main":  # (L − 50) / 100, in [−0.5, 0.5] as the paper's code feeds it
        x = keras.layers.Rescaling(0.01, offset=-0.5, name="L_scaled")(inputs)
        return keras.Model(inputs, _head(_main_body(x, q, precision), q, variant, precision, 1),
                           name=f"colorizer_{architecture}_{variant}")
    x = keras.layers.Rescaling(1.0, offset=-50.0, name="L_minus_50")(inputs)
    if architecture == "post":
        outputs = _head(_post_body(x, q, precision), q, variant, precision, 3)
    elif architecture == "context":
        outputs = _head(_context_body(x, q, precision), q, variant, precision, 1)
    else:
        outputs = _head(_local_body(x, q, precision), q, variant, precision, 1)
    return keras.Model(inputs, outputs, name=f"colorizer_{architecture}_{variant}")


def receptive_field(model: tf.keras.Model) -> int:
    """Side (input pixels) of the square of input that one output pixel depends on.

    Computed layer by layer from kernel sizes, dilation rates and strides:
    ``r += (kernel − 1) · dilation · jump`` and ``jump *= stride``. A bilinear upsampling
    interpolates between two neighbours of its lower-resolution input, so it adds one step
    of that input (``r += jump``) before ``jump /= size``; a nearest one adds nothing.

    Args:
        model: a model from ``build_model`` (a chain of convolutions).

    Returns:
        The receptive field in pixels.
    """
    r, jump = 1, 1
    for layer in model.layers:
        if hasattr(layer, "kernel_size"):
            r += (layer.kernel_size[0] - 1) * layer.dilation_rate[0] * jump
            jump *= layer.strides[0]
        elif hasattr(layer, "size") and hasattr(layer, "interpolation"):  # UpSampling2D
            if layer.interpolation != "nearest":
                r += jump
            jump = max(1, jump // layer.size[0])
    return r


def _is_context(model) -> bool:
    """True for the fully convolutional networks (context and local) that colour whole images."""
    return getattr(model, "name", "").startswith(
        ("colorizer_context", "colorizer_local", "colorizer_main"))


# ---------------------------------------------------------------- windows and targets


def _check_image(im: np.ndarray, size: int = WINDOW) -> None:
    if im.ndim != 3 or im.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3), got shape {im.shape}; "
                         "convert grey or RGBA images with PIL's .convert('RGB').")
    if min(im.shape[:2]) < size:
        raise ValueError(f"The image is {im.shape[0]}×{im.shape[1]} px, smaller than the "
                         f"{size}×{size} window; upscale it or use a larger working size.")


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


def _target_ab(lab: tf.Tensor, architecture: str) -> tf.Tensor:
    """The ab the network is trained to predict: the window's centre, or the crop at 1/4
    (also used for any other per-pixel channels, such as the opacity)."""
    if architecture == "post":
        return lab[:, MARGIN:MARGIN + OUTPUT, MARGIN:MARGIN + OUTPUT, 1:]
    if architecture == "main":  # one pixel of each 4×4 block, as the paper's code
        o = MAIN_TARGET_OFFSET
        return lab[:, o::CONTEXT_DOWNSAMPLE, o::CONTEXT_DOWNSAMPLE, 1:]
    return tf.nn.avg_pool2d(lab[..., 1:], CONTEXT_DOWNSAMPLE, CONTEXT_DOWNSAMPLE, "VALID")


def make_targets(windows: tf.Tensor, bins: np.ndarray, weights: np.ndarray | None = None,
                 variant: str = "classification", sigma: float = 5.0, k: int = 5,
                 architecture: str = "post") -> tuple:
    """Turn a batch of RGB windows into ``(L, target, pixel_weight)`` for training.

    Args:
        windows: float tensor ``(B, S, S, 3)`` of RGB in [0, 1], or ``(B, S, S, 4)`` whose
            fourth channel is the opacity (``collection.windows_dataset``): pixels of a
            cut-out's background (opacity below ½) then weigh nothing, and the weights are
            scaled so that the loss is the mean over the batch's opaque pixels.
        bins: bin centres ``(Q, 2)``.
        weights: rebalancing weights ``(Q,)``; None gives every pixel weight 1.
        variant: ``"classification"`` (soft-encoded targets) or ``"regression"`` (ab).
        sigma: width of the soft-encoding Gaussian.
        k: neighbours in the soft encoding.
        architecture: ``"post"`` (targets: the 16×16 centre), ``"main"`` (one pixel of each
            4×4 block), ``"context"`` or ``"local"`` (the crop's ab averaged over 4×4 blocks).

    Returns:
        ``L`` of shape ``(B, S, S, 1)``, the target ``(B, h, w, Q or 2)`` and the per-pixel
        weights ``(B, h, w)`` (the rebalancing weight of each pixel's nearest bin).
    """
    opaque = None
    if windows.shape[-1] == 4:
        windows, alpha = windows[..., :3], windows[..., 3:]
        # _target_ab drops channel 0 (L): give it a dummy one to place the opacity alike
        placed = _target_ab(tf.concat([alpha, alpha], -1), architecture)[..., 0]
        opaque = tf.cast(placed >= 0.5, tf.float32)
    lab = color.rgb_to_lab(windows)
    ab = _target_ab(lab, architecture)
    if variant == "classification":  # the nearest bin comes with the soft targets
        target, nearest = color._soft_encode_nearest(ab, bins, sigma, k)
    else:
        target = ab
        nearest = color.nearest_bin(ab, bins) if weights is not None else None
    if weights is None:
        pixel_w = tf.ones(tf.shape(ab)[:-1])
    else:
        pixel_w = tf.gather(tf.constant(weights, tf.float32), nearest)
    if opaque is not None:
        pixel_w = pixel_w * opaque / tf.maximum(tf.reduce_mean(opaque), 1e-6)
    return lab[..., :1], target, pixel_w


def window_order(n_windows: int, count: int, seed: int) -> np.ndarray:
    """The order in which a run draws its windows: seeded permutations, one after another.

    A run's ``i``-th window is ``window_order(...)[i]``: the first ``n_windows`` draws see
    every window once, the next ``n_windows`` again in a new order, and so on. A chunk of
    training takes the next slice, so a resumed run continues the same sequence.

    Args:
        n_windows: how many windows there are.
        count: how many draws to return.
        seed: the run's seed.

    Returns:
        int64 array of ``count`` window indices.
    """
    if n_windows < 1 or count < 0:
        raise ValueError(f"Need at least one window and a non-negative count, got "
                         f"{n_windows} and {count}.")
    rng = np.random.default_rng(seed)
    passes = -(-count // n_windows)
    order = [rng.permutation(n_windows) for _ in range(passes)]
    return np.concatenate(order)[:count] if order else np.zeros(0, np.int64)


def make_dataset(windows: np.ndarray, bins: np.ndarray, weights: np.ndarray | None = None,
                 variant: str = "classification", batch_size: int = 32, *,
                 order: np.ndarray | None = None, sigma: float = 5.0, k: int = 5,
                 architecture: str = "post") -> tf.data.Dataset:
    """Return a ``tf.data`` pipeline of ``(L, target, pixel_weight)`` batches, in a given order.

    Lab conversion, soft-encoding and weights are computed per batch, vectorised.

    Args:
        windows: float32 RGB windows ``(N, S, S, 3)``.
        bins: bin centres ``(Q, 2)``.
        weights: rebalancing weights or None.
        variant: ``"classification"`` or ``"regression"``.
        batch_size: windows per batch.
        order: indices of the windows to use, in order (e.g. a slice of ``window_order``);
            default: every window once, as stored. Incomplete last batches are dropped.
        sigma: width of the soft-encoding Gaussian.
        k: neighbours in the soft encoding.
        architecture: ``"post"``, ``"context"`` or ``"local"`` (see ``make_targets``).

    Returns:
        A finite ``tf.data.Dataset``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    order = np.arange(len(windows)) if order is None else np.asarray(order)
    if order.size and (order.min() < 0 or order.max() >= len(windows)):
        raise ValueError(f"order holds indices outside 0..{len(windows) - 1}.")
    ds = _ordered_batches(np.asarray(windows, np.float32), order, batch_size)
    # plain TensorFlow ops, no Python control flow on tensors: tracing needs no autograph
    targets = tf.autograph.experimental.do_not_convert(
        lambda w: make_targets(w, bins, weights, variant, sigma, k, architecture))
    ds = ds.map(targets, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _ordered_batches(windows: np.ndarray, order: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """The windows of ``order`` in batches, gathered one batch at a time (never all at once).

    The batches' indices are the dataset; each is gathered from the NumPy array when the
    pipeline reaches it. (``Dataset.from_generator`` did the same, but deleting its iterator
    while the pipeline still ran could block for up to about 20 s.)
    """
    n = len(order) // batch_size
    batches = np.asarray(order[:n * batch_size], np.int64).reshape(n, batch_size)
    shape = (batch_size, *windows.shape[1:])

    def gather(idx: tf.Tensor) -> tf.Tensor:
        out = tf.numpy_function(lambda i: windows[i], [idx], tf.float32, stateful=False)
        out.set_shape(shape)
        return out

    return tf.data.Dataset.from_tensor_slices(batches).map(gather)


# ---------------------------------------------------------------- training


@dataclass
class Trainer:
    """A network with its optimizer, loss, step counter and checkpoint, made under a strategy."""

    model: tf.keras.Model
    optimizer: object
    """Adam, wrapped in Keras' ``LossScaleOptimizer`` for mixed float16."""
    loss: object
    """Cross-entropy (classification variants) or mean squared error (regression)."""
    step: tf.Variable
    """Steps trained so far (saved with the checkpoint)."""
    checkpoint: tf.train.Checkpoint
    strategy: tf.distribute.Strategy
    score: Callable | None = field(default=None, repr=False)
    """``score(L, target, pixel_w)``: the loss of a batch in inference mode (traced once)."""


def make_trainer(q: int, variant: str, *, lr: float = 1e-3, precision: str = "float32",
                 architecture: str = "post", seed: int = 0,
                 strategy: tf.distribute.Strategy | None = None) -> Trainer:
    """Build a network, its Adam optimizer and loss under a strategy, ready for ``train_loop``.

    Args:
        q: number of ab bins.
        variant: ``"regression"``, ``"classification"`` or ``"rebalanced"``.
        lr: Adam's learning rate.
        precision: one of ``PRECISIONS``; mixed float16 scales the loss
            (``keras.optimizers.LossScaleOptimizer``) so that small gradients survive.
        architecture: ``"post"``, ``"context"`` or ``"local"``.
        seed: initialisation seed (``keras.utils.set_random_seed``).
        strategy: a ``tf.distribute`` strategy; default: the current one.

    Returns:
        A ``Trainer`` at step 0 (restore its ``checkpoint`` to resume).
    """
    import keras

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}.")
    strategy = strategy or tf.distribute.get_strategy()
    kind = "regression" if variant == "regression" else "classification"
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model(q, kind, precision, architecture)
        optimizer = keras.optimizers.Adam(lr)
        if precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss = (keras.losses.MeanSquaredError() if kind == "regression"
                else keras.losses.CategoricalCrossentropy())
        model.compile(optimizer=optimizer, loss=loss)  # predict and evaluate work on it
        step = tf.Variable(0, dtype=tf.int64, trainable=False)
        optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)

    @tf.function(reduce_retracing=True, autograph=False)  # no Python control flow on tensors
    def score(L, target, pixel_w):
        return loss(target, model(L, training=False), sample_weight=pixel_w)

    return Trainer(model, optimizer, loss, step, checkpoint, strategy, score)


def train_loop(trainer: Trainer, data: tf.data.Dataset, *, until: int, every: int,
               manager: tf.train.CheckpointManager,
               on_chunk: Callable[[int, int, float, float], bool | None] | None = None,
               on_step: Callable[[int], None] | None = None) -> None:
    """Train from ``trainer.step`` to step ``until``: the one training loop of the book.

    Each step takes the next ``(L, target, pixel_weight)`` batch of ``data`` (global batches,
    split among the strategy's replicas), computes the loss on every replica, and applies
    the all-reduced gradients. At every multiple of ``every`` and at ``until`` the step is
    saved with ``manager`` and ``on_chunk(step, steps, loss, seconds)`` is called with the
    chunk's mean training loss (accumulated in float32 as a Keras ``Mean`` metric does, so
    it equals what ``fit`` logs) and the seconds it took. Keras' ``fit`` is not used: in
    Keras 3.15 it fails under ``MultiWorkerMirroredStrategy``.

    Args:
        trainer: from ``make_trainer`` (restored from a checkpoint to resume).
        data: batches from the step ``trainer.step`` on (at least ``until − step`` of them).
        until: the step to stop at.
        every: steps between checkpoints.
        manager: a ``tf.train.CheckpointManager`` of ``trainer.checkpoint``.
        on_chunk: optional function called after each checkpoint; when it returns True,
            training stops there (early stopping).
        on_step: optional function called with the step number after every step.
    """
    if every < 1:
        raise ValueError(f"every (steps between checkpoints) must be positive, got {every}.")
    model, optimizer, loss_fn, strategy = (trainer.model, trainer.optimizer, trainer.loss,
                                           trainer.strategy)
    batch = int(data.element_spec[0].shape[0])

    def replica_step(L, target, pixel_w):
        with tf.GradientTape() as tape:
            pred = model(L, training=True)
            loss = loss_fn(target, pred, sample_weight=pixel_w)  # scaled by 1 / replicas
            scaled = optimizer.scale_loss(loss)  # loss scaling under mixed float16
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)  # all-reduced across replicas
        return tf.distribute.get_replica_context().all_reduce("SUM", loss)

    @tf.function(autograph=False)  # plain ops and Keras layers: autograph only slows tracing
    def train_step(iterator):
        out = strategy.run(replica_step, args=next(iterator))
        return strategy.experimental_local_results(out)[0]

    iterator = iter(strategy.experimental_distribute_dataset(data))
    now = int(trainer.step.numpy())
    total, count, steps, t0 = np.float32(0), np.float32(0), 0, time.perf_counter()
    while now < until:
        loss = np.float32(train_step(iterator))
        now, steps = now + 1, steps + 1
        total, count = total + loss * np.float32(batch), count + np.float32(batch)
        if on_step is not None:
            on_step(now)
        if now % every and now != until:
            continue
        seconds = time.perf_counter() - t0
        trainer.step.assign(now)
        manager.save(checkpoint_number=now)
        if on_chunk is not None and on_chunk(now, steps, float(total / count), seconds) is True:
            break
        total, count, steps, t0 = np.float32(0), np.float32(0), 0, time.perf_counter()


def prior_only_loss(target: tf.Tensor, pixel_w: tf.Tensor, prior: np.ndarray,
                    bins: np.ndarray) -> float:
    """The loss of the trivial model that knows only which colours are common.

    For classification targets (``(..., Q)``) it predicts the prior ``prior`` at every pixel
    and scores it with the cross-entropy; for regression targets (``(..., 2)``) it predicts
    the prior's mean ab and scores it with the mean squared error: the two losses
    ``make_trainer`` trains with, weighted by ``pixel_w`` as they are.

    Args:
        target, pixel_w: a batch's ``make_targets``.
        prior: the prior over the bins ``(Q,)``.
        bins: the bin centres ``(Q, 2)``.

    Returns:
        The loss.
    """
    import keras

    prior = np.asarray(prior, np.float32)
    if target.shape[-1] == 2:
        guess, loss = prior @ np.asarray(bins, np.float32), keras.losses.MeanSquaredError()
    else:
        guess, loss = prior, keras.losses.CategoricalCrossentropy()
    return float(loss(target, tf.broadcast_to(tf.constant(guess), target.shape),
                      sample_weight=pixel_w))


def held_out_loss(trainer: Trainer, L: tf.Tensor, target: tf.Tensor, pixel_w: tf.Tensor,
                  batch_size: int = 256) -> float:
    """The trainer's loss on held-out windows, in chunks of ``batch_size`` (as ``evaluate``).

    Args:
        trainer: from ``make_trainer``.
        L, target, pixel_w: the held-out windows' ``make_targets``.
        batch_size: windows per forward pass.

    Returns:
        The mean loss over the windows (chunks weighted by their size).
    """
    total, count = np.float32(0), np.float32(0)
    for i in range(0, int(L.shape[0]), batch_size):
        n = np.float32(min(batch_size, int(L.shape[0]) - i))
        loss = trainer.score(L[i:i + batch_size], target[i:i + batch_size],
                             pixel_w[i:i + batch_size])
        total = total + np.float32(loss) * n
        count = count + n
    return float(total / count)


# ---------------------------------------------------------------- whole images


def _predict_windows(model, L: np.ndarray) -> np.ndarray:
    """The post's network over a whole image, as if stride-16 windows tiled it.

    The network is 8 unpadded convolutions, so run over the image padded by ``MARGIN`` it
    gives at every pixel what the 32×32 window centred there gives (each output pixel sees
    only its 17×17 neighbourhood): the same result as tiling the image with windows whose
    16×16 centres meet edge to edge, with less work (the windows would overlap).
    Training windows lie inside the photos, unpadded, so no training target is within
    ``MARGIN`` pixels of a border; here the pixels near a border see mirrored input, which
    training never showed the network.
    """
    h, w = L.shape
    # mirrored padding so the border pixels get a colour (edge-repeated for images too small)
    padded = np.pad(L, MARGIN, mode="reflect" if min(h, w) > MARGIN + OUTPUT else "edge")
    x = tf.constant(padded[None, :, :, None])
    for layer in model.layers:  # the layers, not the model: its input is fixed at 32×32
        if not isinstance(layer, tf.keras.layers.InputLayer):
            x = layer(x, training=False)
    return np.asarray(x, np.float32)[0]


def _predict_context(model, L: np.ndarray, decode: Callable | None = None) -> np.ndarray:
    """The context network over a whole image at once, its output upsampled to full size;
    with ``decode``, the output is decoded (e.g. to ab) at its own resolution first."""
    h, w = L.shape
    H, W = -(-h // CONTEXT_STRIDE) * CONTEXT_STRIDE, -(-w // CONTEXT_STRIDE) * CONTEXT_STRIDE
    padded = np.pad(L, ((0, H - h), (0, W - w)), mode="reflect")
    out = model(padded[None, :, :, None], training=False)  # eager: the image's own shape
    if decode is not None:
        out = decode(out)
    # bilinear upsampling of distributions gives distributions (convex combinations)
    full = tf.image.resize(out, (H, W), method="bilinear").numpy()[0]
    return full[:h, :w]


def predict_tiles(model: tf.keras.Model, L: np.ndarray) -> np.ndarray:
    """Run a network over a whole image and return its output at every pixel.

    The post's network: the L image is padded by ``MARGIN`` px (reflection) and the
    network's layers run over it whole, which gives every pixel what the 32×32 window
    centred on it predicts (the same as tiling the image with windows whose 16×16 centres
    meet edge to edge). The context network sees the whole image at once (padded
    to multiples of 8) and its quarter-resolution output is upsampled bilinearly.

    Args:
        model: a classification or regression model from ``build_model``.
        L: lightness image of shape ``(H, W)`` (0–100), at least 16 px on a side.

    Returns:
        The network's output per pixel, shape ``(H, W, Q)`` (probabilities) or ``(H, W, 2)``.
    """
    L = np.asarray(L, np.float32)
    if L.ndim != 2 or min(L.shape) < OUTPUT:
        raise ValueError(f"predict_tiles needs a 2-D L image at least {OUTPUT} px on a side, "
                         f"got shape {L.shape}.")
    return _predict_context(model, L) if _is_context(model) else _predict_windows(model, L)


def predict_ab(model: tf.keras.Model, L: np.ndarray, bins: np.ndarray | None = None,
               T: float = color.T_ANNEALED) -> np.ndarray:
    """Colour a whole image: ``predict_tiles``, then the annealed mean for classifiers (for
    the networks with a quarter-resolution output, the annealed mean at that resolution, then
    its ab upsampled).

    Args:
        model: a classification or regression model from ``build_model``.
        L: lightness image of shape ``(H, W)`` (0–100), at least 16 px on a side.
        bins: bin centres (needed for classification models).
        T: temperature of the annealed mean (classification models).

    Returns:
        ab image of shape ``(H, W, 2)``.
    """
    if _is_context(model) and model.output_shape[-1] != 2:
        # decode at the network's own resolution, then upsample the two ab channels (as the
        # paper's demo does): the same colours as decoding upsampled distributions, up to
        # the interpolation, without a (H, W, Q) array
        if bins is None:
            raise ValueError("A classification model needs the bins to decode its output.")
        L = np.asarray(L, np.float32)
        if L.ndim != 2 or min(L.shape) < OUTPUT:
            raise ValueError(f"predict_ab needs a 2-D L image at least {OUTPUT} px on a side, "
                             f"got shape {L.shape}.")
        return _predict_context(model, L, lambda z: color.annealed_mean(z, bins, T))
    out = predict_tiles(model, L)
    if out.shape[-1] == 2:
        return out
    if bins is None:
        raise ValueError("A classification model needs the bins to decode its output.")
    return color.annealed_mean(out, bins, T).numpy()


def colorize(model: tf.keras.Model, rgb: np.ndarray, bins: np.ndarray | None = None,
             T: float = color.T_ANNEALED) -> np.ndarray:
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
    L = color.rgb_to_lab(rgb).numpy()[..., 0]
    ab = predict_ab(model, L, bins, T)
    return color.lab_to_rgb(np.concatenate([L[..., None], ab], axis=-1)).numpy()


# ---------------------------------------------------------------- evaluation on photographs

BASELINES = ("grey", "prior mean")
"""The trivial colourings every network is compared with: no colour, and the training prior's
mean ab at every pixel."""


def _output_grid(model, L: np.ndarray) -> np.ndarray:
    """The main network's own output over a whole image (no upsampling), sides cut to 8."""
    h, w = (np.asarray(L.shape) // CONTEXT_STRIDE) * CONTEXT_STRIDE
    return model(L[None, :h, :w, None], training=False).numpy()[0]


def evaluate_photos(models: dict, photos: list[np.ndarray], bins: np.ndarray,
                    prior: np.ndarray, T: float = color.T_ANNEALED,
                    masks: list[np.ndarray | None] | None = None):
    """Score networks and the trivial colourings on photographs, one row per photo and method.

    Each main network predicts at its own output resolution (a quarter of the photo's); every
    method is scored there, on the pixel of each 4×4 block that the network was trained on
    (``MAIN_TARGET_OFFSET``). Classification networks are decoded by the annealed mean at
    temperature ``T``. The columns are sums over the photo's scored pixels, so they pool
    over any set of photos: ``auc`` (the mean pixel AuC of ``color.pixel_auc``) with
    ``pixels``; the paper's class-rebalanced AuC as ``rebalanced_sum`` / ``rebalanced_weight``
    (``color.rebalanced_auc_sums``); ``hue_hits`` / ``hue_scored`` (``color.hue_hits``);
    ``chroma`` (the mean predicted chroma); and, for the networks that predict distributions
    and for ``"prior"`` (the prior at every pixel), ``cross_entropy`` against the soft-encoded
    truth (``color.soft_cross_entropy`` in nats per pixel, times ``pixels``).

    Args:
        models: ``{name: model}``, main networks from ``build_model(..., architecture="main")``
            (regression or classification).
        photos: RGB photos, float in [0, 1] or ``uint8`` (a quarter of the memory; converted
            one photo at a time), at least 16 px on a side.
        bins: the bins the networks were trained over, ``(Q, 2)``.
        prior: the training prior over them, ``(Q,)``.
        T: temperature of the annealed mean.
        masks: optional boolean ``(H, W)`` per photo (or None for all of it): only its true
            pixels are scored, e.g. the object of a photo cut out on a background.

    Returns:
        A pandas DataFrame with columns ``photo`` (index in ``photos``), ``method`` and the
        scores above.
    """
    import pandas as pd

    for name, model in models.items():
        if not getattr(model, "name", "").startswith("colorizer_main"):
            raise ValueError(f"evaluate_photos scores the main networks only; {name!r} is "
                             f"{getattr(model, 'name', model)!r}.")
    if masks is not None and len(masks) != len(photos):
        raise ValueError(f"Give one mask (or None) per photo: {len(masks)} masks for "
                         f"{len(photos)} photos.")
    mean_ab = np.asarray(prior, np.float64) @ np.asarray(bins, np.float64)
    o, d = MAIN_TARGET_OFFSET, CONTEXT_DOWNSAMPLE
    rows = []
    for i, rgb in enumerate(photos):
        rgb = np.asarray(rgb)
        rgb = rgb.astype(np.float32) / 255 if rgb.dtype == np.uint8 else rgb
        _check_image(rgb, 2 * CONTEXT_STRIDE)
        lab = color.rgb_to_lab(rgb).numpy()
        outputs = {name: _output_grid(m, lab[..., 0]) for name, m in models.items()}
        shape = next(iter(outputs.values())).shape[:2] if outputs else (
            lab.shape[0] // CONTEXT_STRIDE * 2, lab.shape[1] // CONTEXT_STRIDE * 2)
        true = lab[o::d, o::d, 1:][:shape[0], :shape[1]].astype(np.float64)
        keep = np.ones(true.shape[:2], bool)
        if masks is not None and masks[i] is not None:
            if masks[i].shape != rgb.shape[:2]:
                raise ValueError(f"Mask {i} has shape {masks[i].shape}, photo {i} "
                                 f"{rgb.shape[:2]}; make each mask the size of its photo.")
            keep = np.asarray(masks[i], bool)[o::d, o::d][:shape[0], :shape[1]]
        true = true[keep]
        preds = {"grey": (np.zeros_like(true), None),
                 "prior mean": (np.broadcast_to(mean_ab, true.shape), None),
                 "prior": (None, np.asarray(prior, np.float64))}
        for name, out in outputs.items():
            out = out[keep]
            if out.shape[-1] == 2:
                preds[name] = (out.astype(np.float64), None)
            else:
                preds[name] = (color.annealed_mean(out, bins, T).numpy().astype(np.float64), out)
        for name, (ab, probs) in preds.items():
            row = {"photo": i, "method": name, "pixels": len(true)}
            if ab is not None:
                row["auc"] = float(color.pixel_auc(ab, true).sum())
                row["rebalanced_sum"], row["rebalanced_weight"] = color.rebalanced_auc_sums(
                    ab, true, bins, prior)
                row["hue_hits"], row["hue_scored"] = color.hue_hits(ab, true)
                row["chroma"] = float(np.hypot(ab[..., 0], ab[..., 1]).mean())
            if probs is not None:
                row["cross_entropy"] = color.soft_cross_entropy(probs, true, bins) * row["pixels"]
            rows.append(row)
    return pd.DataFrame(rows)
