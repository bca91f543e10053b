"""Repeated small training runs: MLP builder, tf.data pipeline, compiled loop, cache, statistics.

Used by the RReLU chapter to train one perceptron per (activation, batch norm, seed) and to
compare the results over seeds. Every run is cached on disk, keyed on everything that changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from helpers import activations, config

CONFIGS: dict[str, tuple[str, dict]] = {
    "relu": ("relu", {}),
    "leaky_relu_100": ("leaky_relu", {"negative_slope": 1 / 100}),
    "leaky_relu_5.5": ("leaky_relu", {"negative_slope": 1 / 5.5}),
    "prelu": ("prelu", {}),
    "rrelu": ("rrelu", {"lower": 3.0, "upper": 8.0}),
    "elu": ("elu", {}),
}
"""The RReLU paper's activations plus ELU: book name -> (activation name, parameters).

Leaky ReLU's ``a`` is a divisor as in Xu et al. (2015): ``a = 100`` is a slope of 0.01.
"""

DATASETS: tuple[str, ...] = ("fashion_mnist", "mnist")
"""Datasets ``load_flat_images`` knows (MNIST only with an internet connection)."""

_CACHE_VERSION = 1  # bump when the training code changes what a cached run would contain


def progress_enabled() -> bool:
    """Return True in live sessions; False in book builds (``BOOK_BUILD=1``) and at quick scale."""
    return os.environ.get("BOOK_BUILD", "0") != "1" and not config.QUICK


def load_flat_images(dataset: str = "fashion_mnist", n_train: int | None = None,
                     n_test: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Return flattened float32 images in [0, 1] and int32 labels, optionally subsampled.

    Args:
        dataset: ``"fashion_mnist"`` (offline, Debian package ``dataset-fashion-mnist``) or
            ``"mnist"`` (needs an internet connection for Keras' download).
        n_train: how many training images to keep (a random subset); None keeps all.
        n_test: how many test images to keep (a random subset); None keeps all.
        seed: seed of the subset choice (the same subset for every run).

    Returns:
        A dict with ``x_train``, ``y_train``, ``x_test``, ``y_test`` and ``name``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if dataset == "fashion_mnist":
        from helpers import data

        (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    else:
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as err:  # Keras raises several kinds when the download fails
            raise RuntimeError(
                "MNIST is not available offline: `keras.datasets.mnist.load_data()` could not "
                "download it. Connect to the internet, or use dataset='fashion_mnist' (Debian "
                "package `dataset-fashion-mnist`)."
            ) from err
    rng = np.random.default_rng(seed)
    out = {"name": dataset}
    for split, x, y, n in (("train", x_train, y_train, n_train), ("test", x_test, y_test, n_test)):
        if n is not None and not 1 <= n <= len(x):
            raise ValueError(f"n_{split} must be between 1 and {len(x)} for {dataset}, got {n}.")
        index = np.sort(rng.permutation(len(x))[:n]) if n is not None else np.arange(len(x))
        out[f"x_{split}"] = (x[index].reshape(len(index), -1) / 255.0).astype(np.float32)
        out[f"y_{split}"] = y[index].astype(np.int32)
    return out


def build_mlp(activation: str, *, batch_norm: bool = False, hidden: tuple[int, ...] = (1024, 128),
              input_dim: int = 784, num_classes: int = 10, seed: int = 0,
              bn_momentum: float = 0.9):
    """Return a perceptron: ``[Dense -> (BatchNorm) -> activation]`` per hidden layer, then logits.

    Args:
        activation: a key of ``CONFIGS`` (e.g. ``"leaky_relu_5.5"``) or a name of
            ``helpers.activations.ACTIVATIONS`` with its default parameters.
        batch_norm: insert batch normalisation between each hidden Dense layer and activation.
        hidden: widths of the hidden layers (the RReLU post: 1024 and 128).
        input_dim: number of input features (784 for 28x28 images).
        num_classes: number of output logits.
        seed: seeds every initializer (and RReLU's noise), so that two activations trained
            with the same seed start from the same weights.
        bn_momentum: momentum of the batch-norm moving statistics.

    Returns:
        A ``keras.Sequential`` returning logits.
    """
    import keras

    name, params = _resolve(activation)
    if not hidden or any(int(w) < 1 for w in hidden):
        raise ValueError(f"hidden must list positive layer widths, got {hidden!r}.")
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum}.")
    layers = [keras.Input((input_dim,))]
    for i, width in enumerate(hidden):
        init = keras.initializers.GlorotUniform(seed=seed * 1000 + i)
        layers.append(keras.layers.Dense(int(width), use_bias=not batch_norm,
                                         kernel_initializer=init))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=bn_momentum))
        layer_params = dict(params, seed=seed * 1000 + 500 + i) if name == "rrelu" else params
        layers.append(activations.activation_layer(name, **layer_params))
    out_init = keras.initializers.GlorotUniform(seed=seed * 1000 + len(hidden))
    layers.append(keras.layers.Dense(num_classes, kernel_initializer=out_init))
    return keras.Sequential(layers)


def _resolve(activation: str) -> tuple[str, dict]:
    if activation in CONFIGS:
        return CONFIGS[activation]
    if activation in activations.ACTIVATIONS:
        return activation, {}
    raise ValueError(f"Unknown activation {activation!r}; choose one of "
                     f"{', '.join(CONFIGS)} (or {', '.join(activations.ACTIVATIONS)}).")


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0):
    """Return a cached, (optionally) shuffled, batched and prefetched ``tf.data.Dataset``.

    Args:
        x: features, shape ``(n, d)``.
        y: integer labels, shape ``(n,)``.
        batch_size: examples per batch.
        shuffle: reshuffle the examples on every pass (training).
        seed: seed of the shuffle.

    Returns:
        A dataset of ``(x_batch, y_batch)`` pairs.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if len(x) != len(y):
        raise ValueError(f"x and y need the same length, got {len(x)} and {len(y)}.")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (and its cache key)."""

    activation: str
    batch_norm: bool
    seed: int
    epochs: int = 10
    batch_size: int = 60
    learning_rate: float = 1e-4
    hidden: tuple[int, ...] = (1024, 128)
    bn_momentum: float = 0.9
    n_eval_train: int = 2000

    def __post_init__(self):
        _resolve(self.activation)
        for field in ("epochs", "batch_size", "n_eval_train"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be a positive integer, got "
                                 f"{getattr(self, field)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")


def _fingerprint(data: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(data[key]).tobytes())
    return digest.hexdigest()[:16]


def cache_key(run: RunConfig, data: dict[str, np.ndarray]) -> str:
    """Return the cache key of a run on a dataset: a hash of the configuration and the data."""
    payload = {"run": asdict(run), "data": _fingerprint(data), "version": _CACHE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def evaluate(model, ds) -> tuple[float, float]:
    """Return the mean cross-entropy and the accuracy of ``model`` in inference mode.

    Args:
        model: a Keras model returning logits.
        ds: a dataset of ``(x_batch, y_batch)`` pairs, e.g. from ``make_dataset``.

    Returns:
        ``(loss, accuracy)`` averaged over every example.
    """
    import tensorflow as tf

    total_loss, total_correct, count = 0.0, 0, 0
    for xb, yb in ds:
        logits = model(xb, training=False)
        losses = tf.keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
        total_loss += float(tf.reduce_sum(losses))
        total_correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32)
                                                   == yb, tf.int32)))
        count += int(xb.shape[0])
    return total_loss / count, total_correct / count


def train_run(run: RunConfig, data: dict[str, np.ndarray], *, cache_dir: Path | None = None,
              progress: bool | None = None) -> dict:
    """Train one perceptron and return its learning curves (or read them from the cache).

    Args:
        run: the configuration (activation, batch norm, seed, epochs, ...).
        data: the output of ``load_flat_images``.
        cache_dir: folder of cached runs; None trains without caching.
        progress: show a progress bar; None asks ``progress_enabled()``.

    Returns:
        A dict with per-epoch lists ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``
        (inference mode; train metrics on the first ``n_eval_train`` training images), plus
        ``seconds`` (training time) and ``cached`` (True if read from disk).
    """
    return train_runs([run], data, cache_dir=cache_dir, progress=progress)[0]


def train_runs(runs: list[RunConfig], data: dict[str, np.ndarray], *,
               cache_dir: Path | None = None, progress: bool | None = None) -> list[dict]:
    """Train several perceptrons (or read them from the cache), one compiled step per network.

    Runs that differ only in their seed (and epochs) share one model, optimizer and compiled
    step: before each run every variable is reset to the values a fresh build with that seed
    would have, so the result is the same as ``train_run`` on each, without tracing the step
    again for every seed.

    Args:
        runs: the configurations, in any order.
        data: the output of ``load_flat_images``.
        cache_dir: folder of cached runs; None trains without caching.
        progress: show progress bars; None asks ``progress_enabled()``.

    Returns:
        One dict per run, in the order of ``runs`` (see ``train_run``).
    """
    progress = progress_enabled() if progress is None else progress
    trainers: dict[tuple, _Trainer] = {}
    results = []
    for run in runs:
        path = Path(cache_dir) / f"{cache_key(run, data)}.json" if cache_dir is not None else None
        if path is not None and path.is_file():
            results.append(dict(json.loads(path.read_text()), cached=True))
            continue
        key = (run.activation, run.batch_norm, tuple(run.hidden), run.bn_momentum,
               run.learning_rate)
        if key not in trainers:
            trainers[key] = _Trainer(run, data)
        history = trainers[key].train(run, data, progress)
        if path is not None:
            path.write_text(json.dumps(history))
        results.append(dict(history, cached=False))
    return results


class _Trainer:
    """A model, its Adam optimizer and a compiled step, reset to a seed's start before each run."""

    def __init__(self, run: RunConfig, data: dict[str, np.ndarray]):
        import keras

        self.dims = {"input_dim": data["x_train"].shape[1],
                     "num_classes": int(data["y_train"].max()) + 1}
        self.model = self._build(run, run.seed)
        self.optimizer = keras.optimizers.Adam(run.learning_rate)
        self.optimizer.build(self.model.trainable_variables)
        self.optimizer_start = [v.numpy() for v in self.optimizer.variables]
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.step = compiled_train_step(self.model, self.optimizer, loss_fn)

    def _build(self, run: RunConfig, seed: int):
        return build_mlp(run.activation, batch_norm=run.batch_norm, hidden=run.hidden,
                         seed=seed, bn_momentum=run.bn_momentum, **self.dims)

    def reset(self, run: RunConfig) -> None:
        # Weights, batch-norm statistics and RReLU's noise state of a fresh build with this seed;
        # Adam's step count and moments back to their initial values.
        fresh = self._build(run, run.seed)
        for var, value in zip(self.model.variables, fresh.variables, strict=True):
            var.assign(value)
        for var, value in zip(self.optimizer.variables, self.optimizer_start, strict=True):
            var.assign(value)

    def train(self, run: RunConfig, data: dict[str, np.ndarray], progress: bool) -> dict:
        config.set_seed(run.seed)
        self.reset(run)
        train_ds = make_dataset(data["x_train"], data["y_train"], run.batch_size, shuffle=True,
                                seed=run.seed)
        n_eval = min(run.n_eval_train, len(data["x_train"]))
        eval_train = make_dataset(data["x_train"][:n_eval], data["y_train"][:n_eval], 1000)
        eval_test = make_dataset(data["x_test"], data["y_test"], 1000)
        history = {key: [] for key in ("train_loss", "train_acc", "test_loss", "test_acc")}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=run.epochs, leave=False,
                       desc=f"{run.activation}{' +BN' if run.batch_norm else ''} seed {run.seed}")
        start = time.perf_counter()
        for _ in range(run.epochs):
            for xb, yb in train_ds:
                self.step(xb, yb)
            for split, ds in (("train", eval_train), ("test", eval_test)):
                loss, acc = evaluate(self.model, ds)
                history[f"{split}_loss"].append(loss)
                history[f"{split}_acc"].append(acc)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(test_acc=f"{history['test_acc'][-1]:.3f}")
        if bar is not None:
            bar.close()
        history["seconds"] = time.perf_counter() - start
        return history


def compiled_train_step(model, optimizer, loss_fn):
    """Return a ``tf.function`` doing one optimisation step on a batch; it returns the loss.

    Args:
        model: a Keras model returning logits.
        optimizer: a Keras optimizer.
        loss_fn: a Keras loss taking ``(y_true, logits)``.

    Returns:
        ``step(x_batch, y_batch) -> loss`` (compiled once per model).
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def paired_interval(a, b, confidence: float = 0.95) -> tuple[float, float, float]:
    """Return the mean of ``a - b`` over paired seeds and its t-based confidence interval.

    Args:
        a: one value per seed for the first method.
        b: one value per seed for the second method (same seeds, same order).
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``(mean_difference, low, high)``; the difference is "within seed noise" when
        ``low <= 0 <= high``.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired_interval needs two 1-D arrays of the same length >= 2 (one "
                         f"value per seed), got shapes {a.shape} and {b.shape}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    diff = a - b
    mean = float(diff.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diff) - 1) * diff.std(ddof=1)
                 / np.sqrt(len(diff)))
    return mean, mean - half, mean + half
