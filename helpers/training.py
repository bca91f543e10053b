"""Compiled training loops: a vectorised ensemble of small dense networks.

Batch-size-1 SGD through ``model.fit`` pays Keras' per-step overhead (about 2 ms) thousands of
times for a network of a few hundred weights. ``train_ensemble`` trains many such networks at
once instead: every weight carries a leading *run* axis, and one ``tf.function``, compiled by
XLA, runs all the per-sample SGD steps of all runs, each run with its own initial weights,
shuffling, penalty, loss and (optionally) its own training data. The update of every run is
exactly the one batch-size-1 SGD would make on it alone (``tests/test_training.py`` checks it
against Keras' ``fit``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from helpers import config

Weights = list[tuple[np.ndarray, np.ndarray]]
"""One ``(kernels, biases)`` pair per layer, shapes ``(runs, n_in, n_out)``, ``(runs, n_out)``."""

ACTIVATIONS = ("linear", "relu", "tanh")
"""Hidden-layer activations the ensemble knows (the output layer is always linear)."""

LOSSES = ("absolute", "squared")
"""Per-sample data losses: ``|f(x) - y|`` and ``(f(x) - y)**2``."""


@dataclass
class EnsembleResult:
    """What ``train_ensemble`` returns.

    Attributes:
        weights: the trained weights, one ``(kernels, biases)`` pair per layer.
        history: mean data loss over each epoch's samples, shape ``(epochs, runs)``.
        snapshots: the weights after each epoch listed in ``snapshot_epochs`` (epoch 0 is
            the initial state).
        snapshot_epochs: the epochs at which ``snapshots`` were taken.
    """

    weights: Weights
    history: np.ndarray
    snapshots: list[Weights] = field(default_factory=list)
    snapshot_epochs: list[int] = field(default_factory=list)


def glorot_weights(sizes: Sequence[int], runs: int, seed: int = 0) -> Weights:
    """Draw Xavier/Glorot-uniform kernels and zero biases for ``runs`` independent networks.

    Args:
        sizes: layer widths from input to output, e.g. ``(1, 10, 10, 10, 1)``.
        runs: how many networks (the leading axis of every array).
        seed: seed of the draw; run ``r`` gets the same weights for any ``runs > r``.

    Returns:
        One ``(kernels, biases)`` pair per layer, float32.
    """
    sizes = _check_sizes(sizes)
    _check_runs(runs)
    rng = np.random.default_rng(seed)
    per_run = []
    for _ in range(runs):
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / (n_in + n_out))
            layers.append(rng.uniform(-limit, limit, size=(n_in, n_out)))
        per_run.append(layers)
    return [(np.stack([run[i] for run in per_run]).astype(np.float32),
             np.zeros((runs, n_out), np.float32))
            for i, n_out in enumerate(sizes[1:])]


def sizes_of(weights: Weights) -> tuple[int, ...]:
    """Return the layer widths ``(n_in, n_hidden..., n_out)`` of ensemble weights."""
    return (weights[0][0].shape[1],) + tuple(k.shape[2] for k, _ in weights)


def select_runs(weights: Weights, runs: Sequence[int] | np.ndarray) -> Weights:
    """Return the weights of the chosen runs only (indices or a boolean mask)."""
    return [(k[runs], b[runs]) for k, b in weights]


def tile_runs(weights: Weights, times: int) -> Weights:
    """Repeat the whole ensemble ``times`` times along the run axis.

    Block ``i`` of the result is a copy of ``weights``: train block ``i`` under configuration
    ``i`` and run ``r`` of every block starts from the same weights.

    Args:
        weights: ensemble weights of ``runs`` networks.
        times: how many blocks (configurations).

    Returns:
        Weights of ``times * runs`` networks, block after block.
    """
    if int(times) < 1:
        raise ValueError(f"tile_runs needs at least one block, got times={times}.")
    return [(np.concatenate([k] * times), np.concatenate([b] * times)) for k, b in weights]


def split_runs(weights: Weights, blocks: int) -> list[Weights]:
    """Cut the run axis into ``blocks`` equal consecutive blocks (the inverse of ``tile_runs``).

    Args:
        weights: ensemble weights whose run count is a multiple of ``blocks``.
        blocks: how many blocks (configurations).

    Returns:
        One ``Weights`` per block, in order.
    """
    runs = _check_weights(weights)
    if int(blocks) < 1 or runs % int(blocks):
        raise ValueError(f"Cannot cut {runs} runs into {blocks} equal blocks; pass a number of "
                         "blocks that divides the number of runs.")
    size = runs // int(blocks)
    return [select_runs(weights, slice(i * size, (i + 1) * size)) for i in range(int(blocks))]


def keras_weights(weights: Weights, run: int) -> list[np.ndarray]:
    """Return run ``run`` as the flat list ``keras.Model.set_weights`` takes for Dense layers.

    Args:
        weights: ensemble weights.
        run: which network.

    Returns:
        ``[kernel_1, bias_1, kernel_2, bias_2, ...]`` of that run.
    """
    runs = _check_weights(weights)
    if not -runs <= int(run) < runs:
        raise ValueError(f"run {run} does not exist; the ensemble has {runs} runs.")
    return [array[run] for pair in weights for array in pair]


def from_keras(models_weights: Sequence[Sequence[np.ndarray]]) -> Weights:
    """Stack the ``get_weights()`` lists of several Dense-only Keras models into an ensemble.

    Args:
        models_weights: one ``[kernel_1, bias_1, ...]`` list per model, same architecture.

    Returns:
        Ensemble weights with one run per model (the inverse of ``keras_weights``).
    """
    lists = [list(w) for w in models_weights]
    if not lists or len(lists[0]) % 2 or any(len(w) != len(lists[0]) for w in lists):
        raise ValueError("Pass one get_weights() list per model, all of the same Dense-only "
                         "architecture (kernel and bias for every layer).")
    return [(np.stack([w[i] for w in lists]).astype(np.float32),
             np.stack([w[i + 1] for w in lists]).astype(np.float32))
            for i in range(0, len(lists[0]), 2)]


def flat_kernels(weights: Weights) -> np.ndarray:
    """Return every run's kernel weights (biases left out) as one row per run.

    Args:
        weights: ensemble weights.

    Returns:
        Array ``(runs, n_kernel_weights)``, layer after layer.
    """
    runs = _check_weights(weights)
    return np.concatenate([np.asarray(k).reshape(runs, -1) for k, _ in weights], axis=1)


def end_to_end(weights: Weights) -> tuple[np.ndarray, np.ndarray]:
    """Return the slope(s) and intercept of every run of a network without activations.

    A stack of Dense layers without activations is one affine map ``x @ A + c``; this returns
    ``A`` (the product of the kernels) and ``c``.

    Args:
        weights: ensemble weights of networks trained with ``activation="linear"``.

    Returns:
        ``(A, c)``: ``A`` of shape ``(runs, n_in)`` (the slope, one per input) and ``c`` of
        shape ``(runs,)``.
    """
    runs = _check_weights(weights)
    n_in = weights[0][0].shape[1]
    intercept = predict(weights, np.zeros((1, n_in)))[:, 0]
    slopes = predict(weights, np.eye(n_in)) - intercept[:, None]
    return slopes.reshape(runs, n_in), intercept


def predict(weights: Weights, x: np.ndarray, activation: str = "linear") -> np.ndarray:
    """Evaluate every network of the ensemble on the same inputs.

    Args:
        weights: ensemble weights, as from ``glorot_weights`` or ``train_ensemble``.
        x: inputs of shape ``(n,)`` (one feature) or ``(n, n_in)``.
        activation: the hidden activation the networks were trained with.

    Returns:
        Predictions of shape ``(runs, n)`` (the single output unit).
    """
    _check_activation(activation)
    a = np.asarray(x, np.float32)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != weights[0][0].shape[1]:
        raise ValueError(f"x must have shape (n,) or (n, {weights[0][0].shape[1]}) to match "
                         f"the first layer, got {np.shape(x)}.")
    a = np.broadcast_to(a, (weights[0][0].shape[0],) + a.shape)
    for i, (k, b) in enumerate(weights):
        a = np.einsum("rni,rio->rno", a, k) + b[:, None, :]
        if i < len(weights) - 1:
            a = _np_activation(a, activation)
    return a[..., 0]


def train_ensemble(x: np.ndarray, y: np.ndarray, weights: Weights, *,
                   l1: float | Sequence[float] = 0.0, l2: float | Sequence[float] = 0.0,
                   loss: str | Sequence[str] = "absolute", lr: float = 0.01,
                   epochs: int = 100, activation: str = "linear",
                   proximal: bool | Sequence[bool] = False, shuffle: bool = True,
                   seed: int | Sequence[int] = 0, snapshot_every: int = 0,
                   progress: bool | None = None) -> EnsembleResult:
    """Train every network of an ensemble with batch-size-1 SGD, all runs at once.

    Each step takes one sample per run and applies, to every run independently,
    ``W -= lr * (dloss/dW + l1 * sign(W) + 2 * l2 * W)`` on the kernels (biases are not
    penalised), i.e. the Keras penalty ``l1 * sum|W| + l2 * sum W**2``. With ``proximal``
    the L1 part is applied instead as a soft threshold after the gradient step,
    ``W = sign(W) * max(|W| - lr * l1, 0)``, which sets weights exactly to zero.

    Args:
        x: training inputs shared by all runs, ``(n,)`` or ``(n, n_in)``; or one set per
            run, ``(runs, n)`` or ``(runs, n, n_in)`` (then ``y`` is ``(runs, n)``).
        y: training targets, ``(n,)`` shared or ``(runs, n)`` per run.
        weights: initial weights (e.g. ``glorot_weights``); not modified.
        l1: L1 coefficient, one for all runs or one per run.
        l2: L2 coefficient (Keras convention, no 1/2), one for all runs or one per run.
        loss: ``"absolute"`` or ``"squared"``, one for all runs or one per run.
        lr: SGD learning rate.
        epochs: passes over the training samples.
        activation: hidden-layer activation, one of ``ACTIVATIONS``.
        proximal: use the soft-threshold step for the L1 part (one flag or one per run).
        shuffle: visit the samples in a fresh random order every epoch (per run).
        seed: seed of the shuffling. One number: every run gets its own order, all drawn
            from that seed. One seed per run: run ``r`` visits the samples in the order drawn
            from ``seed[r]`` alone, so runs given the same seed see the same sample order
            (pair the runs of different configurations this way).
        snapshot_every: keep a copy of the weights every this many epochs (0: none).
        progress: print progress per chunk of epochs; default ``config.is_live()``.

    Returns:
        An ``EnsembleResult`` with the trained weights and the per-epoch training loss.
    """
    runs = _check_weights(weights)
    x, y, per_run_data = _check_data(x, y, runs, weights[0][0].shape[1])
    _check_activation(activation)
    if lr <= 0:
        raise ValueError(f"The learning rate must be positive, got lr={lr}.")
    if epochs < 1:
        raise ValueError(f"Train for at least one epoch, got epochs={epochs}.")
    if snapshot_every < 0:
        raise ValueError(f"snapshot_every counts epochs and cannot be negative, got "
                         f"{snapshot_every}; use 0 for no snapshots.")
    l1_r = _per_run(l1, runs, "l1")
    l2_r = _per_run(l2, runs, "l2")
    if np.any(l1_r < 0) or np.any(l2_r < 0):
        raise ValueError("Penalty coefficients cannot be negative (a negative lambda rewards "
                         f"large weights); got l1={l1}, l2={l2}. Use 0 to switch a penalty off.")
    is_abs = _per_run_loss(loss, runs)
    prox_r = _per_run(proximal, runs, "proximal").astype(bool).astype(np.float32)
    progress = config.is_live() if progress is None else progress
    order = _sample_order(seed, runs, y.shape[-1], epochs, shuffle)

    step = _compiled_epochs(len(weights), activation)[per_run_data]
    kernels = [tf.constant(k, tf.float32) for k, _ in weights]
    biases = [tf.constant(b, tf.float32) for _, b in weights]
    consts = [tf.constant(v, tf.float32) for v in (l1_r, l2_r, is_abs, prox_r)]
    x_t, y_t = tf.constant(x), tf.constant(y)
    chunk = snapshot_every or (max(1, epochs // 10) if progress else epochs)
    snapshots = [_copy(weights)] if snapshot_every else []
    snapshot_epochs = [0] if snapshot_every else []
    history = []
    done = 0
    while done < epochs:
        todo = min(chunk, epochs - done)
        kernels, biases, losses = step(kernels, biases, tf.constant(order[done:done + todo]),
                                       x_t, y_t, *consts,
                                       tf.constant(lr, tf.float32))
        history.append(losses.numpy())
        done += todo
        if snapshot_every:
            snapshots.append([(k.numpy(), b.numpy()) for k, b in zip(kernels, biases)])
            snapshot_epochs.append(done)
        if progress:
            print(f"\rtrained {done}/{epochs} epochs of {runs} runs", end="", flush=True)
    if progress:
        print()
    trained = [(k.numpy(), b.numpy()) for k, b in zip(kernels, biases)]
    return EnsembleResult(trained, np.concatenate(history), snapshots, snapshot_epochs)


# ----------------------------------------------------------------------------- internals


def _np_activation(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0.0)
    if activation == "tanh":
        return np.tanh(z)
    return z


def _tf_activation(z: tf.Tensor, activation: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Return the activation and its derivative at ``z``."""
    if activation == "relu":
        return tf.nn.relu(z), tf.cast(z > 0, z.dtype)
    if activation == "tanh":
        a = tf.tanh(z)
        return a, 1.0 - a * a
    return z, tf.ones_like(z)


