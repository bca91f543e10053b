"""Tests of helpers.perceptrons: MLP builder, data, batch order, the seed stack against Keras."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from helpers import activations, perceptrons


def _toy_data(n: int = 400, d: int = 20, seed: int = 0) -> dict:
    # Two Gaussian blobs, linearly separable with a wide margin.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype(np.int32)
    x = (rng.normal(size=(n, d)) + 3.0 * (2 * y[:, None] - 1)).astype(np.float32)
    half = n // 2
    return {"name": "toy", "x_train": x[:half], "y_train": y[:half],
            "x_test": x[half:], "y_test": y[half:]}


def test_build_mlp_layers_and_batch_norm():
    model = perceptrons.build_mlp("rrelu", batch_norm=True, hidden=(32, 8), input_dim=12)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "BatchNormalization", "RReLU", "Dense", "BatchNormalization",
                     "RReLU", "Dense"]
    assert model(np.zeros((3, 12), np.float32)).shape == (3, 10)
    plain = perceptrons.build_mlp("leaky_relu_5.5", hidden=(32, 8), input_dim=12)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    leaky = [layer for layer in plain.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert len(leaky) == 2 and all(abs(la.negative_slope - 1 / 5.5) < 1e-7 for la in leaky)


def test_same_seed_same_initial_weights_across_activations():
    a = perceptrons.build_mlp("relu", hidden=(16,), input_dim=5, seed=3)
    b = perceptrons.build_mlp("elu", hidden=(16,), input_dim=5, seed=3)
    c = perceptrons.build_mlp("relu", hidden=(16,), input_dim=5, seed=4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])


def test_every_config_is_a_known_activation_with_a_colour():
    from helpers import plots

    for key, (name, params) in perceptrons.CONFIGS.items():
        assert name in activations.ACTIVATIONS
        activations.activation_layer(name, **params)
        plots.color(key)
    assert perceptrons.CONFIGS["leaky_relu_100"][1]["negative_slope"] == pytest.approx(0.01)


@pytest.mark.parametrize("bad", ["relu6", "RReLU", ""])
def test_unknown_activation_is_rejected(bad):
    with pytest.raises(ValueError, match="Unknown activation"):
        perceptrons.build_mlp(bad)
    with pytest.raises(ValueError, match="Unknown activation"):
        perceptrons.RunConfig(bad, batch_norm=False, seed=0)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="hidden"):
        perceptrons.build_mlp("relu", hidden=(16, 0))
    with pytest.raises(ValueError, match="epochs"):
        perceptrons.RunConfig("relu", batch_norm=False, seed=0, epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        perceptrons.RunConfig("relu", batch_norm=False, seed=0, learning_rate=0.0)
    with pytest.raises(ValueError, match="initializer"):
        perceptrons.RunConfig("relu", batch_norm=False, seed=0, initializer="zeros")
    with pytest.raises(ValueError, match="initializer"):
        perceptrons.build_mlp("relu", initializer="orthogonal")
    with pytest.raises(ValueError, match="schedule"):
        perceptrons.RunConfig("relu", batch_norm=False, seed=0, schedule="step")


def test_load_flat_images_fashion_subset():
    data = perceptrons.load_flat_images("fashion_mnist", n_train=300, n_test=200, seed=1)
    assert data["x_train"].shape == (300, 784) and data["x_test"].shape == (200, 784)
    assert data["x_train"].dtype == np.float32 and data["y_train"].dtype == np.int32
    assert 0.0 <= data["x_train"].min() and data["x_train"].max() <= 1.0
    assert set(np.unique(data["y_train"])) <= set(range(10)) and len(set(data["y_train"])) > 5
    again = perceptrons.load_flat_images("fashion_mnist", n_train=300, n_test=200, seed=1)
    np.testing.assert_array_equal(data["x_train"], again["x_train"])


def test_load_flat_images_bad_input():
    with pytest.raises(ValueError, match="Unknown dataset"):
        perceptrons.load_flat_images("cifar10")
    with pytest.raises(ValueError, match="n_train"):
        perceptrons.load_flat_images("fashion_mnist", n_train=10**6)


def test_mnist_offline_names_the_alternative(monkeypatch):
    def offline():
        raise OSError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(RuntimeError, match="dataset-fashion-mnist"):
        perceptrons.load_flat_images("mnist")

def test_batch_order_is_a_per_seed_per_epoch_permutation():
    a = perceptrons.batch_order(100, 20, seed=0, epoch=0)
    assert a.shape == (5, 20) and a.dtype == np.int32
    assert sorted(a.ravel()) == list(range(100))
    np.testing.assert_array_equal(a, perceptrons.batch_order(100, 20, seed=0, epoch=0))
    assert not np.array_equal(a, perceptrons.batch_order(100, 20, seed=1, epoch=0))
    assert not np.array_equal(a, perceptrons.batch_order(100, 20, seed=0, epoch=1))
    with pytest.raises(ValueError, match="multiple of the batch size"):
        perceptrons.batch_order(100, 30, seed=0, epoch=0)


def _keras_twins(make, seeds, optimizer):
    # One Keras model per seed, compiled with its own optimizer; and a stack of fresh twins.
    models = [make(s) for s in seeds]
    for model in models:
        model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stack = perceptrons.SeedStack([make(s) for s in seeds], list(seeds), optimizer())
    return models, stack


def _train_side_by_side(models, stack, data, seeds, epochs=2, batch_size=20):
    x, y = data["x_train"], data["y_train"]
    for epoch in range(epochs):
        order = np.stack([perceptrons.batch_order(len(x), batch_size, s, epoch) for s in seeds], 1)
        for idx in order:  # idx: (S, batch), each seed its own batch
            stack.train_step(x[idx], y[idx])
            for model, rows in zip(models, idx):
                model.train_on_batch(x[rows], y[rows])


def _rrelu_mlp(seed, lower, upper, batch_norm):
    # The chapter's layout with RReLU bounds of our choosing (lower == upper: no noise).
    layers = [keras.Input((8,))]
    for i, width in enumerate((16, 8)):
        init = keras.initializers.GlorotUniform(seed + i)
        layers.append(keras.layers.Dense(width, use_bias=not batch_norm, kernel_initializer=init))
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=0.9))
        layers.append(activations.RReLU(lower, upper, seed=seed))
    layers.append(keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed)))
    return keras.Sequential(layers)


@pytest.mark.parametrize("activation, batch_norm, optimizer", [
    ("relu", False, lambda: keras.optimizers.Adam(1e-2)),
    ("relu", True, lambda: keras.optimizers.Adam(1e-2)),
    ("prelu", True, lambda: keras.optimizers.Adam(1e-2)),
    ("leaky_relu_5.5", False, lambda: keras.optimizers.SGD(0.1)),
    ("elu", True, lambda: keras.optimizers.SGD(0.1)),
    ("gelu", False, lambda: keras.optimizers.Adam(1e-2)),
    ("relu", True, lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-2, 20))),
])
def test_stack_equals_separate_keras_runs(activation, batch_norm, optimizer):
    # S seeds in one stacked model end where S Keras models trained alone on the same batches
    # end: every weight, batch-norm statistic and PReLU slope, to float32 tolerance.
    data, seeds = _toy_data(200, 8), (0, 3, 7)

    def make(s):
        return perceptrons.build_mlp(activation, batch_norm=batch_norm, hidden=(16, 8),
                                     input_dim=8, num_classes=2, seed=s)

    models, stack = _keras_twins(make, seeds, optimizer)
    start = [m.get_weights() for m in models]
    _train_side_by_side(models, stack, data, seeds)
    for i, model in enumerate(models):
        ours, ref = stack.seed_weights(i), model.get_weights()
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-5)
        assert any(not np.allclose(b, b0) for b, b0 in zip(ref, start[i]))  # training moved it
    x = data["x_test"]
    np.testing.assert_allclose(stack.logits(x).numpy(), np.stack([m(x, training=False)
                                                                  for m in models]),
                               rtol=1e-4, atol=1e-4)
    loss, acc = stack.evaluate(x, data["y_test"], chunk=64)
    for i, model in enumerate(models):
        pred = model(x, training=False).numpy()
        assert acc[i] == pytest.approx(np.mean(pred.argmax(1) == data["y_test"]))
        assert loss[i] == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy(
            from_logits=True)(data["y_test"], pred)), rel=1e-4)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_stack_rrelu_with_matched_noise_equals_keras(batch_norm):
    # lower == upper makes both RReLUs deterministic (a = 5.5): the division path must agree.
    data, seeds = _toy_data(200, 8), (1, 2)
    models, stack = _keras_twins(lambda s: _rrelu_mlp(s, 5.5, 5.5, batch_norm), seeds,
                                 lambda: keras.optimizers.Adam(1e-2))
    _train_side_by_side(models, stack, data, seeds)
    for i, model in enumerate(models):
        for a, b in zip(stack.seed_weights(i), model.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=5e-5)


def test_stack_rrelu_inference_matches_keras_on_trained_weights():
    # Noisy training differs from Keras' draws, but inference with the stack's trained weights
    # (and batch-norm statistics) is the Keras model's inference.
    data, seeds = _toy_data(200, 8), (0, 1)
    make = lambda s: _rrelu_mlp(s, 3.0, 8.0, True)  # noqa: E731
    stack = perceptrons.SeedStack([make(s) for s in seeds], list(seeds),
                                  keras.optimizers.Adam(1e-2))
    _train_side_by_side([], stack, data, seeds)
    x = data["x_test"]
    for i, s in enumerate(seeds):
        model = make(s)
        model.set_weights(stack.seed_weights(i))
        np.testing.assert_allclose(stack.logits(x).numpy()[i], model(x, training=False),
                                   rtol=1e-5, atol=1e-5)


def _negative_probe_stack(seeds):
    # Dense with every kernel entry -1/4 on an input of ones gives -1 everywhere, so RReLU's
    # output is -1/a: the stack's draws can be read off directly.
    def make(_):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(
            500, use_bias=False, kernel_initializer=keras.initializers.Constant(-0.25)),
            activations.RReLU(3.0, 8.0)])

    return perceptrons.SeedStack([make(s) for s in seeds], list(seeds), keras.optimizers.SGD(0.0))


def test_stack_rrelu_noise_is_uniform_independent_per_seed_and_fresh_every_step():
    stack = _negative_probe_stack([5, 7, 9])
    divisors = -1.0 / stack._forward(np.ones((40, 4), np.float32), training=True,
                                     shared=True).numpy()
    assert divisors.shape == (3, 40, 500)
    assert divisors.min() >= 3.0 and divisors.max() <= 8.0
    assert abs(divisors.mean() - 5.5) < 0.05 and abs(divisors.std() - 5 / np.sqrt(12)) < 0.05
    flat = divisors.reshape(3, -1)
    assert np.abs(np.corrcoef(flat)[np.triu_indices(3, 1)]).max() < 0.02  # seeds independent
    stack.steps += 1
    again = -1.0 / stack._forward(np.ones((40, 4), np.float32), training=True, shared=True).numpy()
    assert abs(np.corrcoef(flat[0], again.reshape(3, -1)[0])[0, 1]) < 0.02  # new step, new draw
    # A seed's noise does not depend on which seeds share its stack.
    other = _negative_probe_stack([7, 11])
    np.testing.assert_array_equal(
        -1.0 / other._forward(np.ones((40, 4), np.float32), training=True, shared=True)[0],
        divisors[1])


def test_stack_rejects_mismatched_models():
    a = perceptrons.build_mlp("relu", hidden=(8,), input_dim=4)
    b = perceptrons.build_mlp("relu", batch_norm=True, hidden=(8,), input_dim=4)
    with pytest.raises(ValueError, match="one architecture"):
        perceptrons.SeedStack([a, b], [0, 1], keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="one noise seed per model"):
        perceptrons.SeedStack([a], [0, 1], keras.optimizers.SGD(0.1))
    for other in (keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.RMSprop(0.1),
                  keras.optimizers.Adam(0.1, weight_decay=0.01)):
        with pytest.raises(ValueError, match="Adam .* or plain SGD"):
            perceptrons.SeedStack([a], [0], other)
    stack = perceptrons.SeedStack([a], [0], keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="seed index"):
        stack.seed_weights(1)


def _run(seed, **kw):
    settings = dict(activation="rrelu", batch_norm=True, seed=seed, epochs=3, batch_size=20,
                    learning_rate=1e-2, hidden=(16,), n_eval_train=50)
    return perceptrons.RunConfig(**dict(settings, **kw))


def test_train_runs_learns_caches_and_keys_on_everything(tmp_path):
    data = _toy_data()
    first = perceptrons.train_runs([_run(0)], data, cache_dir=tmp_path, progress=False)[0]
    assert not first["cached"] and first["epochs"] == [1, 2, 3] and len(first["test_acc"]) == 3
    assert first["test_acc"][-1] > 0.9 and first["test_loss"][-1] < np.log(2)
    again = perceptrons.train_runs([_run(0)], data, cache_dir=tmp_path, progress=False)[0]
    assert again["cached"] and again["test_acc"] == first["test_acc"]
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert perceptrons.run_key(_run(1), data) != perceptrons.run_key(_run(0), data)
    assert perceptrons.run_key(_run(0, initializer="he_normal"), data) != \
        perceptrons.run_key(_run(0), data)
    cosine = perceptrons.train_runs([_run(0, schedule="cosine")], data, progress=False)[0]
    assert cosine["test_loss"] != first["test_loss"] and cosine["test_acc"][-1] > 0.9
    changed = dict(data, y_test=data["y_test"][::-1].copy())
    assert perceptrons.run_key(_run(0), changed) != perceptrons.run_key(_run(0), data)
    # One cached, one new: only the new seed is trained.
    out = perceptrons.train_runs([_run(0), _run(1)], data, cache_dir=tmp_path, progress=False)
    assert [r["cached"] for r in out] == [True, False] and out[1]["stack"] == 1


def test_train_runs_result_of_a_seed_does_not_depend_on_its_stack():
    # Seed 1 trained beside seed 0 and beside seed 2 (and with two other configurations in the
    # same call) gives the same curves: own weights, own data order, own noise.
    data = _toy_data(200, 8)
    a = perceptrons.train_runs([_run(0), _run(1), _run(0, activation="elu")], data,
                               progress=False)
    b = perceptrons.train_runs([_run(2), _run(1)], data, progress=False)
    assert a[1]["stack"] == 2 and a[2]["stack"] == 1
    for key in ("train_loss", "test_loss", "test_acc"):
        np.testing.assert_allclose(a[1][key], b[1][key], rtol=1e-4, atol=1e-5)
    assert a[0]["test_loss"] != a[1]["test_loss"]
    sparse = perceptrons.train_runs([_run(1, epochs=5, eval_every=2, n_curve_test=30)], data,
                                    progress=False)[0]
    assert sparse["epochs"] == [2, 4, 5] and len(sparse["batch_loss"]) == 5
    # Curves on the first 30 test images, the final score on all 100: different numbers.
    y30 = data["y_test"][:30]
    assert round(sparse["test_acc"][-1] * 30) == pytest.approx(sparse["test_acc"][-1] * 30)
    assert 0 <= sparse["final_test_acc"] <= 1 and len(y30) == 30
    full = perceptrons.train_runs([_run(1, epochs=5, eval_every=2)], data, progress=False)[0]
    assert full["final_test_acc"] == full["test_acc"][-1]
    assert full["final_test_acc"] == pytest.approx(sparse["final_test_acc"], abs=1e-9)


def test_unknown_activation_message_lists_every_name_once():
    with pytest.raises(ValueError) as err:
        perceptrons.build_mlp("rrleu")
    listed = str(err.value).split("choose one of ", 1)[1].rstrip(".").split(", ")
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == set(perceptrons.CONFIGS) | set(activations.ACTIVATIONS)


def test_train_subset_is_per_seed_reproducible_and_checked():
    a = perceptrons.train_subset(1000, 100, seed=0)
    assert a.shape == (100,) and len(set(a)) == 100 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 1000
    np.testing.assert_array_equal(a, perceptrons.train_subset(1000, 100, seed=0))
    assert len(set(a) & set(perceptrons.train_subset(1000, 100, seed=1))) < 50
    with pytest.raises(ValueError, match="between 1 and 1000"):
        perceptrons.train_subset(1000, 1001, seed=0)
    with pytest.raises(ValueError, match="n_train"):
        perceptrons.RunConfig("relu", batch_norm=False, seed=0, n_train=-1)
    with pytest.raises(ValueError, match="exceeds"):
        perceptrons.train_runs([_run(0, n_train=10**4)], _toy_data(), progress=False)


def test_train_runs_gives_each_seed_its_own_subset_paired_across_configurations():
    # Seed s trains on train_subset(s) in every configuration: its result equals a run on the
    # data cut down to that subset. Were the seeds to share one subset, seed 1 (whose subset
    # differs from seed 0's) would not match its own cut-down run.
    data, n = _toy_data(400, 8), 60
    plan = [_run(s, n_train=n, activation=a, schedule="cosine", n_eval_train=40)
            for a in ("rrelu", "elu") for s in (0, 1)]
    out = perceptrons.train_runs(plan, data, progress=False)
    subsets = {s: perceptrons.train_subset(len(data["x_train"]), n, s) for s in (0, 1)}
    assert not np.array_equal(subsets[0], subsets[1])
    for run, result in zip(plan, out):
        assert result["train_index"] == subsets[run.seed].tolist()
        own = dict(data, x_train=data["x_train"][subsets[run.seed]],
                   y_train=data["y_train"][subsets[run.seed]])
        alone = perceptrons.train_runs([dataclasses.replace(run, n_train=0)], own,
                                       progress=False)[0]
        for key in ("batch_loss", "train_loss", "train_acc", "test_loss", "final_test_acc"):
            np.testing.assert_allclose(result[key], alone[key], rtol=1e-4, atol=1e-5)
    assert out[0]["train_loss"] != out[1]["train_loss"]
    # The cache key sees the subset: another seed or size is another key.
    assert perceptrons.run_key(plan[0], data) != perceptrons.run_key(
        dataclasses.replace(plan[0], n_train=n + 20), data)


def test_stack_evaluates_each_seed_on_its_own_inputs():
    data, seeds = _toy_data(200, 8), (0, 1, 2)
    make = lambda s: perceptrons.build_mlp("relu", batch_norm=True, hidden=(16,),  # noqa: E731
                                           input_dim=8, num_classes=2, seed=s)
    stack = perceptrons.SeedStack([make(s) for s in seeds], list(seeds),
                                  keras.optimizers.Adam(1e-2))
    _train_side_by_side([], stack, data, seeds, epochs=1)
    x, y = data["x_test"], data["y_test"]
    parts = [slice(0, 30), slice(30, 60), slice(60, 90)]
    loss, acc = stack.evaluate(np.stack([x[p] for p in parts]), np.stack([y[p] for p in parts]),
                               chunk=7)
    for i, p in enumerate(parts):
        shared_loss, shared_acc = stack.evaluate(x[p], y[p])
        assert acc[i] == pytest.approx(shared_acc[i]) and loss[i] == pytest.approx(
            shared_loss[i], rel=1e-5)
    with pytest.raises(ValueError, match="Per-seed inputs"):
        stack.evaluate(np.stack([x[p] for p in parts[:2]]), np.stack([y[p] for p in parts[:2]]))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_stack_scores_rrelu_at_another_test_slope(batch_norm):
    # rrelu_slope=v scores the same weights as a Keras RReLU with a = 1/v at inference; the
    # default slope is 1/5.5; per-example correctness averages to the accuracy.
    data, seeds = _toy_data(200, 8), (0, 1)
    stack = perceptrons.SeedStack([_rrelu_mlp(s, 3.0, 8.0, batch_norm) for s in seeds],
                                  list(seeds), keras.optimizers.Adam(1e-2))
    _train_side_by_side([], stack, data, seeds, epochs=1)
    x, y = data["x_test"], data["y_test"]
    for slope in (None, 0.05, 0.3):
        twins = [_rrelu_mlp(s, 5.5, 5.5, batch_norm) if slope is None else
                 _rrelu_mlp(s, 1 / slope, 1 / slope, batch_norm) for s in seeds]
        for i, twin in enumerate(twins):
            twin.set_weights(stack.seed_weights(i))
        loss, correct = stack.score(x, y, chunk=33, rrelu_slope=slope)
        _, acc = stack.evaluate(x, y, rrelu_slope=slope)
        assert correct.shape == (len(seeds), len(x)) and correct.dtype == bool
        np.testing.assert_allclose(correct.mean(axis=1), acc)
        for i, twin in enumerate(twins):
            pred = twin(x, training=False).numpy()
            np.testing.assert_array_equal(correct[i], pred.argmax(1) == y)
            assert loss[i] == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy(
                from_logits=True)(y, pred)), rel=1e-4)
    low = stack.score(x, y, rrelu_slope=0.0)[0]
    assert not np.allclose(low, stack.score(x, y, rrelu_slope=0.3)[0])  # the slope matters
    with pytest.raises(ValueError, match="rrelu_slope"):
        stack.score(x, y, rrelu_slope=-0.1)


def test_stack_l2_penalty_shrinks_each_kernel_by_its_gradient():
    # One SGD step with penalty l2 * sum(W^2) moves each kernel by -lr * 2 * l2 * W more than
    # the step without it, seed by seed; biases are not penalised.
    data, seeds = _toy_data(200, 8), (0, 4)
    make = lambda s: perceptrons.build_mlp("relu", hidden=(16, 8), input_dim=8,  # noqa: E731
                                           num_classes=2, seed=s)
    lr, l2 = 0.1, 0.05
    plain = perceptrons.SeedStack([make(s) for s in seeds], list(seeds), keras.optimizers.SGD(lr))
    penalised = perceptrons.SeedStack([make(s) for s in seeds], list(seeds),
                                      keras.optimizers.SGD(lr), l2=l2)
    start = [plain.seed_weights(i) for i in range(len(seeds))]
    idx = np.stack([perceptrons.batch_order(100, 20, s, 0)[0] for s in seeds])
    x, y = data["x_train"][idx], data["y_train"][idx]
    plain.train_step(x, y)
    penalised.train_step(x, y)
    for i in range(len(seeds)):
        for w0, a, b in zip(start[i], plain.seed_weights(i), penalised.seed_weights(i)):
            expected = -lr * 2 * l2 * w0 if w0.ndim == 2 else np.zeros_like(w0)
            np.testing.assert_allclose(b - a, expected, atol=1e-6)
    with pytest.raises(ValueError, match="l2"):
        perceptrons.SeedStack([make(0)], [0], keras.optimizers.SGD(lr), l2=-1.0)


def test_runs_return_per_image_correctness_and_test_slope_scores():
    data = _toy_data(200, 8)
    common = dict(epochs=2, batch_size=20, learning_rate=1e-2, hidden=(16,), n_eval_train=50)
    plan = [perceptrons.RunConfig("rrelu", False, s, test_slopes=(0.2, 0.0), **common)
            for s in (0, 1)]
    runs = perceptrons.train_runs(plan, data)
    for run in runs:
        correct = perceptrons.correctness(run["final_test_correct"])
        assert correct.shape == (len(data["y_test"]),)
        assert run["final_test_acc"] == pytest.approx(correct.mean())
        assert len(run["test_slope_acc"]) == 2
        for acc, bits in zip(run["test_slope_acc"], run["test_slope_correct"]):
            assert acc == pytest.approx(perceptrons.correctness(bits).mean())
    with pytest.raises(ValueError, match="no RReLU layer"):
        perceptrons.RunConfig("relu", False, 0, test_slopes=(0.2,))
    with pytest.raises(ValueError, match="l2"):
        perceptrons.RunConfig("relu", False, 0, l2=-0.1)
    with pytest.raises(ValueError, match="0s and 1s"):
        perceptrons.correctness("01x")


def test_validation_split_holds_out_the_last_training_images():
    data = _toy_data(n=400)
    train, val = perceptrons.validation_split(data, 50)
    assert len(train["x_train"]) == 150 and len(val["x_test"]) == 50
    np.testing.assert_array_equal(val["x_test"], data["x_train"][150:])
    np.testing.assert_array_equal(val["y_test"], data["y_train"][150:])
    np.testing.assert_array_equal(train["x_test"], data["x_test"])  # the real test set kept
    np.testing.assert_array_equal(val["x_train"], train["x_train"])
    assert np.shares_memory(train["x_train"], data["x_train"])  # no copy
    # no validation image is one a run can train on
    held = {row.tobytes() for row in val["x_test"]}
    assert not held & {row.tobytes() for row in train["x_train"]}


@pytest.mark.parametrize("bad", [0, 200, -1, 2.5, True])
def test_validation_split_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="n_val must be an integer"):
        perceptrons.validation_split(_toy_data(n=400), bad)


def test_train_runs_max_stack_splits_the_seeds_without_changing_results():
    data = _toy_data()
    runs = [perceptrons.RunConfig("rrelu", False, s, epochs=2, batch_size=50, hidden=(8,),
                                  learning_rate=1e-2, n_train=100) for s in (0, 1, 2)]
    together = perceptrons.train_runs(runs, data, progress=False, jit_compile=False)
    split = perceptrons.train_runs(runs, data, progress=False, jit_compile=False, max_stack=2)
    assert [r["stack"] for r in together] == [3, 3, 3]
    assert [r["stack"] for r in split] == [2, 2, 1]
    for a, b in zip(together, split):
        np.testing.assert_allclose(a["batch_loss"], b["batch_loss"], rtol=1e-5)
        assert a["final_test_correct"] == b["final_test_correct"]
    with pytest.raises(ValueError, match="max_stack must be a positive"):
        perceptrons.train_runs(runs, data, progress=False, max_stack=0)
