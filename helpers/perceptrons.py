"""Perceptrons trained many seeds at a time: the MLP builder, flat-image data, one compiled step.

``build_mlp`` is the Keras perceptron of the RReLU chapter; ``SeedStack`` holds S of them (one
per seed) as one model whose weights carry a leading seed axis, and ``train_runs`` trains and
caches runs through it, one compiled step updating every seed of a configuration at once.
"""

from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from helpers import activations, config

CONFIGS: dict[str, tuple[str, dict]] = {
    "relu": ("relu", {}),
    "leaky_relu_100": ("leaky_relu", {"negative_slope": 1 / 100}),
    "leaky_relu_5.5": ("leaky_relu", {"negative_slope": 1 / 5.5}),
    "leaky_relu_mean": ("leaky_relu", {"negative_slope": math.log(8 / 3) / 5}),
    "prelu": ("prelu", {}),
    "rrelu": ("rrelu", {"lower": 3.0, "upper": 8.0}),
    "elu": ("elu", {}),
    "gelu": ("gelu", {}),
    "swish": ("swish", {}),
}
"""The RReLU paper's activations and a few more: book name -> (activation name, parameters).

Leaky ReLU's ``a`` is a divisor as in Xu et al. (2015): ``a = 100`` is a slope of 0.01.
``leaky_relu_mean`` has the slope RReLU has on average in training, E[1/a] = ln(8/3)/5 for
a ~ U(3, 8), where RReLU's test-time slope is 1/5.5.
"""

DATASETS: tuple[str, ...] = ("fashion_mnist", "mnist")
"""Datasets ``load_flat_images`` knows (MNIST only with an internet connection)."""

SCHEDULES: tuple[str, ...] = ("constant", "cosine")
"""Learning-rate schedules of ``RunConfig``: constant, or cosine decay to zero at the last step."""

INITIALIZERS: tuple[str, ...] = ("glorot_uniform", "he_normal")
"""Kernel initialisations ``build_mlp`` knows (Glorot & Bengio 2010; He et al. 2015)."""


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
        # float32 throughout (no float64 copy of 60,000 images); the same bits as x / 255.0
        out[f"x_{split}"] = x[index].reshape(len(index), -1).astype(np.float32) / np.float32(255)
        out[f"y_{split}"] = y[index].astype(np.int32)
    return out


def validation_split(data: dict[str, np.ndarray], n_val: int) -> tuple[dict, dict]:
    """Carve a validation set off the end of the training images, for choosing settings.

    Args:
        data: the output of ``load_flat_images``.
        n_val: how many of the last training images to hold out (at least 1, and fewer than
            the training images).

    Returns:
        ``(train, val)``: ``train`` is ``data`` with only the first ``len - n_val`` training
        images (its test set unchanged); ``val`` has the same training images and the held-out
        ones as its test set, so that ``train_runs(plans, val)`` scores runs on validation
        images that no run trains on. Both share memory with ``data`` (no copies).
    """
    n = len(data["x_train"])
    if isinstance(n_val, bool) or not isinstance(n_val, int | np.integer) or not 1 <= n_val < n:
        raise ValueError(f"n_val must be an integer between 1 and {n - 1} (the {n} training "
                         f"images minus at least one to train on), got {n_val!r}.")
    keep = n - int(n_val)
    train = dict(data, x_train=data["x_train"][:keep], y_train=data["y_train"][:keep])
    val = dict(train, x_test=data["x_train"][keep:], y_test=data["y_train"][keep:],
               name=f"{data.get('name', 'data')} validation")
    return train, val