@functools.cache
def _compiled_epochs(n_layers: int, activation: str):
    """Build (once per depth and activation) the compiled multi-epoch SGD loop."""

    def sgd_step(kernels, biases, xt, yt, l1, l2, is_abs, prox, lr):
        # Forward pass, keeping what the backward pass needs. xt: (R, n_in), yt: (R,).
        inputs, slopes, a = [], [], xt
        for i in range(n_layers):
            inputs.append(a)
            z = tf.einsum("ri,rio->ro", a, kernels[i]) + biases[i]
            if i < n_layers - 1:
                a, slope = _tf_activation(z, activation)
                slopes.append(slope)
            else:
                a = z
        residual = a[:, 0] - yt
        data_loss = is_abs * tf.abs(residual) + (1.0 - is_abs) * tf.square(residual)
        delta = (is_abs * tf.sign(residual) + (1.0 - is_abs) * 2.0 * residual)[:, None]
        new_k, new_b = [None] * n_layers, [None] * n_layers
        for i in reversed(range(n_layers)):
            k = kernels[i]
            grad_k = inputs[i][:, :, None] * delta[:, None, :]
            if i > 0:  # the error for the layer below, through the old kernel
                next_delta = tf.einsum("ro,rio->ri", delta, k) * slopes[i - 1]
            lam1, lam2 = l1[:, None, None], l2[:, None, None]
            use_prox = prox[:, None, None]
            k = k - lr * (grad_k + (1.0 - use_prox) * lam1 * tf.sign(k) + 2.0 * lam2 * k)
            shrunk = tf.sign(k) * tf.maximum(tf.abs(k) - lr * lam1, 0.0)
            new_k[i] = use_prox * shrunk + (1.0 - use_prox) * k
            new_b[i] = biases[i] - lr * delta
            if i > 0:
                delta = next_delta
        return new_k, new_b, data_loss

    def run(per_run_data, kernels, biases, order, x, y, l1, l2, is_abs, prox, lr):
        n_epochs, runs, n = tf.unstack(tf.shape(order))
        run_ids = tf.range(runs)

        def one_epoch(e, kernels, biases, losses):
            def one_sample(t, kernels, biases, total):
                idx = order[e, :, t]
                if per_run_data:
                    gather_at = tf.stack([run_ids, idx], axis=1)
                    xt, yt = tf.gather_nd(x, gather_at), tf.gather_nd(y, gather_at)
                else:
                    xt, yt = tf.gather(x, idx), tf.gather(y, idx)
                kernels, biases, data_loss = sgd_step(kernels, biases, xt, yt, l1, l2,
                                                      is_abs, prox, lr)
                return t + 1, kernels, biases, total + data_loss

            _, kernels, biases, total = tf.while_loop(
                lambda t, *_: t < n, one_sample,
                (tf.constant(0), kernels, biases, tf.zeros([runs])))
            losses = losses.write(e, total / tf.cast(n, tf.float32))
            return e + 1, kernels, biases, losses

        _, kernels, biases, losses = tf.while_loop(
            lambda e, *_: e < n_epochs, one_epoch,
            (tf.constant(0), kernels, biases, tf.TensorArray(tf.float32, size=n_epochs)))
        return kernels, biases, losses.stack()

    return {per_run: tf.function(functools.partial(run, per_run), reduce_retracing=True,
                                 jit_compile=True)
            for per_run in (False, True)}


