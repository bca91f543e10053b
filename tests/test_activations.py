import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import erf

from helpers.activations import ACTIVATIONS, RReLU, activation_layer

X = np.linspace(-4, 4, 81, dtype=np.float32)[:, None]


def test_rrelu_inference_uses_paper_mean_slope():
    layer = RReLU()
    out = np.asarray(layer(X, training=False))
    expected = np.where(X >= 0, X, X / 5.5)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert layer.inference_slope == pytest.approx(1 / 5.5)


def test_rrelu_training_draws_a_divisor_per_element_each_call():
    layer = RReLU(seed=1)
    x = -np.ones((64, 32), dtype=np.float32)
    first = np.asarray(layer(x, training=True))
    second = np.asarray(layer(x, training=True))
    divisors = -1 / first
    assert divisors.min() >= 3.0 and divisors.max() <= 8.0
    assert abs(divisors.mean() - 5.5) < 0.1          # U(3, 8) has mean 5.5
    assert abs(divisors.std() - 5 / np.sqrt(12)) < 0.1  # and std (8 - 3) / sqrt(12)
    assert len(np.unique(first)) > 1000               # one draw per element
    assert not np.allclose(first, second)             # redrawn every call
    # The positive part is the identity in both modes.
    pos = np.abs(np.random.default_rng(0).normal(size=(8, 8))).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(layer(pos, training=True)), pos)


def test_rrelu_inference_is_deterministic():
    layer = RReLU()
    np.testing.assert_array_equal(np.asarray(layer(X, training=False)),
                                  np.asarray(layer(X, training=False)))


def test_rrelu_custom_bounds_and_config_round_trip():
    layer = RReLU(lower=2.0, upper=4.0, seed=3, name="r")
    assert layer.inference_slope == pytest.approx(1 / 3)
    clone = RReLU.from_config(layer.get_config())
    assert (clone.lower, clone.upper, clone.seed, clone.name) == (2.0, 4.0, 3, "r")


def test_rrelu_survives_keras_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              RReLU(lower=4.0, upper=6.0)])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(loaded.layers[-1], RReLU) and loaded.layers[-1].upper == 6.0


@pytest.mark.parametrize("lower, upper", [(0.0, 8.0), (-1.0, 8.0), (5.0, 3.0)])
def test_rrelu_rejects_bad_bounds(lower, upper):
    with pytest.raises(ValueError, match="RReLU needs"):
        RReLU(lower=lower, upper=upper)


def _closed_form(name):
    x = X.astype(np.float64)
    s = 1 / (1 + np.exp(-x))
    return {
        "sigmoid": s,
        "tanh": np.tanh(x),
        "relu": np.maximum(x, 0),
        "leaky_relu": np.where(x > 0, x, 0.01 * x),
        "prelu": np.where(x > 0, x, 0.25 * x),
        "rrelu": np.where(x > 0, x, x / 5.5),
        "elu": np.where(x > 0, x, np.expm1(x)),
        "gelu": 0.5 * x * (1 + erf(x / np.sqrt(2))),
        "swish": x * s,
    }[name]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_layer_matches_closed_form(name):
    out = np.asarray(activation_layer(name)(X, training=False))
    np.testing.assert_allclose(out, _closed_form(name), atol=1e-6)


def test_activation_layer_matches_keras_own_layers():
    np.testing.assert_allclose(activation_layer("leaky_relu", negative_slope=0.2)(X),
                               keras.layers.LeakyReLU(negative_slope=0.2)(X), atol=0)
    np.testing.assert_allclose(activation_layer("elu", alpha=2.0)(X),
                               keras.layers.ELU(alpha=2.0)(X))


def test_prelu_learns_one_slope_per_channel():
    layer = activation_layer("prelu")
    layer.build((None, 7))
    (alpha,) = layer.trainable_weights
    assert tuple(alpha.shape) == (7,)
    np.testing.assert_allclose(alpha.numpy(), 0.25)


def test_activation_layer_gradient_is_the_closed_form_derivative():
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activation_layer("elu")(x)
    grad = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(grad, np.where(X > 0, 1.0, np.exp(X)), rtol=1e-5)


def test_activation_layer_rejects_bad_names_and_parameters():
    with pytest.raises(ValueError, match="Unknown activation 'relu6'"):
        activation_layer("relu6")
    with pytest.raises(ValueError, match="takes no parameter"):
        activation_layer("relu", alpha=1.0)
    with pytest.raises(ValueError, match="alpha > 0"):
        activation_layer("elu", alpha=0.0)
    with pytest.raises(ValueError, match="negative_slope"):
        activation_layer("leaky_relu", negative_slope=-0.1)
