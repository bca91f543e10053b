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


# --- Signals in a deep stack: signal_profile and train_stack -----------------------------------

from helpers.activations import BLOCKS, signal_profile, train_stack  # noqa: E402

SIZES = (6, 5, 5, 5, 3)


def _stack(seed=0):
    rng = np.random.default_rng(seed)
    kernels = [rng.normal(0, 1 / np.sqrt(a), size=(a, b)).astype(np.float32)
               for a, b in zip(SIZES[:-1], SIZES[1:])]
    x = rng.normal(size=(16, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], size=16)
    return kernels, x, y


def _keras_stack(kernels, block):
    """The same network from Keras' own layers, as an independent oracle of the forward pass."""
    inputs = keras.Input((SIZES[0],))
    h = inputs
    for kernel in kernels[:-1]:
        dense = keras.layers.Dense(kernel.shape[1], use_bias=False)
        z = dense(h)
        dense.set_weights([kernel])
        if block == "batchnorm":
            z = keras.layers.BatchNormalization(center=False, scale=False, epsilon=1e-3)(z)
        elif block == "layernorm":
            z = keras.layers.LayerNormalization(center=False, scale=False, epsilon=1e-3)(z)
        out = keras.layers.Activation("tanh")(z)
        h = keras.layers.Add()([h, out]) if block == "residual" and h.shape[-1] == out.shape[-1] \
            else out
    last = keras.layers.Dense(kernels[-1].shape[1], use_bias=False)
    logits = last(h)
    last.set_weights([kernels[-1]])
    return keras.Model(inputs, logits)


@pytest.mark.parametrize("block", BLOCKS)
def test_signal_profile_logits_match_keras_layers(block):
    kernels, x, y = _stack()
    profile = signal_profile(kernels, [keras.activations.tanh] * 3, x, y, block)
    expected = _keras_stack(kernels, block)(x, training=True).numpy()
    np.testing.assert_allclose(profile["logits"], expected, atol=1e-5)


def test_signal_profile_error_signal_is_rms_of_backpropagated_delta():
    kernels, x, y = _stack(1)
    profile = signal_profile(kernels, [keras.activations.tanh] * 3, x, y)
    # Back-propagation by hand in float64: delta_l = f'(z_l) * (delta_(l+1) @ W_(l+1)^T).
    hs, zs = [x.astype(np.float64)], []
    for kernel in kernels[:-1]:
        zs.append(hs[-1] @ kernel)
        hs.append(np.tanh(zs[-1]))
    logits = hs[-1] @ kernels[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    grad = (p - np.eye(SIZES[-1])[y]) / len(y)
    deltas = []
    for layer in range(len(zs) - 1, -1, -1):
        grad = (grad @ kernels[layer + 1].T) * (1 - np.tanh(zs[layer]) ** 2)
        deltas.insert(0, grad)
    np.testing.assert_allclose(profile["delta"], [np.sqrt(np.mean(d**2)) for d in deltas],
                               rtol=1e-4)
    np.testing.assert_allclose(profile["delta_mean_abs"], [np.mean(np.abs(d)) for d in deltas],
                               rtol=1e-4)
    np.testing.assert_allclose(profile["weight"],
                               [np.mean(np.abs(h.T @ d)) for h, d in zip(hs, deltas)], rtol=1e-4)
    # RMS is never below the mean absolute value, and differs from it here.
    assert np.all(profile["delta"] >= profile["delta_mean_abs"])
    assert not np.allclose(profile["delta"], profile["delta_mean_abs"])


def test_signal_profile_residual_keeps_the_identity_path():
    # With a zero activation the residual stack passes its first layer's output straight through,
    # so every later layer's output equals layer 1's.
    kernels, x, y = _stack(2)
    first = [keras.activations.tanh] + [lambda z: 0.0 * z] * 2
    profile = signal_profile(kernels, first, x, y, "residual")
    np.testing.assert_allclose(profile["spread"], profile["spread"][0], rtol=1e-6)
    plain = signal_profile(kernels, first, x, y, "plain")
    np.testing.assert_allclose(plain["spread"][1:], 0.0)


def test_train_stack_learns_and_leaves_the_initial_kernels_alone():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, SIZES[0])).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)  # three classes from two features
    kernels, _, _ = _stack(3)
    before = [k.copy() for k in kernels]
    functions = [keras.activations.tanh] * 3
    trained = train_stack(kernels, functions, x, y, "batchnorm", steps=200, batch_size=32,
                          learning_rate=1e-2, seed=0)
    for k, b in zip(kernels, before):
        np.testing.assert_array_equal(k, b)

    def loss(ks):
        logits = signal_profile(ks, functions, x, y, "batchnorm")["logits"]
        return float(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                     .numpy().mean())

    assert loss(trained) < 0.75 * loss(kernels)
    again = train_stack(kernels, functions, x, y, "batchnorm", steps=200, batch_size=32,
                        learning_rate=1e-2, seed=0)
    np.testing.assert_allclose(again[0], trained[0], rtol=1e-5, atol=1e-6)  # seeded


def test_stack_helpers_reject_bad_input():
    kernels, x, y = _stack()
    functions = [keras.activations.tanh] * 3
    with pytest.raises(ValueError, match="Unknown block 'groupnorm'"):
        signal_profile(kernels, functions, x, y, "groupnorm")
    with pytest.raises(ValueError, match="needs 4 kernels"):
        signal_profile(kernels[:-1], functions, x, y)
    with pytest.raises(ValueError, match="steps >= 1"):
        train_stack(kernels, functions, x, y, steps=0)
    with pytest.raises(ValueError, match="one per image"):
        train_stack(kernels, functions, x, y[:-1], steps=1)
