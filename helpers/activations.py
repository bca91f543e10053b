"""Activations Keras lacks: RReLU in the convention of Xu et al. (2015)."""

from __future__ import annotations

import keras
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