def _sample_order(seed, runs: int, n: int, epochs: int, shuffle: bool) -> np.ndarray:
    """Visiting order ``(epochs, runs, n)``: one generator for all runs, or one per run."""
    base = np.broadcast_to(np.arange(n), (runs, n))
    if not shuffle:
        return np.broadcast_to(base, (epochs, runs, n)).astype(np.int32)
    if np.ndim(seed) == 0:
        rng = np.random.default_rng(int(seed))
        return np.stack([rng.permuted(base, axis=1) for _ in range(epochs)]).astype(np.int32)
    seeds = [int(s) for s in np.asarray(seed).ravel()]
    if len(seeds) != runs:
        raise ValueError(f"seed must be one number or one per run ({runs}), got {len(seeds)}.")
    per_seed = {}
    for s in set(seeds):
        rng = np.random.default_rng(s)
        per_seed[s] = np.stack([rng.permutation(n) for _ in range(epochs)])
    return np.stack([per_seed[s] for s in seeds], axis=1).astype(np.int32)


def _copy(weights: Weights) -> Weights:
    return [(np.array(k, np.float32), np.array(b, np.float32)) for k, b in weights]


def _check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes lists the width of every layer from input to output (at least "
                         f"two positive numbers, e.g. (1, 10, 1)), got {sizes}.")
    if sizes[-1] != 1:
        raise ValueError(f"The ensemble fits one output per network; the last size must be 1, "
                         f"got {sizes[-1]}.")
    return sizes