def build_mlp(activation: str, *, batch_norm: bool = False, hidden: tuple[int, ...] = (1024, 128),
              input_dim: int = 784, num_classes: int = 10, seed: int = 0,
              bn_momentum: float = 0.9, initializer: str = "glorot_uniform"):
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
        bn_momentum: momentum of the batch-norm moving statistics (Keras' default is 0.99).
        initializer: kernel initialisation, one of ``INITIALIZERS``.

    Returns:
        A ``keras.Sequential`` returning logits.
    """
    import keras

    name, params = _resolve(activation)
    if not hidden or any(int(w) < 1 for w in hidden):
        raise ValueError(f"hidden must list positive layer widths, got {hidden!r}.")
    if not 0.0 <= bn_momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1), got {bn_momentum}.")
    if initializer not in INITIALIZERS:
        raise ValueError(f"Unknown initializer {initializer!r}; choose one of "
                         f"{', '.join(INITIALIZERS)}.")
    make_init = {"glorot_uniform": keras.initializers.GlorotUniform,
                 "he_normal": keras.initializers.HeNormal}[initializer]
    layers = [keras.Input((input_dim,))]
    for i, width in enumerate(hidden):
        layers.append(keras.layers.Dense(int(width), use_bias=not batch_norm,
                                         kernel_initializer=make_init(seed=seed * 1000 + i)))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=bn_momentum))
        layer_params = dict(params, seed=seed * 1000 + 500 + i) if name == "rrelu" else params
        layers.append(activations.activation_layer(name, **layer_params))
    out_init = make_init(seed=seed * 1000 + len(hidden))
    layers.append(keras.layers.Dense(num_classes, kernel_initializer=out_init))
    return keras.Sequential(layers)


def _resolve(activation: str) -> tuple[str, dict]:
    if activation in CONFIGS:
        return CONFIGS[activation]
    if activation in activations.ACTIVATIONS:
        return activation, {}
    others = [name for name in activations.ACTIVATIONS if name not in CONFIGS]
    raise ValueError(f"Unknown activation {activation!r}; choose one of "
                     f"{', '.join(list(CONFIGS) + others)}.")


def train_subset(n_available: int, n: int, seed: int) -> np.ndarray:
    """Return a seed's own training subset: ``n`` sorted indices out of ``n_available``.

    The subset depends only on ``(n_available, n, seed)``, so every configuration run with the
    same seed trains on the same images (the comparisons stay paired), and different seeds
    draw different images.

    Args:
        n_available: number of training images to draw from.
        n: subset size, between 1 and ``n_available``.
        seed: the run's seed.

    Returns:
        An int64 array of ``n`` distinct indices in increasing order.
    """
    if not 1 <= n <= n_available:
        raise ValueError(f"A training subset needs between 1 and {n_available} images (the "
                         f"training images available), got n_train={n}.")
    rng = np.random.default_rng([seed, _SUBSET_STREAM])
    return np.sort(rng.choice(n_available, size=n, replace=False)).astype(np.int64)


_SUBSET_STREAM = 0x5EED  # keeps the subset draw apart from batch_order's (seed, epoch) streams


def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Return one epoch's shuffled example indices of a seed, cut into batches.

    Args:
        n: number of training examples.
        batch_size: examples per batch; ``n`` must be a multiple of it.
        seed: the run's seed (each seed has its own data order).
        epoch: the epoch (0-based); every epoch reshuffles.

    Returns:
        An int32 array of shape ``(n // batch_size, batch_size)``.
    """
    if batch_size < 1 or n % batch_size:
        raise ValueError(f"batch_size must be positive and divide the {n} training examples, "
                         f"got {batch_size}; choose n_train as a multiple of the batch size.")
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)
    return order.reshape(n // batch_size, batch_size)


class SeedStack:
    """S perceptrons of one architecture as one model: every weight has a leading seed axis.

    Built from S Keras models of ``build_mlp`` (one per seed), whose weights it stacks, so that
    each seed starts exactly where its Keras model does. Dense layers become batched einsums;
    batch norm, PReLU and RReLU keep their own statistics, slopes and noise per seed (RReLU's
    noise is drawn from the seed and the step, so a seed's run does not depend on which other
    seeds share the stack). One compiled step updates every seed, each on its own batch, with the
    update rule of the given Keras optimizer (Adam or plain SGD), applied elementwise so that it
    is S separate updates. The step is a pure function of the weights and optimizer state (held
    as tensors, not captured variables), so a finished stack frees all its memory.

    Args:
        models: Keras models of ``build_mlp`` with the same architecture, one per seed.
        noise_seeds: one integer per model seeding its RReLU noise.
        optimizer: a fresh ``keras.optimizers.Adam`` or ``keras.optimizers.SGD`` (no momentum,
            weight decay or clipping); its learning rate may be a schedule.
        jit_compile: compile the step with XLA.
        l2: strength of an L2 penalty ``l2 * sum(kernel ** 2)`` on every Dense kernel, added to
            each seed's loss (0: none).
    """

    def __init__(self, models: list, noise_seeds: list[int], optimizer, *,
                 jit_compile: bool = True, l2: float = 0.0):
        import tensorflow as tf

        if not models or len(models) != len(noise_seeds):
            raise ValueError(f"SeedStack needs one noise seed per model, got {len(models)} "
                             f"models and {len(noise_seeds)} seeds.")
        kinds = [[type(layer).__name__ for layer in m.layers] for m in models]
        if any(k != kinds[0] for k in kinds):
            raise ValueError("SeedStack needs models of one architecture (the same layers).")
        if not float(l2) >= 0:
            raise ValueError(f"l2 must be a non-negative penalty strength, got {l2}.")
        self.l2 = float(l2)
        self.size = len(models)
        self.noise_seeds = tf.constant(np.asarray(noise_seeds, np.int64))
        self.rule = _update_rule(optimizer)
        self.layers = []  # (kind, template layer, indices into self.values)
        self.values, trainable = [], []
        for i, layer in enumerate(models[0].layers):
            indices = []
            for j, w in enumerate(layer.weights):
                indices.append(len(self.values))
                trainable.append(bool(w.trainable))
                self.values.append(tf.constant(np.stack([m.layers[i].weights[j].numpy()
                                                         for m in models])))
            self.layers.append((type(layer).__name__, layer, indices))
        self.trainable = [i for i, t in enumerate(trainable) if t]
        self.slots = [[tf.zeros_like(self.values[i]) for i in self.trainable]
                      for _ in range(self.rule["slots"])]
        self.steps = 0
        self._step = tf.function(self._train_step, jit_compile=jit_compile)
        self._logits = tf.function(self._inference_logits, jit_compile=jit_compile)

    def _apply(self, values, h, training: bool, shared: bool, step, slope=None):
        # shared: h is (batch, features), the same input for every seed (evaluation);
        # otherwise (S, batch, features), each seed's own batch (training).
        # slope: RReLU's negative slope in inference (None: the layer's 2 / (lower + upper)).
        # Returns the output and the batch-norm moving statistics updated in training.
        import tensorflow as tf

        updated = {}
        for depth, (kind, layer, w) in enumerate(self.layers):
            if kind == "Dense":
                h = tf.einsum("bi,sio->sbo" if shared else "sbi,sio->sbo", h, values[w[0]])
                shared = False
                if len(w) > 1:
                    h = h + values[w[1]][:, None, :]
            elif kind == "BatchNormalization":
                gamma, beta, moving_mean, moving_var = (values[i] for i in w)
                if training:
                    mean, var = tf.nn.moments(h, axes=[1])
                    m = layer.momentum
                    updated[w[2]] = moving_mean * m + mean * (1 - m)
                    updated[w[3]] = moving_var * m + var * (1 - m)
                else:
                    mean, var = moving_mean, moving_var
                inv = gamma * tf.math.rsqrt(var + layer.epsilon)
                h = h * inv[:, None, :] + (beta - mean * inv)[:, None, :]
            elif kind == "PReLU":
                alpha = values[w[0]][:, None, :]
                h = tf.nn.relu(h) - alpha * tf.nn.relu(-h)
            elif kind == "RReLU":
                if training:  # one divisor per element, per seed, from (noise seed, step, layer)
                    draws = [tf.random.stateless_uniform(
                        tf.shape(h)[1:], tf.stack([self.noise_seeds[s], step * 64 + depth]),
                        minval=layer.lower, maxval=layer.upper, alg="philox")
                        for s in range(self.size)]
                    h = tf.where(h >= 0, h, h / tf.stack(draws))
                else:
                    h = tf.where(h >= 0, h, h * (layer.inference_slope if slope is None
                                                 else slope))
            elif kind != "InputLayer":  # stateless elementwise: ReLU, LeakyReLU, ELU, Activation
                h = layer(h)
        return h, updated

    def _train_step(self, values, slots, step, x, y):
        import tensorflow as tf

        params = [values[i] for i in self.trainable]
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits, updated = self._apply(values, x, True, False, step)
            per_seed = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), axis=1)
            total = tf.reduce_sum(per_seed)  # seed s's weights see only seed s's loss
            if self.l2:  # each seed's kernel slice only feels its own seed's penalty
                total += self.l2 * tf.add_n([tf.reduce_sum(tf.square(values[w[0]]))
                                             for kind, _, w in self.layers if kind == "Dense"])
        grads = tape.gradient(total, params)
        new_params, new_slots = _apply_rule(self.rule, params, grads, slots, step)
        values = list(values)
        for i, value in updated.items():
            values[i] = value
        for i, value in zip(self.trainable, new_params):
            values[i] = value
        return values, new_slots, per_seed

    def _inference_logits(self, values, x, slope=None):
        # x: (n, features) shared by every seed, or (S, n, features), each seed its own
        return self._apply(values, x, False, x.shape.rank == 2, 0, slope)[0]

    def _forward(self, h, training: bool, shared: bool):
        # The network's output on h with the current weights (no update); for tests.
        import tensorflow as tf

        return self._apply(self.values, tf.convert_to_tensor(h), training, shared,
                           tf.constant(self.steps, tf.int64))[0]

    def train_step(self, x, y) -> np.ndarray:
        """Do one optimisation step of every seed on its own batch.

        Args:
            x: inputs, shape ``(S, batch, features)``.
            y: integer labels, shape ``(S, batch)``.

        Returns:
            Each seed's mean cross-entropy on its batch before the step, shape ``(S,)``.
        """
        import tensorflow as tf

        self.values, self.slots, loss = self._step(self.values, self.slots,
                                                   tf.constant(self.steps, tf.int64), x, y)
        self.steps += 1
        return loss

    def logits(self, x) -> np.ndarray:
        """Return every seed's logits in inference mode, shape ``(S, n, classes)``."""
        import tensorflow as tf

        return self._logits(self.values, tf.convert_to_tensor(x))

    def evaluate(self, x: np.ndarray, y: np.ndarray, chunk: int = 500, *,
                 rrelu_slope: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return every seed's mean cross-entropy and accuracy on ``(x, y)`` in inference mode.

        Args:
            x: inputs, shape ``(n, features)`` shared by every seed, or ``(S, n, features)``,
                each seed scored on its own examples (e.g. its own training subset).
            y: integer labels, shape ``(n,)``, or ``(S, n)`` with per-seed inputs.
            chunk: examples per forward pass (bounds the memory).
            rrelu_slope: RReLU's negative slope in inference (None: ``2 / (lower + upper)``).

        Returns:
            ``(loss, accuracy)``, each of shape ``(S,)``.
        """
        loss, correct = self.score(x, y, chunk, rrelu_slope=rrelu_slope)
        return loss, correct.mean(axis=1)

    def score(self, x: np.ndarray, y: np.ndarray, chunk: int = 500, *,
              rrelu_slope: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return every seed's mean cross-entropy and per-example correctness in inference mode.

        Args:
            x, y, chunk, rrelu_slope: as for :meth:`evaluate`.

        Returns:
            ``(loss, correct)``: loss of shape ``(S,)``, correct a boolean ``(S, n)`` array.
        """
        import tensorflow as tf

        if rrelu_slope is not None and not float(rrelu_slope) >= 0:
            raise ValueError(f"rrelu_slope must be a non-negative slope, got {rrelu_slope}.")
        slope = None if rrelu_slope is None else tf.constant(float(rrelu_slope), tf.float32)

        x, y = np.asarray(x), np.asarray(y)
        own = x.ndim == 3
        if own and (x.shape[0] != self.size or y.shape != x.shape[:2]):
            raise ValueError(f"Per-seed inputs need shape (S={self.size}, n, features) with "
                             f"labels (S, n); got {x.shape} and {y.shape}.")
        if not own and (x.ndim != 2 or y.shape != x.shape[:1]):
            raise ValueError(f"Shared inputs need shape (n, features) with labels (n,); got "
                             f"{x.shape} and {y.shape}.")
        n = x.shape[1] if own else len(x)
        loss, correct = np.zeros(self.size), []
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            part = (slice(None), rows) if own else rows
            xb, yb = x[part], y[part]
            logits = self._logits(self.values, tf.constant(xb), slope)
            labels = np.broadcast_to(yb, logits.shape[:2])
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            loss += tf.reduce_sum(ce, axis=1).numpy()
            correct.append(np.argmax(logits.numpy(), -1) == labels)
        return loss / n, np.concatenate(correct, axis=1)

    def seed_weights(self, s: int) -> list[np.ndarray]:
        """Return seed ``s``'s weights in the order of its Keras model's ``get_weights()``."""
        if not 0 <= s < self.size:
            raise ValueError(f"seed index must be in [0, {self.size}), got {s}.")
        return [v.numpy()[s] for v in self.values]


def _update_rule(optimizer) -> dict:
    # The hyperparameters of a Keras Adam or plain SGD, checked, with its learning rate
    # (a number or a schedule of the step).
    import keras

    config = optimizer.get_config()
    rate = config["learning_rate"]
    if isinstance(rate, dict):
        rate = keras.optimizers.schedules.deserialize(rate)
    extras = {k: config.get(k) for k in ("weight_decay", "clipnorm", "clipvalue",
                                         "global_clipnorm") if config.get(k)}
    if config.get("use_ema"):
        extras["use_ema"] = True
    if isinstance(optimizer, keras.optimizers.Adam) and not config.get("amsgrad") and not extras:
        return {"name": "adam", "rate": rate, "beta_1": config["beta_1"],
                "beta_2": config["beta_2"], "epsilon": config["epsilon"], "slots": 2}
    if (type(optimizer) is keras.optimizers.SGD and not config.get("momentum")
            and not config.get("nesterov") and not extras):
        return {"name": "sgd", "rate": rate, "slots": 0}
    raise ValueError(f"SeedStack applies Adam (without amsgrad) or plain SGD (no momentum), "
                     f"without weight decay, clipping or EMA; got {type(optimizer).__name__} "
                     f"with {extras or config}.")


def _apply_rule(rule: dict, params, grads, slots, step):
    # One elementwise update of every parameter, as Keras' Adam or SGD computes it.
    import tensorflow as tf

    rate = rule["rate"]
    rate = rate(step) if callable(rate) else rate
    rate = tf.cast(rate, tf.float32)
    if rule["name"] == "sgd":
        return [p - rate * g for p, g in zip(params, grads)], slots
    local_step = tf.cast(step + 1, tf.float32)
    beta_1 = tf.constant(rule["beta_1"], tf.float32)
    beta_2 = tf.constant(rule["beta_2"], tf.float32)
    alpha = rate * tf.sqrt(1 - tf.pow(beta_2, local_step)) / (1 - tf.pow(beta_1, local_step))
    new_params, new_m, new_v = [], [], []
    for p, g, m, v in zip(params, grads, slots[0], slots[1]):
        m = m + (g - m) * (1 - beta_1)
        v = v + (tf.square(g) - v) * (1 - beta_2)
        new_params.append(p - (m * alpha) / (tf.sqrt(v) + rule["epsilon"]))
        new_m.append(m)
        new_v.append(v)
    return new_params, [new_m, new_v]


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (and its cache key).

    ``n_train`` 0 trains every seed on all the data's training images; a positive ``n_train``
    trains seed ``s`` on its own ``train_subset(len(x_train), n_train, s)``, the same images
    for that seed in every configuration. ``eval_every`` epochs (and after the last) the run is
    scored in inference mode on the first ``n_eval_train`` of its training images and the
    first ``n_curve_test`` test images (0: all of them), for its learning curves; after the
    last epoch also on every test image, and again at each RReLU inference slope in
    ``test_slopes`` (the same final weights). ``l2`` adds ``l2 * sum(kernel ** 2)`` over the
    Dense kernels to the loss.
    """

    activation: str
    batch_norm: bool
    seed: int
    epochs: int = 10
    batch_size: int = 60
    learning_rate: float = 1e-4
    hidden: tuple[int, ...] = (1024, 128)
    bn_momentum: float = 0.9
    n_eval_train: int = 2000
    eval_every: int = 1
    initializer: str = "glorot_uniform"
    n_curve_test: int = 0
    schedule: str = "constant"
    n_train: int = 0
    l2: float = 0.0
    test_slopes: tuple[float, ...] = ()

    def __post_init__(self):
        _resolve(self.activation)
        if int(self.n_train) < 0:
            raise ValueError(f"n_train must be 0 (every training image, shared by all seeds) or "
                             f"a positive subset size per seed, got {self.n_train}.")
        for field in ("epochs", "batch_size", "n_eval_train", "eval_every"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be a positive integer, got "
                                 f"{getattr(self, field)}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not float(self.l2) >= 0:
            raise ValueError(f"l2 must be a non-negative penalty strength, got {self.l2}.")
        if any(not float(v) >= 0 for v in self.test_slopes):
            raise ValueError(f"test_slopes must be non-negative RReLU slopes, got "
                             f"{self.test_slopes}.")
        if self.test_slopes and _resolve(self.activation)[0] != "rrelu":
            raise ValueError(f"test_slopes re-scores RReLU at other slopes; {self.activation!r} "
                             f"has no RReLU layer.")
        if int(self.n_curve_test) < 0:
            raise ValueError(f"n_curve_test must be 0 (every test image) or positive, got "
                             f"{self.n_curve_test}.")
        if self.initializer not in INITIALIZERS:
            raise ValueError(f"Unknown initializer {self.initializer!r}; choose one of "
                             f"{', '.join(INITIALIZERS)}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)}.")

    def eval_epochs(self) -> list[int]:
        """The epochs (1-based) after which the run is scored."""
        return sorted(set(range(self.eval_every, self.epochs + 1, self.eval_every))
                      | {self.epochs})


def run_key(run: RunConfig, data: dict[str, np.ndarray]) -> str:
    """Return the cache key of a run on a dataset (``config.cache_key`` of the run and its data).

    With a per-seed subset (``run.n_train > 0``) only the seed's own training images enter the
    key, so that a key costs no hash of the whole training set.
    """
    return _run_key(run, data, _test_digest(data))


def _test_digest(data: dict[str, np.ndarray]) -> str:
    return config.cache_key({"test_set": True}, data["x_test"], data["y_test"])


def _run_key(run: RunConfig, data: dict[str, np.ndarray], test_digest: str) -> str:
    index = _train_index(run, len(data["x_train"]))
    x, y = (data["x_train"], data["y_train"]) if index is None else \
        (data["x_train"][index], data["y_train"][index])
    return config.cache_key({"perceptron_run": asdict(run), "test_set": test_digest}, x, y)


def _train_index(run: RunConfig, n_available: int) -> np.ndarray | None:
    # The run's own training images (None: all of them).
    return train_subset(n_available, run.n_train, run.seed) if run.n_train else None


def train_runs(runs: list[RunConfig], data: dict[str, np.ndarray], *,
               cache_dir: Path | None = None, progress: bool | None = None,
               jit_compile: bool = True, max_stack: int | None = None) -> list[dict]:
    """Train perceptrons (or read them from the cache), all seeds of a configuration at once.

    Runs that differ only in their seed are trained together as one ``SeedStack``: each seed
    starts from ``build_mlp(seed=...)``'s weights, trains on its own images (all of them, or
    its own ``train_subset`` when ``RunConfig.n_train > 0``) in its own order
    (``batch_order``) with its own RReLU noise, and is updated by its own Adam (learning rate
    constant or cosine-decayed to zero, ``RunConfig.schedule``), all in one compiled step.

    Args:
        runs: the configurations, in any order.
        data: the output of ``load_flat_images``.
        cache_dir: folder of cached runs (one JSON file per run); None trains without caching.
        progress: show a progress bar per configuration; None asks ``config.is_live()``.
        jit_compile: compile the step with XLA.
        max_stack: train at most this many seeds of a configuration in one stack (None: all
            of them together); smaller stacks lower the peak memory and give the same results
            up to floating-point rounding (a seed's run does not depend on its stack-mates).

    Returns:
        One dict per run, in the order of ``runs``: per-evaluation lists ``epochs``,
        ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (the curves, see
        ``RunConfig``); ``final_test_loss`` and ``final_test_acc`` on every test image,
        ``final_test_correct`` which of them it classified correctly (decode with
        ``correctness``); ``test_slope_acc`` and ``test_slope_correct``, the same at each
        of ``RunConfig.test_slopes``;
        ``batch_loss``, each epoch's mean training-mode loss on its batches; ``seconds``
        (its share of its stack's training time, evaluation included); ``stack`` (seeds
        trained together); ``train_index``, the run's training images as indices into
        ``data["x_train"]`` (only with ``n_train > 0``); ``cached`` (True if read from disk).
    """
    import keras

    progress = config.is_live() if progress is None else progress
    if max_stack is not None and (isinstance(max_stack, bool) or not isinstance(
            max_stack, int | np.integer) or max_stack < 1):
        raise ValueError(f"max_stack must be a positive number of seeds per stack, or None for "
                         f"all seeds of a configuration together; got {max_stack!r}.")
    results: dict[int, dict] = {}
    groups: dict[RunConfig, list[int]] = {}
    for run in runs:
        if run.n_train > len(data["x_train"]):
            raise ValueError(f"n_train={run.n_train} exceeds the {len(data['x_train'])} "
                             f"training images of the data; load more or ask for fewer.")
    digest = _test_digest(data) if cache_dir is not None else ""
    keys = [_run_key(run, data, digest) if cache_dir is not None else "" for run in runs]
    for i, run in enumerate(runs):
        path = Path(cache_dir) / f"{keys[i]}.json" if cache_dir is not None else None
        if path is not None and path.is_file():
            results[i] = dict(json.loads(path.read_text()), cached=True)
        else:
            groups.setdefault(_without_seed(run), []).append(i)
    dims = {"input_dim": data["x_train"].shape[1], "num_classes": int(data["y_train"].max()) + 1}
    stacks = []  # (configuration, its runs trained together), at most max_stack seeds each
    for template, members in groups.items():
        seeds = sorted({runs[i].seed for i in members})
        size = max_stack or len(seeds)
        for start in range(0, len(seeds), size):
            chunk = set(seeds[start:start + size])
            stacks.append((template, [i for i in members if runs[i].seed in chunk]))
    for template, members in stacks:
        seeds = sorted({runs[i].seed for i in members})
        models = [build_mlp(template.activation, batch_norm=template.batch_norm,
                            hidden=template.hidden, seed=s, bn_momentum=template.bn_momentum,
                            initializer=template.initializer, **dims) for s in seeds]
        rate = template.learning_rate
        if template.schedule == "cosine":
            n_seen = template.n_train or len(data["x_train"])
            total = template.epochs * (n_seen // template.batch_size)
            rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total)
        stack = SeedStack(models, [s * 1000 + 500 for s in seeds], keras.optimizers.Adam(rate),
                          jit_compile=jit_compile, l2=template.l2)
        histories = _train_stack(stack, template, seeds, data, progress)
        del stack, models
        gc.collect()  # the stack's compiled step refers back to it (a cycle): free it now
        _return_freed_memory()
        for i in members:
            history = histories[seeds.index(runs[i].seed)]
            if cache_dir is not None:
                (Path(cache_dir) / f"{keys[i]}.json").write_text(
                    json.dumps(history))
            results[i] = dict(history, cached=False)
    return [results[i] for i in range(len(runs))]


def _without_seed(run: RunConfig) -> RunConfig:
    return RunConfig(**dict(asdict(run), seed=0, hidden=tuple(run.hidden),
                            test_slopes=tuple(run.test_slopes)))


def _train_stack(stack: SeedStack, run: RunConfig, seeds: list[int],
                 data: dict[str, np.ndarray], progress: bool) -> list[dict]:
    import tensorflow as tf

    x_train, y_train = data["x_train"], data["y_train"]
    own = [_train_index(RunConfig(**dict(asdict(run), seed=s, hidden=tuple(run.hidden),
                                         test_slopes=tuple(run.test_slopes))), len(x_train))
           for s in seeds]
    if run.n_train:  # keep only the rows some seed trains on; index them locally
        used = np.unique(np.concatenate(own))
        x_all, y_all = tf.constant(x_train[used]), tf.constant(y_train[used])
        local = [np.searchsorted(used, index) for index in own]
    else:
        x_all, y_all = tf.constant(x_train), tf.constant(y_train)
        local = [np.arange(len(x_train)) for _ in seeds]
    n_seen = len(local[0])
    n_eval = min(run.n_eval_train, n_seen)
    if run.n_train:  # each seed scored on the first n_eval of its own training images
        eval_x = np.stack([x_train[index[:n_eval]] for index in own])
        eval_y = np.stack([y_train[index[:n_eval]] for index in own])
    else:
        eval_x, eval_y = x_train[:n_eval], y_train[:n_eval]
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    n_curve = run.n_curve_test or len(data["x_test"])
    histories = [{"epochs": [], "batch_loss": [], **{k: [] for k in keys}} for _ in seeds]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.epochs, leave=False, desc=f"{run.activation}"
                   f"{' +BN' if run.batch_norm else ''}, {len(seeds)} seeds")
    evals = set(run.eval_epochs())
    start = time.perf_counter()
    for epoch in range(run.epochs):
        order = tf.constant(np.stack([index[batch_order(n_seen, run.batch_size, s, epoch)]
                                      for index, s in zip(local, seeds)], axis=1))
        # order: (steps, S, batch) rows of x_all
        losses = [stack.train_step(tf.gather(x_all, idx), tf.gather(y_all, idx))
                  for idx in order]
        batch_loss = np.mean(np.stack(losses), axis=0)
        for s, history in enumerate(histories):
            history["batch_loss"].append(float(batch_loss[s]))
        if epoch + 1 in evals:
            test_loss, test_correct = stack.score(data["x_test"][:n_curve],
                                                  data["y_test"][:n_curve])
            scores = stack.evaluate(eval_x, eval_y) + (test_loss, test_correct.mean(axis=1))
            for s, history in enumerate(histories):
                history["epochs"].append(epoch + 1)
                for key, values in zip(keys, scores):
                    history[key].append(float(values[s]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if n_curve != len(data["x_test"]):  # else the last curve point already saw every test image
        test_loss, test_correct = stack.score(data["x_test"], data["y_test"])
    at_slopes = [stack.score(data["x_test"], data["y_test"], rrelu_slope=v)[1]
                 for v in run.test_slopes]
    for s, history in enumerate(histories):
        history["final_test_loss"] = float(test_loss[s])
        history["final_test_acc"] = float(test_correct[s].mean())
        history["final_test_correct"] = _bits(test_correct[s])
        history["test_slope_acc"] = [float(c[s].mean()) for c in at_slopes]
        history["test_slope_correct"] = [_bits(c[s]) for c in at_slopes]
    seconds = (time.perf_counter() - start) / len(seeds)
    for history, index in zip(histories, own):
        history.update(seconds=seconds, stack=len(seeds))
        if index is not None:
            history["train_index"] = index.tolist()
    return histories


def _bits(correct: np.ndarray) -> str:
    # Per-example correctness as a compact string of 0s and 1s (for the JSON cache).
    return "".join("1" if c else "0" for c in correct)


def correctness(bits: str) -> np.ndarray:
    """Decode a run's ``final_test_correct`` (or ``test_slope_correct``) into booleans.

    Args:
        bits: a string of ``0`` and ``1``, one per test image.

    Returns:
        A boolean array, True where the run classified the image correctly.
    """
    if not isinstance(bits, str) or set(bits) - {"0", "1"}:
        raise ValueError("correctness needs a run's string of 0s and 1s, e.g. "
                         "run['final_test_correct'].")
    return np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")


def _return_freed_memory() -> None:
    # Hand memory freed by a finished stack back to the operating system (glibc keeps freed
    # heap pages otherwise, so the process's peak grows with whatever runs after training).
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
