import numpy as np
import pytest

from helpers import config, deployment, freeze, stats

RNG = np.random.default_rng(0)
X = RNG.random((40, 28, 28, 1), dtype=np.float32)
Y = RNG.integers(0, 10, size=40)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config, "CACHE_DIR", tmp_path_factory.mktemp("cache"))
        return deployment.trained_small_cnn(X, Y, epochs=1, seed=0, batch_size=8)


@pytest.fixture(scope="module")
def paths(model, tmp_path_factory):
    return deployment.write_formats(model, tmp_path_factory.mktemp("formats"), X[:10])


def test_training_is_cached_and_seeded(model, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path)
    first = deployment.trained_small_cnn(X, Y, epochs=1, seed=0, batch_size=8)
    assert len(list(tmp_path.rglob("*.keras"))) == 1
    again = deployment.trained_small_cnn(X, Y, epochs=1, seed=0, batch_size=8)  # from cache
    for a, b, c in zip(first.get_weights(), again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)  # same seed, same weights as the fixture's run
    other = deployment.trained_small_cnn(X, Y, epochs=1, seed=1, batch_size=8)
    assert not np.array_equal(other.get_weights()[0], first.get_weights()[0])
    with pytest.raises(ValueError, match=r"shape \(n, 28, 28, 1\)"):
        deployment.trained_small_cnn(X[..., 0], Y, epochs=1, seed=0)


def test_every_format_loads_and_reproduces_keras(model, paths):
    assert set(paths) == set(deployment.FILES) and all(p.exists() for p in paths.values())
    expected = model(X, training=False).numpy()
    tolerance = {"tflite_float16": 0.02, "tflite_dynamic": 0.1, "tflite_int8": 0.2}
    for name, load in deployment.loaders(paths).items():
        got = deployment.run_batches(load(), X, batch=16)
        assert got.shape == expected.shape, name
        assert np.abs(got - expected).max() < tolerance.get(name, 1e-5), name
    assert deployment.file_size(paths["tflite_int8"]) * 2 < deployment.file_size(
        paths["tflite_float"])


def test_baselines_compute_the_model(model):
    expected = model(X[:5], training=False).numpy()
    runs = deployment.baselines(model)
    assert tuple(runs) == deployment.BASELINES
    for name, run in runs.items():
        np.testing.assert_allclose(deployment.as_numpy(run(X[:5])), expected, atol=1e-5,
                                   err_msg=name)


def test_loaders_need_every_path(paths):
    with pytest.raises(ValueError, match="onnx"):
        deployment.loaders({k: v for k, v in paths.items() if k != "onnx"})


def test_latency_rounds_time_every_run_and_batch():
    calls = []
    runs = {"a": lambda x: calls.append(("a", len(x))), "b": lambda x: calls.append(("b", len(x)))}
    result = deployment.latency_rounds(runs, X, [1, 4], rounds=3, min_seconds=1e-4)
    assert set(result) == {"a", "b"} and all(set(r) == {1, 4} for r in result.values())
    assert all(v.shape == (3,) and np.all(v >= 0) for r in result.values() for v in r.values())
    assert {("a", 1), ("a", 4), ("b", 1), ("b", 4)} == set(calls)
    with pytest.raises(ValueError, match="largest batch"):
        deployment.latency_rounds(runs, X, [100], rounds=1, min_seconds=1e-4)
    with pytest.raises(ValueError, match="rounds >= 1"):
        deployment.latency_rounds(runs, X, [1], rounds=0, min_seconds=1e-4)


def test_latency_rounds_shuffle_the_order_of_runs_every_round():
    """No run keeps a fixed neighbour: with three runs, each ordered pair of runs follows
    each other in some rounds and not in others, and a seed repeats the orders."""
    names = "abc"

    def orders(seed):
        calls = []
        runs = {n: (lambda x, n=n: calls.append(n)) for n in names}
        deployment.latency_rounds(runs, X, [1], rounds=12, min_seconds=1e-9, seed=seed)
        timed = calls[3 * len(names):]  # after the sizing calls (2 warm-ups and 1 each)
        per_run = len(timed) // (12 * len(names))  # calls per timing (warm-up + repeats)
        return ["".join(timed[i] for i in range(start, start + per_run * 3, per_run))
                for start in range(0, len(timed), per_run * 3)]

    first = orders(0)
    assert len(first) == 12 and all(sorted(o) == list(names) for o in first)
    assert len(set(first)) > 3  # a rotation of three runs gives only three orders
    follows = {(o[i], o[i + 1]) for o in first for i in range(2)}
    assert len(follows) == 6  # every run follows every other in some round
    assert orders(0) == first and orders(1) != first