def _check_runs(runs: int) -> None:
    if int(runs) < 1:
        raise ValueError(f"An ensemble needs at least one run, got runs={runs}.")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {activation!r}; choose one of "
                         f"{', '.join(ACTIVATIONS)}.")


def _check_weights(weights: Weights) -> int:
    if not weights:
        raise ValueError("weights is empty; create them with glorot_weights(sizes, runs).")
    runs = weights[0][0].shape[0]
    _check_runs(runs)
    previous = weights[0][0].shape[1]
    for i, (k, b) in enumerate(weights):
        if k.ndim != 3 or b.ndim != 2 or k.shape[0] != runs or b.shape[0] != runs:
            raise ValueError(f"Layer {i}: kernels must be (runs, n_in, n_out) and biases "
                             f"(runs, n_out) with the same runs, got {k.shape} and {b.shape}.")
        if k.shape[1] != previous or b.shape[1] != k.shape[2]:
            raise ValueError(f"Layer {i}: shapes {k.shape} and {b.shape} do not chain with the "
                             f"layer before (width {previous}).")
        previous = k.shape[2]
    if previous != 1:
        raise ValueError(f"The last layer must have one output unit, got {previous}.")
    return runs


def _check_data(x: np.ndarray, y: np.ndarray, runs: int,
                n_in: int) -> tuple[np.ndarray, np.ndarray, bool]:
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    per_run = y.ndim == 2
    if y.ndim not in (1, 2) or y.shape[-1] == 0:
        raise ValueError(f"y must be (n,) shared by all runs or (runs, n), with n > 0; got "
                         f"shape {y.shape}.")
    if per_run and y.shape[0] != runs:
        raise ValueError(f"y has {y.shape[0]} rows but the ensemble has {runs} runs; pass one "
                         "row of targets per run, or a 1-D y shared by all runs.")
    lead = y.shape
    if x.shape == lead and n_in == 1:
        x = x[..., None]
    if x.shape != lead + (n_in,):
        raise ValueError(f"x and y do not match: with y of shape {y.shape} and {n_in} input "
                         f"feature(s), x must have shape {lead + (n_in,)}"
                         f"{' or ' + str(lead) if n_in == 1 else ''}, got {x.shape}.")
    return x, y, per_run


