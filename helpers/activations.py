"""Activations Keras lacks (RReLU in the convention of Xu et al., 2015) and probes of the
signals in a deep Dense stack of activations, plain, normalised or residual."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="book")
class RReLU(keras.layers.Layer):
    """Randomized leaky ReLU with negative part ``x / a`` (Xu et al., 2015).

    In training every element draws its own ``a ~ U(lower, upper)``, anew on every call;
    at inference the negative slope is fixed at ``2 / (lower + upper)`` (1/5.5 for the
    paper's U(3, 8)). PyTorch's ``nn.RReLU`` draws the slope itself, ``U(1/8, 1/3)``, and
    uses the mean slope 11/48 at inference instead.

    Args:
        lower: the smallest divisor ``a``; must be positive.
        upper: the largest divisor ``a``; must be at least ``lower``.
        seed: optional seed for the random divisors.
    """

    def __init__(self, lower: float = 3.0, upper: float = 8.0, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        lower, upper = float(lower), float(upper)
        if lower <= 0:
            raise ValueError(f"RReLU needs lower > 0 (the negative part is x / a), got "
                             f"lower={lower}; the paper uses lower=3.0.")
        if upper < lower:
            raise ValueError(f"RReLU needs upper >= lower, got lower={lower}, upper={upper}; "
                             "the paper uses U(3, 8).")
        self.lower, self.upper, self.seed = lower, upper, seed
        self._seed_generator = keras.random.SeedGenerator(seed)

    @property
    def inference_slope(self) -> float:
        """The negative slope used at inference, ``2 / (lower + upper)``."""
        return 2.0 / (self.lower + self.upper)

    def call(self, inputs, training=None):
        if training:
            divisor = keras.random.uniform(ops.shape(inputs), minval=self.lower,
                                           maxval=self.upper, dtype=inputs.dtype,
                                           seed=self._seed_generator)
            negative = inputs / divisor
        else:
            negative = inputs * self.inference_slope
        return ops.where(inputs >= 0, inputs, negative)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"lower": self.lower, "upper": self.upper, "seed": self.seed})
        return config


ACTIVATIONS: tuple[str, ...] = (
    "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu", "gelu", "swish",
)
"""The activation names the book knows, in the order chapters show them."""


def activation_layer(name: str, **params) -> keras.layers.Layer:
    """Return a fresh Keras layer for an activation named as in ``ACTIVATIONS``.

    Args:
        name: one of ``ACTIVATIONS``.
        **params: the activation's own parameter: ``negative_slope`` for ``leaky_relu``
            (default 0.01), ``initial_slope`` for ``prelu`` (default 0.25; one slope per
            input element: on feature maps that is one per position and channel, not the
            paper's one per channel, which needs ``keras.layers.PReLU(shared_axes=...)``),
            ``lower``/``upper``/``seed`` for ``rrelu`` (default U(3, 8)),
            ``alpha`` for ``elu`` (default 1.0).

    Returns:
        A new, unbuilt layer (PReLU carries trainable slopes, so never share one).
    """
    allowed = {"leaky_relu": {"negative_slope"}, "prelu": {"initial_slope"},
               "rrelu": {"lower", "upper", "seed"}, "elu": {"alpha"}}
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    unknown = set(params) - allowed.get(name, set())
    if unknown:
        raise ValueError(f"{name} takes no parameter(s) {sorted(unknown)}; it accepts "
                         f"{sorted(allowed.get(name, set())) or 'none'}.")
    if name == "leaky_relu":
        slope = float(params.get("negative_slope", 0.01))
        if slope < 0:
            raise ValueError(f"negative_slope must be >= 0, got {slope}.")
        return keras.layers.LeakyReLU(negative_slope=slope)
    if name == "prelu":
        initial = float(params.get("initial_slope", 0.25))
        return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(initial))
    if name == "rrelu":
        return RReLU(**params)
    if name == "elu":
        alpha = float(params.get("alpha", 1.0))
        if alpha <= 0:
            raise ValueError(f"ELU needs alpha > 0, got {alpha}; the ELU paper uses 1.0.")
        return keras.layers.ELU(alpha=alpha)
    keras_name = {"swish": "silu"}.get(name, name)
    return keras.layers.Activation(keras_name, name=None)


BLOCKS: tuple[str, ...] = ("plain", "batchnorm", "layernorm", "residual")
"""How a deep stack's hidden layers are wired, for :func:`signal_profile` and :func:`train_stack`:
``plain`` ``h = f(z)``; ``batchnorm`` and ``layernorm`` ``h = f(normalise(z))`` with batch or
per-example statistics (no learned scale or shift); ``residual`` ``h = h_prev + f(z)`` wherever
the layer's input and output widths agree."""

_NORM_EPSILON = 1e-3  # Keras' default for BatchNormalization and LayerNormalization


def _check_stack(kernels, functions, block: str) -> None:
    if block not in BLOCKS:
        raise ValueError(f"Unknown block {block!r}; choose one of {', '.join(BLOCKS)}.")
    if len(kernels) != len(functions) + 1:
        raise ValueError(f"A stack of {len(functions)} hidden layers needs {len(functions) + 1} "
                         f"kernels (the last one maps to the logits), got {len(kernels)}.")


def _stack_forward(kernels, functions, x, block: str):
    """Logits, hidden pre-activations ``z = h_prev @ W`` and hidden outputs of a bias-free stack."""
    h, zs, hs = x, [], []
    for kernel, f in zip(kernels[:-1], functions):
        zs.append(h @ kernel)
        z = zs[-1]
        if block in ("batchnorm", "layernorm"):
            axis = 0 if block == "batchnorm" else -1
            mean, variance = tf.nn.moments(z, axes=[axis], keepdims=True)
            z = (z - mean) * tf.math.rsqrt(variance + _NORM_EPSILON)
        out = f(z)
        h = h + out if block == "residual" and h.shape[-1] == out.shape[-1] else out
        hs.append(h)
    return h @ kernels[-1], zs, hs


def signal_profile(kernels: list, functions: list, x, y, block: str = "plain") -> dict:
    """Per hidden layer of a bias-free Dense stack, the forward and backward signals on one batch.

    Args:
        kernels: one weight matrix per layer, the last mapping to the logits.
        functions: one activation (a callable on tensors) per hidden layer.
        x: a batch of inputs, shape ``(batch, kernels[0].shape[0])``.
        y: integer labels of the batch (the loss is softmax cross-entropy on the logits).
        block: one of :data:`BLOCKS`.

    Returns:
        A dict of per-layer arrays: ``spread``, ``mean`` and ``variance`` of the outputs ``h``,
        ``z_spread`` (std of ``z = h_prev @ W``), ``delta`` (root mean square of the error signal
        dL/dz), ``delta_mean_abs`` (its mean absolute value), ``weight`` (mean ``|dL/dW|``),
        ``relgrad`` (``||dL/dW|| / ||W||``); ``out_grad`` (RMS of dL/dlogits) and ``logits``.
    """
    _check_stack(kernels, functions, block)
    kernels = [tf.convert_to_tensor(k) for k in kernels]
    x = tf.convert_to_tensor(x, dtype=kernels[0].dtype)
    with tf.GradientTape() as tape:
        tape.watch(kernels)
        logits, zs, hs = _stack_forward(kernels, functions, x, block)
        tape.watch(logits)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits,
                                                                           from_logits=True))
    deltas, weight_grads, out_grad = tape.gradient(loss, [zs, kernels[:-1], logits])
    stats = {key: value.numpy() for key, value in
             _profile_statistics(hs, zs, deltas, weight_grads, kernels[:-1]).items()}
    return stats | {"out_grad": float(tf.sqrt(tf.reduce_mean(tf.square(out_grad)))),
                    "logits": logits.numpy()}