def test_file_size_and_timer(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 5)
    assert deployment.file_size(tmp_path / "a") == 10 and deployment.file_size(tmp_path) == 15
    with pytest.raises(FileNotFoundError, match="missing"):
        deployment.file_size(tmp_path / "missing")
    calls = []
    times = deployment.time_calls(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and times.shape == (4,) and np.all(times >= 0)
    with pytest.raises(ValueError, match="repeats"):
        deployment.time_calls(lambda: None, repeats=0)


def test_timed_runs_add_the_baselines_and_the_raw_litert_calls(model, paths):
    loaded = {name: load() for name, load in deployment.loaders(paths).items()}
    runs = deployment.timed_runs(model, loaded, X[:8])
    assert list(runs)[:3] == list(deployment.BASELINES)
    assert set(runs) == (set(deployment.FILES) | set(deployment.BASELINES)
                         | {"tflite_int8_raw", "tflite_float_raw"})
    raw = runs["tflite_int8_raw"](X[:4])
    assert raw.dtype == np.int8 and raw.shape == (4, 10)
    np.testing.assert_allclose(loaded["tflite_int8"].dequantise(raw), loaded["tflite_int8"](X[:4]))
    raw_float = runs["tflite_float_raw"](X[:4])
    assert raw_float.dtype == np.float32
    np.testing.assert_allclose(raw_float, loaded["tflite_float"](X[:4]))


def test_own_interpreter_loads_a_second_interpreter_of_the_same_file(model, paths):
    first = freeze.load_tflite(paths["tflite_int8"], kernels="builtin")
    second = deployment.own_interpreter(first)
    assert second.interpreter is not first.interpreter
    assert second.path == first.path and second.kernels == "builtin"
    np.testing.assert_array_equal(second(X[:4]), first(X[:4]))
    with pytest.raises(ValueError, match="from a file"):
        deployment.own_interpreter(freeze.TFLiteFunction(paths["tflite_int8"].read_bytes()))


def test_fidelity_counts_agreement_and_accuracy():
    reference = np.eye(3)[[0, 1, 2, 0]]
    outputs = np.eye(3)[[0, 1, 1, 2]] * 0.9
    result = deployment.fidelity(outputs, reference, np.array([0, 1, 1, 1]))
    assert result == {"max_diff": 1.0, "agreement": 0.5, "accuracy": 0.75}
    with pytest.raises(ValueError, match="same images"):
        deployment.fidelity(outputs[:3], reference, np.zeros(4))


def test_median_ratio_resists_outlier_rounds_and_matches_its_sign_test():
    base = np.full(20, 1e-3)
    slower = 2 * base
    slower[:3] = 100 * base[:3]  # three rounds hit by a burst of load
    c = deployment.median_ratio(slower, base, name="slow / base")
    assert np.isclose(np.exp(c.mean), 2.0)  # the mean log ratio would be ~3.9
    assert c.verdict == "higher" and c.low > 0
    mixed = base * np.exp(np.tile([0.1, -0.1], 10))
    m = deployment.median_ratio(mixed, base)
    assert m.verdict == "not resolved" and m.low < 0 < m.high and m.p == 1.0
    (h,) = stats.holm([c])  # usable in a chapter's Holm family
    assert h.verdict == "higher"
    with pytest.raises(ValueError, match="positive"):
        deployment.median_ratio(-base, base)
    with pytest.raises(ValueError, match="same length"):
        deployment.median_ratio(base[:5], base)


def test_median_equivalence_needs_rounds_inside_the_margin():
    base = np.full(30, 1e-3)
    close = base * np.exp(np.tile([0.02, -0.02, 0.01], 10))
    assert deployment.median_equivalence(close, base, np.log(1.25)).equivalent
    far = base * 1.5
    assert not deployment.median_equivalence(far, base, np.log(1.25)).equivalent
    with pytest.raises(ValueError, match="margin"):
        deployment.median_equivalence(close, base, 0.0)


def test_detectable_log_ratio_shrinks_with_rounds_and_grows_with_the_family():
    few = deployment.detectable_log_ratio(0.2, 12, family_size=10)
    many = deployment.detectable_log_ratio(0.2, 40, family_size=10)
    assert 0 < many < few
    assert deployment.detectable_log_ratio(0.2, 40, family_size=30) > many
    assert deployment.detectable_log_ratio(0.2, 5, family_size=30) == float("inf")
    # Check by simulation: at the detectable shift the sign test resolves ~80 % of designs.
    rng = np.random.default_rng(0)
    shift = deployment.detectable_log_ratio(0.2, 20, family_size=1)
    hits = [deployment.median_ratio(np.exp(rng.normal(shift, 0.2, 20)), np.ones(20)).verdict
            == "higher" for _ in range(400)]
    assert 0.72 < np.mean(hits) < 0.88
    assert np.isclose(deployment.robust_sd(np.exp(rng.normal(0, 0.2, 4000)), np.ones(4000)),
                      0.2, rtol=0.1)


def test_accuracy_difference_is_zero_when_no_image_changes():
    ref = np.tile([1, 0, 1, 1], 10).astype(float)
    same = deployment.accuracy_difference(ref, ref)
    assert (same.mean, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
    worse = deployment.accuracy_difference(np.zeros(40), ref)
    assert np.isclose(worse.mean, -100 * ref.mean()) and worse.high < 0
    assert [c.verdict for c in stats.holm([same, worse])] == ["not resolved", "lower"]
    with pytest.raises(ValueError, match="same images"):
        deployment.accuracy_difference(ref[:3], ref)


def test_mcnemar_difference_uses_the_discordant_images_and_matches_its_interval():
    from statsmodels.stats.contingency_tables import mcnemar

    reference = np.repeat([1, 0], 100)
    correct = reference.copy()
    correct[:15] = 0  # 15 images newly wrong ...
    correct[100:103] = 1  # ... and 3 newly right
    b, c = int(np.sum((correct == 1) & (reference == 0))), int(np.sum((correct == 0)
                                                                        & (reference == 1)))
    assert (b, c) == (3, 15)
    result = deployment.mcnemar_difference(correct, reference, name="worse")
    assert np.isclose(result.mean, 100 * (b - c) / reference.size)
    assert np.isclose(result.p, mcnemar([[0, b], [c, 0]], exact=True).pvalue)
    for level in (0.9, 0.95, 0.99, 0.999):  # interval and test agree at every level
        low, high = result._interval_at(level)
        assert low < result.mean < high
        assert (high < 0) == (result.p < 1 - level)
    family = stats.Family().add(result)
    assert family.members[0].verdict == "lower" and family.members[0].method == "McNemar exact"
    same = deployment.mcnemar_difference(reference, reference)
    assert (same.mean, same.low, same.high, same.p) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="0/1"):
        deployment.mcnemar_difference(reference * 2, reference)
    with pytest.raises(ValueError, match="same images"):
        deployment.mcnemar_difference(reference[:3], reference)


def test_median_equivalence_joins_a_holm_family():
    base = np.full(30, 1e-3)
    close = base * np.exp(np.tile([0.02, -0.02, 0.01], 10))
    family = stats.Family().add(deployment.median_equivalence(close, base, np.log(1.25)))
    family.add(deployment.median_ratio(base * 1.5, base))
    assert [m.verdict for m in family.members] == ["equivalent", "higher"]
    wide = base * np.exp(np.tile([0.3, -0.3], 15))
    alone = stats.Family().add(deployment.median_equivalence(wide, base, np.log(1.25)))
    assert alone.members[0].verdict == "not resolved"


def test_timed_runs_with_paths_add_an_aa_pair_and_the_builtin_kernels(model, paths):
    loaded = {name: load() for name, load in deployment.loaders(paths).items()}
    runs = deployment.timed_runs(model, loaded, X[:8], paths=paths)
    extra = set(deployment.EXTRA_RAW_LABELS)
    assert extra <= set(runs) and all(deployment.label(n) != n for n in extra)
    np.testing.assert_allclose(runs["tflite_float_again_raw"](X[:4]),
                               runs["tflite_float_raw"](X[:4]))
    np.testing.assert_allclose(runs["tflite_float_builtin_raw"](X[:4]),
                               runs["tflite_float_raw"](X[:4]), atol=1e-5)
    builtin_int8 = runs["tflite_int8_builtin_raw"](X[:4])
    assert builtin_int8.dtype == np.int8
    assert np.abs(builtin_int8.astype(int) - runs["tflite_int8_raw"](X[:4])).max() <= 1