def _per_run(value, runs: int, name: str) -> np.ndarray:
    arr = np.asarray(value, np.float32)
    if arr.ndim == 0:
        return np.full(runs, arr, np.float32)
    if arr.shape != (runs,):
        raise ValueError(f"{name} must be one value or one per run ({runs}), got shape "
                         f"{arr.shape}.")
    return arr


def _per_run_loss(loss, runs: int) -> np.ndarray:
    names = [loss] * runs if isinstance(loss, str) else list(loss)
    if len(names) != runs:
        raise ValueError(f"loss must be one name or one per run ({runs}), got {len(names)}.")
    unknown = sorted({n for n in names if n not in LOSSES})
    if unknown:
        raise ValueError(f"Unknown loss {unknown}; choose {' or '.join(LOSSES)}.")
    return np.array([n == "absolute" for n in names], np.float32)


# ------------------------------------------------------------------ full-batch gradient descent


def train_full_batch(x: np.ndarray, y: np.ndarray, weights: Weights, *,
                     l1: float | Sequence[float] = 0.0, l2: float | Sequence[float] = 0.0,
                     loss: str | Sequence[str] = "absolute", lr: float = 0.01,
                     lr_end: float | None = None, steps: int = 1000,
                     activation: str = "linear") -> EnsembleResult:
    """Train every network of an ensemble by full-batch gradient descent, all runs at once.

    Each step moves every run along the gradient of its own objective, the mean data loss over
    all its samples plus ``l1 * sum|W| + l2 * sum W**2`` on the kernels (biases are not
    penalised; the subgradient of ``|w|`` at 0 is taken as 0). The step size falls
    geometrically from ``lr`` at the first step to ``lr_end`` at the last, which lets the
    absolute loss and the L1 penalty, whose gradients do not shrink near their kinks, settle.
    Unlike batch-size-1 SGD there is no sample order: the result depends only on the data and
    the initial weights.

    Args:
        x: training inputs shared by all runs, ``(n,)`` or ``(n, n_in)``; or one set per
            run, ``(runs, n)`` or ``(runs, n, n_in)`` (then ``y`` is ``(runs, n)``).
        y: targets, ``(n,)`` or ``(runs, n)``.
        weights: initial ensemble weights (not modified).
        l1: L1 penalty coefficient, one value or one per run.
        l2: L2 penalty coefficient, one value or one per run.
        loss: ``"absolute"`` or ``"squared"``, one name or one per run.
        lr: step size of the first step.
        lr_end: step size of the last step; ``None`` keeps ``lr`` constant.
        steps: number of full-batch steps.
        activation: hidden activation, one of ``ACTIVATIONS``.

    Returns:
        An ``EnsembleResult`` whose ``history`` is the data loss before each step,
        shape ``(steps, runs)``.
    """
    runs = _check_weights(weights)
    x, y, per_run_data = _check_data(x, y, runs, weights[0][0].shape[1])
    _check_activation(activation)
    lr_end = lr if lr_end is None else lr_end
    if lr <= 0 or lr_end <= 0:
        raise ValueError(f"Step sizes must be positive, got lr={lr}, lr_end={lr_end}.")
    if int(steps) < 1:
        raise ValueError(f"Take at least one step, got steps={steps}.")
    l1_r, l2_r = _per_run(l1, runs, "l1"), _per_run(l2, runs, "l2")
    if np.any(l1_r < 0) or np.any(l2_r < 0):
        raise ValueError("Penalty coefficients cannot be negative (a negative lambda rewards "
                         f"large weights); got l1={l1}, l2={l2}. Use 0 to switch a penalty off.")
    is_abs = _per_run_loss(loss, runs)
    if not per_run_data:
        x, y = np.broadcast_to(x, (runs,) + x.shape), np.broadcast_to(y, (runs,) + y.shape)
    rates = lr * (lr_end / lr) ** (np.arange(int(steps)) / max(int(steps) - 1, 1))
    descend = _compiled_full_batch(len(weights), activation)
    kernels, biases, history = descend(
        [tf.constant(k, tf.float32) for k, _ in weights],
        [tf.constant(b, tf.float32) for _, b in weights],
        tf.constant(x, tf.float32), tf.constant(y, tf.float32),
        *(tf.constant(v, tf.float32) for v in (l1_r, l2_r, is_abs, rates)))
    trained = [(k.numpy(), b.numpy()) for k, b in zip(kernels, biases)]
    return EnsembleResult(trained, history.numpy())


