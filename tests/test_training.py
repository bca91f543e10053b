"""The vectorised ensemble trainer against plain sequential references (Keras fit, GradientTape)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import data, training

SIZES = (1, 4, 3, 1)


@pytest.fixture(scope="module")
def line():
    (x, y), _ = data.make_line_data(n=14, n_outliers=2, n_test=4, seed=3)
    return x / 5.0, y / 5.0  # keep a few steps of plain SGD well inside float32 range


def _keras_run(weights, run, x, y, *, l1=0.0, l2=0.0, lr=0.01, epochs=2):
    """One run trained the ordinary way: Keras Dense layers, SGD, fit(batch_size=1)."""
    reg = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    model = keras.Sequential([keras.Input((1,))] + [
        keras.layers.Dense(k.shape[2], kernel_regularizer=reg) for k, _ in weights])
    model.set_weights(training.keras_weights(weights, run))
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mean_absolute_error")
    model.fit(x[:, None], y, batch_size=1, epochs=epochs, shuffle=False, verbose=0)
    return model.get_weights()


def test_ensemble_matches_keras_fit_with_l1_and_l2_penalties(line):
    x, y = line
    init = training.glorot_weights(SIZES, runs=3, seed=7)
    l1, l2 = np.array([0.3, 0.0, 0.0]), np.array([0.0, 0.15, 0.0])
    result = training.train_ensemble(x, y, init, l1=l1, l2=l2, lr=0.01, epochs=2,
                                     shuffle=False, progress=False)
    for run in range(3):
        expected = _keras_run(init, run, x, y, l1=l1[run], l2=l2[run])
        got = training.keras_weights(result.weights, run)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    # The runs really moved, and differently for each penalty.
    moved = [np.abs(result.weights[0][0][r] - init[0][0][r]).max() for r in range(3)]
    assert min(moved) > 1e-3
    assert not np.allclose(result.weights[0][0][0], result.weights[0][0][2], atol=1e-4)


def _tape_run(weights, run, x, y, order, *, l1, l2, loss, proximal, activation, lr):
    """One run, one sample at a time, with gradients from GradientTape."""
    ks = [tf.Variable(k[run]) for k, _ in weights]
    bs = [tf.Variable(b[run]) for _, b in weights]
    act = {"linear": tf.identity, "relu": tf.nn.relu, "tanh": tf.tanh}[activation]
    for epoch_order in order:
        for i in epoch_order:
            with tf.GradientTape() as tape:
                a = tf.constant([[x[i]]], tf.float32)
                for j, (k, b) in enumerate(zip(ks, bs)):
                    a = a @ k + b
                    a = act(a) if j < len(ks) - 1 else a
                r = a[0, 0] - y[i]
                total = tf.abs(r) if loss == "absolute" else tf.square(r)
                total += l2 * sum(tf.reduce_sum(tf.square(k)) for k in ks)
                if not proximal:
                    total += l1 * sum(tf.reduce_sum(tf.abs(k)) for k in ks)
            grads = tape.gradient(total, ks + bs)
            for v, g in zip(ks + bs, grads):
                v.assign_sub(lr * g)
            if proximal:
                for k in ks:
                    k.assign(tf.sign(k) * tf.maximum(tf.abs(k) - lr * l1, 0.0))
    return [v.numpy() for pair in zip(ks, bs) for v in pair]


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_ensemble_matches_tape_reference_with_mixed_runs_and_per_run_data(line, activation):
    x, y = line
    runs = 4
    rng = np.random.default_rng(0)
    xs = np.stack([x + rng.normal(0, 0.1, x.shape) for _ in range(runs)]).astype(np.float32)
    ys = np.stack([y] * runs).astype(np.float32)
    init = training.glorot_weights(SIZES, runs, seed=2)
    cfg = dict(l1=np.array([0.2, 0.0, 0.2, 0.05]), l2=np.array([0.0, 0.1, 0.0, 0.05]),
               loss=["absolute", "squared", "squared", "absolute"],
               proximal=[False, False, True, True])
    result = training.train_ensemble(xs, ys, init, lr=0.02, epochs=2, seed=5,
                                     activation=activation, progress=False, **cfg)
    # Rebuild each run's visiting order exactly as train_ensemble draws it.
    gen = np.random.default_rng(5)
    base = np.broadcast_to(np.arange(len(x)), (runs, len(x)))
    order = np.stack([gen.permuted(base, axis=1) for _ in range(2)])
    for run in range(runs):
        expected = _tape_run(init, run, xs[run], ys[run], order[:, run], lr=0.02,
                             activation=activation, l1=cfg["l1"][run], l2=cfg["l2"][run],
                             loss=cfg["loss"][run], proximal=cfg["proximal"][run])
        got = training.keras_weights(result.weights, run)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_proximal_step_gives_exact_zeros_and_subgradient_does_not(line):
    x, y = line
    init = training.glorot_weights((1, 10, 10, 1), runs=2, seed=0)
    result = training.train_ensemble(x, y, init, l1=0.3, proximal=[False, True], epochs=30,
                                     progress=False)
    kernels = training.flat_kernels(result.weights)
    assert np.mean(kernels[0] == 0) < 0.05
    assert np.mean(kernels[1] == 0) > 0.5


def test_history_snapshots_and_prediction(line):
    x, y = line
    init = training.glorot_weights(SIZES, runs=2, seed=1)
    result = training.train_ensemble(x, y, init, epochs=6, snapshot_every=2, progress=False)
    assert result.history.shape == (6, 2) and np.all(np.isfinite(result.history))
    assert result.snapshot_epochs == [0, 2, 4, 6]
    np.testing.assert_array_equal(result.snapshots[0][0][0], init[0][0])
    np.testing.assert_array_equal(result.snapshots[-1][1][0], result.weights[1][0])
    # A network without activations is one straight line: prediction = slope * x + intercept.
    pred = training.predict(result.weights, x)
    intercept = training.predict(result.weights, np.zeros(1))
    slope = training.predict(result.weights, np.ones(1)) - intercept
    np.testing.assert_allclose(pred, slope * x + intercept, rtol=1e-5, atol=1e-5)
    assert pred.shape == (2, len(x))


def test_glorot_weights_bounds_and_reproducibility():
    a = training.glorot_weights((1, 10, 10, 1), runs=3, seed=4)
    b = training.glorot_weights((1, 10, 10, 1), runs=5, seed=4)
    assert training.sizes_of(a) == (1, 10, 10, 1)
    for (ka, ba), (kb, _) in zip(a, b):
        limit = np.sqrt(6 / (ka.shape[1] + ka.shape[2]))
        assert np.abs(ka).max() <= limit and np.all(ba == 0)
        np.testing.assert_array_equal(ka, kb[:3])  # run r does not depend on how many runs
    assert not np.allclose(a[1][0][0], a[1][0][1])


def test_bad_arguments_raise_clear_errors(line):
    x, y = line
    init = training.glorot_weights(SIZES, runs=2, seed=0)
    with pytest.raises(ValueError, match="cannot be negative"):
        training.train_ensemble(x, y, init, l1=-0.1, progress=False)
    with pytest.raises(ValueError, match="cannot be negative"):
        training.train_ensemble(x, y, init, l2=[0.1, -0.1], progress=False)
    with pytest.raises(ValueError, match="x and y do not match"):
        training.train_ensemble(x[:-1], y, init, progress=False)
    with pytest.raises(ValueError, match="one row of targets per run"):
        training.train_ensemble(np.stack([x] * 3), np.stack([y] * 3), init, progress=False)
    with pytest.raises(ValueError, match="one value or one per run"):
        training.train_ensemble(x, y, init, l1=[0.1, 0.2, 0.3], progress=False)
    with pytest.raises(ValueError, match="Unknown loss"):
        training.train_ensemble(x, y, init, loss="huber", progress=False)
    with pytest.raises(ValueError, match="at least one run"):
        training.glorot_weights(SIZES, runs=0)
    empty = [(k[:0], b[:0]) for k, b in init]
    with pytest.raises(ValueError, match="at least one run"):
        training.train_ensemble(x, y, empty, progress=False)
    with pytest.raises(ValueError, match="do not chain"):
        training.train_ensemble(x, y, [init[0], init[2]], progress=False)
    with pytest.raises(ValueError, match="learning rate"):
        training.train_ensemble(x, y, init, lr=0.0, progress=False)
    with pytest.raises(ValueError, match="Unknown activation"):
        training.predict(init, x, activation="sigmoid")


def test_runs_with_one_seed_share_their_sample_order(line):
    x, y = line
    init = training.tile_runs(training.glorot_weights(SIZES, runs=2, seed=2), 2)
    # Runs 0 and 2 start alike; with one seed per run, equal seeds mean equal orders.
    paired = training.train_ensemble(x, y, init, seed=[10, 11, 10, 11], epochs=3, progress=False)
    for (k, b) in paired.weights:
        np.testing.assert_array_equal(k[0], k[2])
        np.testing.assert_array_equal(b[1], b[3])
    assert not np.allclose(paired.weights[0][0][0], paired.weights[0][0][1])
    # One number: every run its own order, so identical starts end apart.
    unpaired = training.train_ensemble(x, y, init, seed=10, epochs=3, progress=False)
    assert not np.allclose(unpaired.weights[0][0][0], unpaired.weights[0][0][2])
    # A per-run seed reproduces that run trained alone with the same seed.
    alone = training.train_ensemble(x, y, training.select_runs(init, [1]), seed=[11], epochs=3,
                                    progress=False)
    for got, expected in zip(training.keras_weights(alone.weights, 0),
                             training.keras_weights(paired.weights, 1)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="one number or one per run"):
        training.train_ensemble(x, y, init, seed=[1, 2], progress=False)


def test_layout_accessors_round_trip_and_agree_with_prediction():
    init = training.glorot_weights(SIZES, runs=3, seed=6)
    tiled = training.tile_runs(init, 2)
    assert tiled[0][0].shape[0] == 6
    first, second = training.split_runs(tiled, 2)
    for (k1, b1), (k2, b2), (k, b) in zip(first, second, init):
        np.testing.assert_array_equal(b1, b)
        np.testing.assert_array_equal(k1, k)
        np.testing.assert_array_equal(k2, k)
        np.testing.assert_array_equal(b2, b)
    lists = [training.keras_weights(init, r) for r in range(3)]
    assert [a.shape for a in lists[0]] == [(1, 4), (4,), (4, 3), (3,), (3, 1), (1,)]
    rebuilt = training.from_keras(lists)
    for (k, b), (k2, b2) in zip(init, rebuilt):
        np.testing.assert_array_equal(k, k2)
        np.testing.assert_array_equal(b, b2)
    flat = training.flat_kernels(init)
    assert flat.shape == (3, 4 + 12 + 3)
    np.testing.assert_array_equal(flat[1, :4], init[0][0][1].ravel())
    # The end-to-end slope of a linear network is the product of its kernels.
    slope, intercept = training.end_to_end(init)
    product = init[0][0] @ init[1][0] @ init[2][0]
    np.testing.assert_allclose(slope, product[:, :, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(intercept, 0.0, atol=1e-7)
    two_in = training.glorot_weights((2, 3, 1), runs=2, seed=0)
    s2, _ = training.end_to_end(two_in)
    np.testing.assert_allclose(s2, (two_in[0][0] @ two_in[1][0])[:, :, 0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="equal blocks"):
        training.split_runs(tiled, 4)
    with pytest.raises(ValueError, match="at least one block"):
        training.tile_runs(init, 0)
    with pytest.raises(ValueError, match="does not exist"):
        training.keras_weights(init, 3)
    with pytest.raises(ValueError, match="same Dense-only"):
        training.from_keras([lists[0], lists[1][:4]])


# ------------------------------------------------------------------ full-batch gradient descent


def _numpy_full_batch(k, b, x, y, *, l1, l2, loss, rates):
    """A one-weight line ``k x + b`` trained by hand: full-batch gradient steps in NumPy."""
    for lr in rates:
        r = k * x + b - y
        d = np.sign(r) if loss == "absolute" else 2 * r
        grad_k = np.mean(d * x) + l1 * np.sign(k) + 2 * l2 * k
        k, b = k - lr * grad_k, b - lr * np.mean(d)
    return k, b


def test_full_batch_matches_hand_written_descent_per_run(line):
    x, y = line
    configs = [dict(l1=0.0, l2=0.0, loss="squared"), dict(l1=0.2, l2=0.0, loss="absolute"),
               dict(l1=0.0, l2=0.3, loss="squared"), dict(l1=0.1, l2=0.1, loss="absolute")]
    start = training.glorot_weights((1, 1), runs=len(configs), seed=5)
    start[0] = (start[0][0], np.full((len(configs), 1), 0.3, np.float32))  # non-zero biases
    result = training.train_full_batch(
        x, y, start, l1=[c["l1"] for c in configs], l2=[c["l2"] for c in configs],
        loss=[c["loss"] for c in configs], lr=0.05, lr_end=0.005, steps=7)
    rates = 0.05 * 0.1 ** (np.arange(7) / 6)
    for r, c in enumerate(configs):
        k, b = _numpy_full_batch(float(start[0][0][r, 0, 0]), 0.3, x.astype(np.float64),
                                 y.astype(np.float64), rates=rates, **c)
        np.testing.assert_allclose([result.weights[0][0][r, 0, 0], result.weights[0][1][r, 0]],
                                   [k, b], rtol=1e-4, atol=1e-5)
    assert result.history.shape == (7, len(configs))


def test_full_batch_reaches_least_squares_and_least_absolute_deviations():
    import scipy.optimize

    (x, y), _ = data.make_line_data(n=30, n_outliers=3, n_test=5, seed=7)
    x = x - x.mean()
    n = len(x)
    design = np.stack([x, np.ones(n)], axis=1).astype(np.float64)
    ls = np.linalg.lstsq(design, y, rcond=None)[0]
    lad = scipy.optimize.linprog(
        np.r_[0.0, 0.0, np.ones(n)], A_ub=np.block([[design, -np.eye(n)], [-design, -np.eye(n)]]),
        b_ub=np.r_[y, -y], bounds=[(None, None)] * 2 + [(0, None)] * n, method="highs").x[:2]
    start = training.tile_runs(training.glorot_weights((1, 5, 5, 1), runs=2, seed=0), 2)
    result = training.train_full_batch(x, y, start, loss=["squared"] * 2 + ["absolute"] * 2,
                                       lr=0.005, lr_end=1e-4, steps=3000)
    slopes, intercepts = training.end_to_end(result.weights)
    np.testing.assert_allclose(slopes[:2, 0], ls[0], atol=1e-3)
    np.testing.assert_allclose(intercepts[:2], ls[1], atol=1e-3)
    np.testing.assert_allclose(slopes[2:, 0], lad[0], atol=5e-3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr_end=0.0), "positive"),
    (dict(steps=0), "at least one step"),
    (dict(l1=-0.1), "cannot be negative"),
    (dict(loss="huber"), "Unknown loss"),
])
def test_full_batch_bad_arguments(line, kwargs, message):
    x, y = line
    with pytest.raises(ValueError, match=message):
        training.train_full_batch(x, y, training.glorot_weights(SIZES, 2), **kwargs)