@tf.function(reduce_retracing=True)
def _profile_statistics(hs, zs, deltas, weight_grads, kernels) -> dict:
    """Every per-layer statistic of :func:`signal_profile` in one traced call (one host sync)."""
    def per_layer(tensors, statistic):
        return tf.stack([statistic(t) for t in tensors])

    def rms(t):
        return tf.sqrt(tf.reduce_mean(tf.square(t)))

    return {"spread": per_layer(hs, tf.math.reduce_std), "mean": per_layer(hs, tf.reduce_mean),
            "variance": per_layer(hs, tf.math.reduce_variance),
            "z_spread": per_layer(zs, tf.math.reduce_std),
            "delta": per_layer(deltas, rms),
            "delta_mean_abs": per_layer(deltas, lambda t: tf.reduce_mean(tf.abs(t))),
            "weight": per_layer(weight_grads, lambda t: tf.reduce_mean(tf.abs(t))),
            "relgrad": tf.stack([tf.norm(g) / tf.norm(k) for g, k in zip(weight_grads, kernels)])}


def train_stack(kernels: list, functions: list, x, y, block: str = "plain", *, steps: int,
                batch_size: int = 128, learning_rate: float = 1e-3, seed: int = 0) -> list:
    """Train a bias-free Dense stack's kernels with Adam (Keras' update rule) on cross-entropy.

    The activations' own weights, if any, stay fixed; mini-batches are drawn with replacement.

    Args:
        kernels: the initial weight matrices (left unchanged), as for :func:`signal_profile`.
        functions: one activation per hidden layer.
        x, y: the training inputs and their integer labels.
        block: one of :data:`BLOCKS`.
        steps: how many Adam steps; must be positive.
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        seed: seeds the mini-batch draws.

    Returns:
        The trained kernels, as new tensors.
    """
    _check_stack(kernels, functions, block)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"train_stack needs steps >= 1 and batch_size >= 1, got steps={steps}, "
                         f"batch_size={batch_size}.")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels; pass one per image.")
    variables = [tf.Variable(k) for k in kernels]
    moments = [(tf.Variable(tf.zeros_like(k)), tf.Variable(tf.zeros_like(k))) for k in kernels]
    x, y = tf.convert_to_tensor(x, dtype=variables[0].dtype), tf.convert_to_tensor(y)
    picks = np.random.default_rng(seed).integers(0, len(x), size=(steps, batch_size))
    beta1, beta2, epsilon = 0.9, 0.999, 1e-7  # Keras' Adam defaults

    @tf.function
    def run(picks, x, y):  # the data as arguments: a traced function keeps no copy of them
        for step in tf.range(1, steps + 1):
            idx = picks[step - 1]
            with tf.GradientTape() as tape:
                logits, _, _ = _stack_forward(variables, functions, tf.gather(x, idx), block)
                loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                    tf.gather(y, idx), logits, from_logits=True))
            t = tf.cast(step, variables[0].dtype)
            rate = learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
            for w, (m, v), g in zip(variables, moments, tape.gradient(loss, variables)):
                m.assign(beta1 * m + (1 - beta1) * g)
                v.assign(beta2 * v + (1 - beta2) * g * g)
                w.assign_sub(rate * m / (tf.sqrt(v) + epsilon))

    run(tf.constant(picks), x, y)
    return [tf.convert_to_tensor(v) for v in variables]