@functools.cache
def _compiled_full_batch(n_layers: int, activation: str):
    """Build (once per depth and activation) the compiled full-batch descent loop."""

    def objective(kernels, biases, x, y, l1, l2, is_abs):
        a = x  # (R, n, n_in)
        for i in range(n_layers):
            a = tf.einsum("rni,rio->rno", a, kernels[i]) + biases[i][:, None, :]
            if i < n_layers - 1:
                a = _tf_activation(a, activation)[0]
        residual = a[..., 0] - y
        data_loss = tf.reduce_mean(is_abs[:, None] * tf.abs(residual)
                                   + (1.0 - is_abs[:, None]) * tf.square(residual), axis=1)
        penalty = tf.add_n([l1 * tf.reduce_sum(tf.abs(k), axis=[1, 2])
                            + l2 * tf.reduce_sum(tf.square(k), axis=[1, 2]) for k in kernels])
        return data_loss, penalty

    def run(kernels, biases, x, y, l1, l2, is_abs, rates):
        def step(t, kernels, biases, history):
            with tf.GradientTape() as tape:
                tape.watch(kernels + biases)
                data_loss, penalty = objective(kernels, biases, x, y, l1, l2, is_abs)
                total = tf.reduce_sum(data_loss + penalty)  # runs are independent
            grads = tape.gradient(total, kernels + biases)
            kernels = [k - rates[t] * g for k, g in zip(kernels, grads[:n_layers])]
            biases = [b - rates[t] * g for b, g in zip(biases, grads[n_layers:])]
            return t + 1, kernels, biases, history.write(t, data_loss)

        _, kernels, biases, history = tf.while_loop(
            lambda t, *_: t < tf.shape(rates)[0], step,
            (tf.constant(0), kernels, biases, tf.TensorArray(tf.float32, size=tf.shape(rates)[0])))
        return kernels, biases, history.stack()

    return tf.function(run, reduce_retracing=True, jit_compile=True)
