"""Tests of helpers.experiments: MLP builder, tf.data pipeline, training loop, cache, statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy import stats

from helpers import activations, config, experiments


def _toy_data(n: int = 400, d: int = 20, seed: int = 0) -> dict:
    # Two Gaussian blobs, linearly separable with a wide margin.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype(np.int32)
    x = (rng.normal(size=(n, d)) + 3.0 * (2 * y[:, None] - 1)).astype(np.float32)
    half = n // 2
    return {"name": "toy", "x_train": x[:half], "y_train": y[:half],
            "x_test": x[half:], "y_test": y[half:]}


def test_build_mlp_layers_and_batch_norm():
    model = experiments.build_mlp("rrelu", batch_norm=True, hidden=(32, 8), input_dim=12)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "RReLU", "Dense", "BatchNormalization",
                     "RReLU", "Dense"]
    assert model(np.zeros((3, 12), np.float32)).shape == (3, 10)
    plain = experiments.build_mlp("leaky_relu_5.5", hidden=(32, 8), input_dim=12)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    leaky = [layer for layer in plain.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert len(leaky) == 2 and all(abs(la.negative_slope - 1 / 5.5) < 1e-7 for la in leaky)


def test_same_seed_same_initial_weights_across_activations():
    a = experiments.build_mlp("relu", hidden=(16,), input_dim=5, seed=3)
    b = experiments.build_mlp("elu", hidden=(16,), input_dim=5, seed=3)
    c = experiments.build_mlp("relu", hidden=(16,), input_dim=5, seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])


def test_every_config_is_a_known_activation_with_a_colour():
    from helpers import plots

    for key, (name, params) in experiments.CONFIGS.items():
        assert name in activations.ACTIVATIONS
        activations.activation_layer(name, **params)
        plots.color(key)
    assert experiments.CONFIGS["leaky_relu_100"][1]["negative_slope"] == pytest.approx(0.01)


@pytest.mark.parametrize("bad", ["relu6", "RReLU", ""])
def test_unknown_activation_is_rejected(bad):
    with pytest.raises(ValueError, match="Unknown activation"):
        experiments.build_mlp(bad)
    with pytest.raises(ValueError, match="Unknown activation"):
        experiments.RunConfig(bad, batch_norm=False, seed=0)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="hidden"):
        experiments.build_mlp("relu", hidden=(16, 0))
    with pytest.raises(ValueError, match="epochs"):
        experiments.RunConfig("relu", batch_norm=False, seed=0, epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        experiments.RunConfig("relu", batch_norm=False, seed=0, learning_rate=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        experiments.make_dataset(np.zeros((4, 2)), np.zeros(4), 0)


def test_load_flat_images_fashion_subset():
    data = experiments.load_flat_images("fashion_mnist", n_train=300, n_test=200, seed=1)
    assert data["x_train"].shape == (300, 784) and data["x_test"].shape == (200, 784)
    assert data["x_train"].dtype == np.float32 and data["y_train"].dtype == np.int32
    assert 0.0 <= data["x_train"].min() and data["x_train"].max() <= 1.0
    assert set(np.unique(data["y_train"])) <= set(range(10)) and len(set(data["y_train"])) > 5
    again = experiments.load_flat_images("fashion_mnist", n_train=300, n_test=200, seed=1)
    np.testing.assert_array_equal(data["x_train"], again["x_train"])


def test_load_flat_images_bad_input():
    with pytest.raises(ValueError, match="Unknown dataset"):
        experiments.load_flat_images("cifar10")
    with pytest.raises(ValueError, match="n_train"):
        experiments.load_flat_images("fashion_mnist", n_train=10**6)


def test_mnist_offline_names_the_alternative(monkeypatch):
    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="dataset-fashion-mnist"):
        experiments.load_flat_images("mnist")


def test_make_dataset_batches_and_reshuffles():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)
    ds = experiments.make_dataset(x, y, 4, shuffle=True, seed=0)
    epochs = [np.concatenate([yb.numpy() for _, yb in ds]) for _ in range(3)]
    assert [len(b) for b in [yb for _, yb in ds]] == [4, 4, 2]
    for order in epochs:
        assert sorted(order) == list(range(10))
    assert any(not np.array_equal(epochs[0], e) for e in epochs[1:])
    fixed = np.concatenate([yb.numpy() for _, yb in experiments.make_dataset(x, y, 3)])
    np.testing.assert_array_equal(fixed, y)


def test_compiled_step_matches_keras_fit():
    # One SGD step of the compiled loop gives the same weights as one step of model.fit.
    data = _toy_data(64, 6)
    xb, yb = data["x_train"][:32], data["y_train"][:32]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ours = experiments.build_mlp("elu", hidden=(8,), input_dim=6, num_classes=2, seed=1)
    ref = experiments.build_mlp("elu", hidden=(8,), input_dim=6, num_classes=2, seed=1)
    step = experiments.compiled_train_step(ours, keras.optimizers.SGD(0.1), loss)
    step(xb, yb)
    ref.compile(keras.optimizers.SGD(0.1), loss)
    ref.fit(xb, yb, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.get_weights()[0], experiments.build_mlp(
        "elu", hidden=(8,), input_dim=6, num_classes=2, seed=1).get_weights()[0])


def test_train_run_learns_and_caches(tmp_path):
    data = _toy_data()
    run = experiments.RunConfig("rrelu", batch_norm=True, seed=0, epochs=3, batch_size=20,
                                learning_rate=1e-2, hidden=(16,), n_eval_train=50)
    first = experiments.train_run(run, data, cache_dir=tmp_path, progress=False)
    assert not first["cached"] and len(first["test_acc"]) == 3 and len(first["train_loss"]) == 3
    assert first["test_acc"][-1] > 0.9
    assert first["test_loss"][-1] < np.log(2)  # better than a coin
    again = experiments.train_run(run, data, cache_dir=tmp_path, progress=False)
    assert again["cached"] and again["test_acc"] == first["test_acc"]
    assert len(list(tmp_path.glob("*.json"))) == 1
    other = experiments.RunConfig("rrelu", batch_norm=True, seed=1, epochs=3, batch_size=20,
                                  learning_rate=1e-2, hidden=(16,), n_eval_train=50)
    assert experiments.cache_key(other, data) != experiments.cache_key(run, data)
    changed = dict(data, y_test=data["y_test"][::-1].copy())
    assert experiments.cache_key(run, changed) != experiments.cache_key(run, data)


def test_train_run_is_reproducible():
    data = _toy_data(200, 8)
    run = experiments.RunConfig("prelu", batch_norm=False, seed=2, epochs=2, batch_size=25,
                                learning_rate=1e-2, hidden=(8,), n_eval_train=40)
    a = experiments.train_run(run, data, progress=False)
    b = experiments.train_run(run, data, progress=False)
    np.testing.assert_allclose(a["test_loss"], b["test_loss"], rtol=1e-5)


def test_paired_interval_agrees_with_paired_t_test():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.3, 1.0, 3.0):
        a = rng.normal(size=5) + shift
        b = rng.normal(size=5)
        mean, low, high = experiments.paired_interval(a, b)
        assert mean == pytest.approx(np.mean(a - b))
        assert low < mean < high
        p = stats.ttest_rel(a, b).pvalue
        assert (low > 0 or high < 0) == (p < 0.05)


def test_paired_interval_bad_input():
    with pytest.raises(ValueError, match="same length"):
        experiments.paired_interval([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same length"):
        experiments.paired_interval([1.0], [2.0])
    with pytest.raises(ValueError, match="confidence"):
        experiments.paired_interval([1.0, 2.0], [0.0, 1.0], confidence=1.5)


def test_progress_bars_off_in_book_builds(monkeypatch):
    monkeypatch.setattr(config, "QUICK", False)
    monkeypatch.setenv("BOOK_BUILD", "1")
    assert not experiments.progress_enabled()
    monkeypatch.setenv("BOOK_BUILD", "0")
    assert experiments.progress_enabled()
    monkeypatch.setattr(config, "QUICK", True)
    assert not experiments.progress_enabled()


def test_evaluate_matches_keras_evaluate():
    data = _toy_data(300, 6)
    model = experiments.build_mlp("leaky_relu_5.5", hidden=(8,), input_dim=6, num_classes=2,
                                  seed=5)
    loss, acc = experiments.evaluate(
        model, experiments.make_dataset(data["x_test"], data["y_test"], 64))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    ref_loss, ref_acc = model.evaluate(data["x_test"], data["y_test"], batch_size=64, verbose=0)
    assert loss == pytest.approx(ref_loss, rel=1e-5) and acc == pytest.approx(ref_acc)
    logits = model(data["x_test"]).numpy()
    assert acc == pytest.approx(np.mean(logits.argmax(1) == data["y_test"]))


def test_train_runs_share_one_step_and_match_separate_runs():
    data = _toy_data(200, 8)
    runs = [experiments.RunConfig("rrelu", batch_norm=True, seed=s, epochs=2, batch_size=25,
                                  learning_rate=1e-2, hidden=(8,), n_eval_train=40)
            for s in (0, 1, 0)]
    shared = experiments.train_runs(runs, data, progress=False)
    alone = [experiments.train_run(run, data, progress=False) for run in runs[:2]]
    for together, separate in zip(shared[:2], alone):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            np.testing.assert_allclose(together[key], separate[key], rtol=1e-5, atol=1e-6)
    # The reset restores the seed's start exactly: seed 0 run again gives the same curves.
    np.testing.assert_allclose(shared[2]["test_loss"], shared[0]["test_loss"], rtol=1e-5)
    assert shared[0]["test_loss"] != shared[1]["test_loss"]


def test_train_runs_reads_the_cache_per_run(tmp_path):
    data = _toy_data(200, 8)
    runs = [experiments.RunConfig("elu", batch_norm=False, seed=s, epochs=1, batch_size=25,
                                  learning_rate=1e-2, hidden=(8,), n_eval_train=40)
            for s in (0, 1)]
    experiments.train_run(runs[0], data, cache_dir=tmp_path, progress=False)
    out = experiments.train_runs(runs, data, cache_dir=tmp_path, progress=False)
    assert [r["cached"] for r in out] == [True, False]
    assert len(list(tmp_path.glob("*.json"))) == 2
