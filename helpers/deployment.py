"""The freezing chapter's classifier and the formats it is deployed in: write, load, time.

One definition serves chapter 5 and ``benchmarks/freezing.py``: the small Fashion-MNIST
network, the file each deployment format writes, a loader per format returning a callable on
a batch, the compiled Keras baselines, and latency measured in interleaved rounds, so that
every format is timed under the same machine load as the others.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers import config, freeze, stats

FILES: dict[str, str] = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "frozen_graph": "model.pb",
    "keras_litert": "keras_export.tflite",
    "tflite_float": "model_float.tflite",
    "tflite_float16": "model_float16.tflite",
    "tflite_dynamic": "model_dynamic.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}
"""Each deployment format and the file (or folder) ``write_formats`` writes for it."""

BASELINES: tuple[str, ...] = ("keras", "keras_function", "keras_xla")
"""The in-process Keras calls every format is compared with: eager, ``tf.function``, XLA."""

EXTRA_RAW_LABELS: dict[str, str] = {
    "tflite_float_again_raw": "TFLite float, invoke() alone, second interpreter (A/A)",
    "tflite_float_builtin_raw": "TFLite float, invoke() alone, builtin kernels (no XNNPACK)",
    "tflite_int8_builtin_raw": "TFLite full-integer, invoke() alone, builtin kernels (no XNNPACK)",
}
"""Display labels of the raw LiteRT runs ``timed_runs`` adds when given the files' paths."""


def label(name: str) -> str:
    """Return the display label of a timed run (``EXTRA_RAW_LABELS``, else ``plots.label``)."""
    from helpers import plots

    return EXTRA_RAW_LABELS.get(name, plots.label(name))


def small_cnn() -> Any:
    """Return the chapter's untrained network: two convolution blocks, two dense layers."""
    import keras

    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax", name="probabilities"),
    ], name="fashion_cnn")


def trained_small_cnn(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int,
                      batch_size: int = 128, verbose: int = 0) -> Any:
    """Train ``small_cnn`` with Adam (or load the cached result of the same training).

    Args:
        x: training images, float32 of shape (n, 28, 28, 1) in [0, 1].
        y: integer labels 0-9, shape (n,).
        epochs: passes over the data; 0 returns the untrained, compiled network.
        seed: seeds initialisation and shuffling.
        batch_size: images per step.
        verbose: Keras' ``fit`` verbosity.

    Returns:
        The compiled, trained Keras model (cached under ``data/cache/<scale>/freezing``).
    """
    import keras

    if x.ndim != 4 or x.shape[1:] != (28, 28, 1) or len(x) != len(y):
        raise ValueError(f"Need images of shape (n, 28, 28, 1) and n labels, got {x.shape} "
                         f"and {np.shape(y)}.")
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"Need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}.")
    key = config.cache_key({"model": "fashion_cnn", "epochs": epochs, "seed": seed,
                            "batch_size": batch_size}, x, y)
    cached = config.cache_dir("freezing") / f"fashion_cnn-{key}.keras"
    if cached.is_file():
        return keras.models.load_model(cached)  # our own file, written below
    config.set_seed(seed)
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if epochs:
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=verbose)
    model.save(cached)
    return model


def write_formats(model: Any, folder: str | Path, calibration: np.ndarray) -> dict[str, Path]:
    """Write ``model`` in every format of ``FILES``; return each format's path.

    The SavedModel and the Keras LiteRT and ONNX files come from Keras 3's ``model.export``;
    the four TensorFlow Lite flavours from ``TFLiteConverter.from_saved_model`` on that
    SavedModel; the frozen GraphDef from ``freeze.freeze_to_graphdef``.

    Args:
        model: a Keras model with a known input shape.
        folder: an existing folder to write into.
        calibration: representative inputs (first axis) for the full-integer flavour.

    Returns:
        A dict from format name to the file or folder written.
    """
    import tensorflow as tf

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"write_formats needs an existing folder, got {str(folder)!r}.")
    paths = {name: folder / file for name, file in FILES.items()}
    model.save(paths["keras"])
    model.export(paths["savedmodel"], format="tf_saved_model", verbose=False)
    frozen = freeze.freeze_to_graphdef(model)
    tf.io.write_graph(frozen.graph_def, str(folder), FILES["frozen_graph"], as_text=False)
    model.export(paths["keras_litert"], format="litert", verbose=False)
    for mode in freeze.TFLITE_MODES:
        paths[f"tflite_{mode}"].write_bytes(freeze.convert_to_tflite(
            paths["savedmodel"], mode, representative_data=calibration))
    model.export(paths["onnx"], format="onnx", verbose=False)
    return paths


def threads() -> int:
    """Return the CPU threads every runtime is given: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def pin_threads() -> int:
    """Give TensorFlow the threads LiteRT and ONNX Runtime get: ``threads()`` intra-op, 1 inter-op.

    Call it before TensorFlow runs its first operation (its thread pools are fixed then).

    Returns:
        The intra-op thread count now set.
    """
    import tensorflow as tf

    n = threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:
        if (tf.config.threading.get_intra_op_parallelism_threads() != n
                or tf.config.threading.get_inter_op_parallelism_threads() != 1):
            raise ValueError("TensorFlow has already started its thread pools; call "
                             "deployment.pin_threads() before running any TensorFlow "
                             f"operation ({err}).") from err
    return n


def _load_keras(path: Path) -> Callable:
    import keras

    loaded = keras.models.load_model(path)
    return lambda x: loaded(x, training=False)  # an eager call, not predict()


def _load_savedmodel(path: Path) -> Callable:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(x)  # keeps the loaded object (and its variables) alive


def _load_onnx(path: Path) -> Callable:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1  # as TensorFlow's (pin_threads) and LiteRT's single pool
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def loaders(paths: dict[str, Path]) -> dict[str, Callable[[], Callable]]:
    """One function per format that loads its file and returns a callable on a batch.

    Args:
        paths: what ``write_formats`` returned.

    Returns:
        A dict from format name to a no-argument loader; each loaded callable takes a
        float32 batch of shape (n, 28, 28, 1) and returns the (n, 10) probabilities.
    """
    missing = sorted(set(FILES) - set(paths))
    if missing:
        raise ValueError(f"No path for the format(s) {missing}; pass what write_formats "
                         "returned.")
    special = {"keras": _load_keras, "savedmodel": _load_savedmodel, "onnx": _load_onnx,
               "frozen_graph": freeze.load_frozen_graph}
    return {name: (lambda name=name: special[name](paths[name]) if name in special
                   else freeze.load_tflite(paths[name], num_threads=threads()))
            for name in FILES}


def baselines(model: Any) -> dict[str, Callable]:
    """Return the in-process Keras calls of ``BASELINES``: eager, graph and XLA-compiled.

    Args:
        model: a Keras model taking (n, 28, 28, 1) images.

    Returns:
        ``{"keras": eager call, "keras_function": tf.function, "keras_xla": tf.function
        with jit_compile=True}``, each a callable on a batch.
    """
    import tensorflow as tf

    spec = [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)]

    def call(x):
        return model(x, training=False)

    return {"keras": call,
            "keras_function": tf.function(call, input_signature=spec),
            "keras_xla": tf.function(call, input_signature=spec, jit_compile=True)}


def timed_runs(model: Any, loaded: dict[str, Callable], x: np.ndarray,
               paths: dict[str, Path] | None = None) -> dict[str, Callable]:
    """Every callable the chapter and the benchmark time, in one order.

    Args:
        model: the in-memory Keras model (for the compiled baselines).
        loaded: format name to loaded callable (the loaders' results); the eager baseline
            ``"keras"`` is the model loaded from its ``.keras`` file.
        x: the inputs the runs will be called on (prefixes ``x[:b]``): the full-integer
            model's raw run is fed them quantised in advance.

    Returns:
        The baselines, then every format, then ``"tflite_float_raw"`` and
        ``"tflite_int8_raw"``: ``invoke()`` alone (no NumPy conversion, no range check) on
        input already in the model's type (float32, or int8 quantised in advance), returning
        the raw output tensor, each on an interpreter of its own (``own_interpreter``): two
        runs sharing one interpreter slow each other down. With ``paths`` (``write_formats``'
        result) three more raw runs follow, each on an interpreter of its own:
        ``"tflite_float_again_raw"`` (the float file again, with the same settings: an A/A
        pair with ``"tflite_float_raw"``), and
        ``"tflite_float_builtin_raw"`` and ``"tflite_int8_builtin_raw"`` (LiteRT's builtin
        kernels only, without its default XNNPACK delegate).
    """
    runs = {"keras": loaded["keras"]}
    runs.update({k: v for k, v in baselines(model).items() if k != "keras"})
    runs.update({k: v for k, v in loaded.items() if k != "keras"})
    int8 = own_interpreter(loaded["tflite_int8"])  # never the wrapped run's interpreter
    quantised = int8.quantise(x)
    floats = np.asarray(x, dtype=np.float32)
    float_model = own_interpreter(loaded["tflite_float"])
    runs["tflite_float_raw"] = lambda xb: float_model.invoke_quantised(floats[:len(xb)])
    runs["tflite_int8_raw"] = lambda xb: int8.invoke_quantised(quantised[:len(xb)])
    if paths is not None:
        again = freeze.load_tflite(paths["tflite_float"], num_threads=threads())
        float_builtin = freeze.load_tflite(paths["tflite_float"], num_threads=threads(),
                                           kernels="builtin")
        int8_builtin = freeze.load_tflite(paths["tflite_int8"], num_threads=threads(),
                                          kernels="builtin")
        runs["tflite_float_again_raw"] = lambda xb: again.invoke_quantised(floats[:len(xb)])
        runs["tflite_float_builtin_raw"] = (
            lambda xb: float_builtin.invoke_quantised(floats[:len(xb)]))
        runs["tflite_int8_builtin_raw"] = (
            lambda xb: int8_builtin.invoke_quantised(quantised[:len(xb)]))
    return runs


def own_interpreter(tflite: freeze.TFLiteFunction) -> freeze.TFLiteFunction:
    """Load the file behind ``tflite`` again, with the same kernels, into a new interpreter.

    Two timed runs that share one LiteRT interpreter interfere (the one whose input buffer
    changes pays for it), so every timed run gets an interpreter of its own.
    """
    if getattr(tflite, "path", None) is None:
        raise ValueError("own_interpreter needs a TFLiteFunction loaded from a file (load it "
                         "with freeze.load_tflite(path)), not from bytes.")
    return freeze.load_tflite(tflite.path, num_threads=threads(), kernels=tflite.kernels)


def load_seconds(loads: dict[str, Callable[[], Callable]], repeats: int) -> dict[str, np.ndarray]:
    """Time ``repeats`` loads of every format (after one untimed load); seconds per load."""
    return {name: time_calls(load, repeats=repeats, warmup=1) for name, load in loads.items()}


def fidelity(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Compare a format's probabilities with the Keras model's on the same images.

    Args:
        outputs: the format's (n, classes) probabilities.
        reference: the Keras model's on the same n images.
        labels: the n true classes.

    Returns:
        ``max_diff`` (largest absolute difference), ``agreement`` (share of images given the
        Keras model's top-1 class), ``accuracy`` (share classified correctly).
    """
    if outputs.shape != reference.shape or len(labels) != len(outputs):
        raise ValueError(f"Outputs {outputs.shape}, reference {reference.shape} and "
                         f"{len(labels)} labels must describe the same images.")
    top = outputs.argmax(axis=1)
    return {"max_diff": float(np.abs(outputs - reference).max()),
            "agreement": float(np.mean(top == reference.argmax(axis=1))),
            "accuracy": float(np.mean(top == labels))}


def as_numpy(y: Any) -> np.ndarray:
    """Return a format's output as a NumPy array (TensorFlow tensors included)."""
    return y.numpy() if hasattr(y, "numpy") else np.asarray(y)


def run_batches(run: Callable, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Run ``run`` over ``x`` in batches of ``batch``; return the concatenated outputs."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}.")
    return np.concatenate([as_numpy(run(x[i:i + batch])) for i in range(0, len(x), batch)])


def latency_rounds(runs: dict[str, Callable], x: np.ndarray, batches: Sequence[int], *,
                   rounds: int, min_seconds: float,
                   seed: int = 0) -> dict[str, dict[int, np.ndarray]]:
    """Median seconds per call of every run at every batch size, once per round.

    Each round times every run at every batch size in turn, in an order shuffled afresh
    every round (the batch sizes and, within each, the runs), so no run keeps a fixed
    position or a fixed neighbour: a run that leaves caches, threads or allocations warm or
    cold for the next one biases no pair the same way in every round. (An earlier version
    rotated the order, which keeps every run's neighbours fixed.) Load that drifts slower
    than a round hits all runs alike, which makes the rounds the pairing unit of a
    comparison; bursts shorter than a round do not, which is why rounds are compared with a
    robust statistic (``median_ratio``).

    Args:
        runs: name to callable on a batch (``x[:b]`` for batch size ``b``).
        x: inputs; at least ``max(batches)`` of them.
        batches: batch sizes to time.
        rounds: how many rounds.
        min_seconds: each timing in a round lasts about this long (at least 3 calls).
        seed: seeds the shuffled orders (the same seed, the same orders).

    Returns:
        ``{name: {batch: array of shape (rounds,)}}`` in seconds per call.
    """
    batches = [int(b) for b in batches]
    if rounds < 1 or min_seconds <= 0 or not batches or min(batches) < 1:
        raise ValueError(f"Need rounds >= 1, min_seconds > 0 and positive batch sizes, got "
                         f"{rounds}, {min_seconds} and {batches}.")
    if max(batches) > len(x):
        raise ValueError(f"The largest batch ({max(batches)}) needs at least that many "
                         f"inputs, got {len(x)}.")
    names = list(runs)
    calls: dict[tuple[str, int], int] = {}
    for name in names:  # warm up (tracing, XLA compiles, resizes) and size each timing
        for b in batches:
            once = _one_call_seconds(runs[name], x[:b], warmup=2)
            calls[name, b] = int(min(1000, max(3, math.ceil(min_seconds / once))))
    result = {name: {b: np.empty(rounds) for b in batches} for name in names}
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        for b in (batches[i] for i in rng.permutation(len(batches))):
            xb = x[:b]
            for name in (names[i] for i in rng.permutation(len(names))):
                seconds = time_calls(lambda name=name, xb=xb: runs[name](xb),
                                     repeats=calls[name, b], warmup=1)
                result[name][b][r] = float(np.median(seconds))
    return result


def _one_call_seconds(run: Callable, x: np.ndarray, warmup: int) -> float:
    """Return the seconds of one call of ``run(x)`` after ``warmup`` untimed calls."""
    return float(time_calls(lambda: run(x), repeats=1, warmup=warmup)[0])


def file_size(path: str | Path) -> int:
    """Return the size in bytes of a file, or of all files under a folder (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if not path.exists():
        raise FileNotFoundError(f"Nothing at {str(path)!r} to measure.")
    return path.stat().st_size


def time_calls(function: Callable[[], Any], repeats: int, warmup: int = 3) -> np.ndarray:
    """Time ``repeats`` calls of ``function()`` after ``warmup`` untimed ones.

    Args:
        function: a callable with no arguments (wrap the input in a lambda).
        repeats: how many timed calls.
        warmup: untimed calls first (tracing, allocation, caches).

    Returns:
        The wall time of each timed call, in seconds.
    """
    import time

    if repeats < 1 or warmup < 0:
        raise ValueError(f"Need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}.")
    for _ in range(warmup):
        function()
    times = np.empty(repeats)
    collecting = gc.isenabled()
    gc.disable()  # no garbage-collection pause inside a timed call
    try:
        for i in range(repeats):
            start = time.perf_counter()
            function()
            times[i] = time.perf_counter() - start
    finally:
        if collecting:
            gc.enable()
    return times


def median_ratio(a: np.ndarray, b: np.ndarray, *, name: str = "",
                 confidence: float = 0.95) -> stats.Comparison:
    """Compare two runs' per-round latencies robustly: the median of ``log(a / b)``.

    The interval is the sign-test (binomial order-statistic) interval for the median of the
    per-round log ratios and ``p`` the two-sided sign test (``scipy.stats.binomtest``), so a
    few rounds hit by a burst of load move neither. The interval excludes zero exactly when
    ``p`` is below ``1 - confidence``; ``stats.holm`` recomputes it at its corrected level.

    Args:
        a, b: seconds per call of two runs, one value per round (same rounds, same order).
        name: what is compared, e.g. ``"LiteRT / tf.function, batch 1"``.
        confidence: the interval's level before any correction.

    Returns:
        A ``stats.Comparison`` whose ``mean``, ``low`` and ``high`` are the median log ratio
        and its interval (``exp`` gives the ratio), ``method`` ``"sign test (median)"``.
    """
    import scipy.stats

    d = _log_ratios(a, b, "median_ratio")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}.")
    ordered = np.sort(d)

    def interval_at(level: float) -> tuple[float, float]:
        j = _order_statistic(len(ordered), 1 - level)
        if j == 0:  # too few rounds for this level: the interval is unbounded
            return -math.inf, math.inf
        return float(ordered[j - 1]), float(ordered[len(ordered) - j])

    nonzero = d[d != 0]
    p = (float(scipy.stats.binomtest(int(np.sum(nonzero > 0)), len(nonzero)).pvalue)
         if len(nonzero) else 1.0)
    low, high = interval_at(confidence)
    verdict = "higher" if low > 0 else "lower" if high < 0 else "not resolved"
    return stats.Comparison(name=name, mean=float(np.median(d)), low=low, high=high,
                            confidence=float(confidence), p=p, p_adjusted=p, n=int(d.size),
                            verdict=verdict, method="sign test (median)", shape=(d.size,),
                            _interval_at=interval_at)


def median_equivalence(a: np.ndarray, b: np.ndarray, margin: float, *, name: str = "",
                       alpha: float = 0.05) -> stats.Equivalence:
    """Test whether the median per-round ``log(a / b)`` lies within ``(-margin, margin)``.

    Two one-sided sign tests (``scipy.stats.binomtest``): the median exceeds ``-margin``
    and lies below ``margin``; the ``1 - 2 * alpha`` interval is ``median_ratio``'s.

    Args:
        a, b: seconds per call of two runs, one value per round.
        margin: the largest log ratio that counts as "no difference", stated in advance.
        name: what is compared.
        alpha: the level of each one-sided test.

    Returns:
        A ``stats.Equivalence`` (``equivalent`` when both one-sided tests reject) whose
        interval a ``stats.Family`` can recompute at its Holm level (the sign-test interval).
    """
    import scipy.stats

    if not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"median_equivalence needs a positive margin (a log ratio), got "
                         f"{margin!r}.")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie strictly between 0 and 0.5, got {alpha!r}.")
    d = _log_ratios(a, b, "median_equivalence")
    above = float(scipy.stats.binomtest(int(np.sum(d > -margin)), d.size,
                                        alternative="greater").pvalue)
    below = float(scipy.stats.binomtest(int(np.sum(d < margin)), d.size,
                                        alternative="greater").pvalue)
    c = median_ratio(a, b, name=name, confidence=1 - 2 * alpha)
    p = max(above, below)
    return stats.Equivalence(name=name, mean=c.mean, low=c.low, high=c.high,
                             margin=float(margin), p=p, equivalent=bool(p < alpha),
                             n=int(d.size), confidence=float(1 - 2 * alpha),
                             _interval_at=c._interval_at)


def robust_sd(a: np.ndarray, b: np.ndarray) -> float:
    """Return the spread of the per-round ``log(a / b)``: the MAD scaled to a normal sd."""
    import scipy.stats

    d = _log_ratios(a, b, "robust_sd")
    return float(scipy.stats.median_abs_deviation(d, scale="normal"))


def detectable_log_ratio(sd: float, rounds: int, *, alpha: float = 0.05, power: float = 0.8,
                         family_size: int = 1) -> float:
    """Smallest median log ratio ``median_ratio`` detects at ``power``, for normal noise.

    The sign test at level ``alpha / family_size`` (Holm's first step) over ``rounds``
    rounds rejects when enough rounds share a sign; with log ratios normal with spread
    ``sd``, a round is positive with probability ``Phi(delta / sd)``. The answer is the
    ``delta`` at which the rejection probability reaches ``power`` (``scipy.stats.binom``).

    Args:
        sd: the spread of the per-round log ratios (e.g. ``robust_sd`` of a pilot run).
        rounds: the number of rounds.
        alpha: the family-wise level.
        power: the wanted probability of a resolved verdict.
        family_size: the number of comparisons in the Holm family.

    Returns:
        The detectable median log ratio (``exp`` of it is the ratio), ``inf`` when no
        number of rounds sharing a sign reaches the level.
    """
    import scipy.optimize
    import scipy.stats

    if not (sd > 0 and rounds >= 1 and 0 < alpha < 1 and 0 < power < 1 and family_size >= 1):
        raise ValueError(f"Need sd > 0, rounds >= 1, alpha and power in (0, 1) and "
                         f"family_size >= 1, got {sd}, {rounds}, {alpha}, {power}, "
                         f"{family_size}.")
    j = _order_statistic(rounds, alpha / family_size)
    if j == 0:
        return math.inf
    # reject "higher" when at most j - 1 rounds are negative (one side of the two-sided test)
    def shortfall(q: float) -> float:
        return float(scipy.stats.binom.cdf(j - 1, rounds, 1 - q)) - power

    q = scipy.optimize.brentq(shortfall, 0.5, 1 - 1e-12)
    return float(sd * scipy.stats.norm.ppf(q))


def accuracy_difference(correct: np.ndarray, reference: np.ndarray, *,
                        name: str = "") -> stats.Comparison:
    """Compare per-image correctness (0/1) with a reference's: a paired t interval, in points.

    ``stats.paired`` on ``100 * correct`` and ``100 * reference``; when no image changes, the
    difference is exactly zero (interval ``[0, 0]``, ``p = 1``) instead of undefined.

    Args:
        correct: 1 where the format classifies an image correctly, else 0.
        reference: the same for the reference model on the same images.
        name: what is compared.

    Returns:
        A ``stats.Comparison`` of the accuracy difference in percentage points.
    """
    correct = np.asarray(correct, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if correct.shape != reference.shape or correct.ndim != 1 or correct.size < 2:
        raise ValueError(f"Need two 1-D 0/1 arrays over the same images, got shapes "
                         f"{correct.shape} and {reference.shape}.")
    if np.any(correct != reference):
        return stats.paired(100 * correct, 100 * reference, name=name)
    return stats.Comparison(name=name, mean=0.0, low=0.0, high=0.0, confidence=0.95, p=1.0,
                            p_adjusted=1.0, n=int(correct.size), verdict="not resolved",
                            method="paired t", shape=(correct.size,),
                            _interval_at=lambda level: (0.0, 0.0))


def mcnemar_difference(correct: np.ndarray, reference: np.ndarray, *,
                       name: str = "") -> stats.Comparison:
    """Compare paired per-image correctness with McNemar's exact test; accuracy in points.

    Only the discordant images count: ``b`` right here and wrong in the reference, ``c`` the
    reverse. ``p`` is McNemar's exact test (``statsmodels`` ``mcnemar``, a two-sided binomial
    test of ``b`` out of ``b + c`` at 1/2), and the interval for the accuracy difference
    ``100 * (b - c) / n`` inverts the same test: the Clopper-Pearson interval for ``b / (b + c)``
    mapped through ``100 * (b + c) / n * (2 * share - 1)``, so it excludes 0 exactly when ``p``
    is below its level. A ``stats.Family`` recomputes it at Holm's level.

    Args:
        correct: 1 where the format classifies an image correctly, else 0.
        reference: the same for the reference model on the same images.
        name: what is compared.

    Returns:
        A ``stats.Comparison`` of the accuracy difference in percentage points, ``method``
        ``"McNemar exact"``; with no discordant image, ``[0, 0]`` and ``p = 1``.
    """
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import proportion_confint

    correct = np.asarray(correct)
    reference = np.asarray(reference)
    if (correct.shape != reference.shape or correct.ndim != 1 or correct.size < 2
            or not np.isin(correct, (0, 1)).all() or not np.isin(reference, (0, 1)).all()):
        raise ValueError(f"mcnemar_difference needs two 1-D arrays of 0/1 (or bool) "
                         f"correctness over the same images, got shapes {correct.shape} and "
                         f"{reference.shape}.")
    correct, reference = correct.astype(bool), reference.astype(bool)
    n = int(correct.size)
    b = int(np.sum(correct & ~reference))
    c = int(np.sum(~correct & reference))
    discordant = b + c
    p = (float(mcnemar([[0, b], [c, 0]], exact=True).pvalue) if discordant else 1.0)

    def interval_at(level: float) -> tuple[float, float]:
        if not discordant:
            return 0.0, 0.0
        low, high = proportion_confint(b, discordant, alpha=1 - level, method="beta")
        scale = 100 * discordant / n
        return float(scale * (2 * low - 1)), float(scale * (2 * high - 1))

    low, high = interval_at(0.95)
    verdict = "higher" if low > 0 else "lower" if high < 0 else "not resolved"
    return stats.Comparison(name=name, mean=100 * (b - c) / n, low=low, high=high,
                            confidence=0.95, p=p, p_adjusted=p, n=n, verdict=verdict,
                            method="McNemar exact", shape=(n,), _interval_at=interval_at)


def _log_ratios(a: np.ndarray, b: np.ndarray, who: str) -> np.ndarray:
    """Validate two per-round latency arrays; return ``log(a / b)``."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ValueError(f"{who} needs two 1-D arrays of per-round times of the same length "
                         f"(at least 2), got shapes {a.shape} and {b.shape}.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and a.min() > 0 and b.min() > 0):
        raise ValueError(f"{who} needs positive, finite times (seconds per call).")
    return np.log(a / b)


def _order_statistic(n: int, alpha: float) -> int:
    """Largest ``j`` with ``2 * P(Binomial(n, 1/2) <= j - 1) <= alpha`` (0 if none)."""
    import scipy.stats

    ks = np.arange(1, n // 2 + 1)
    ok = ks[2 * scipy.stats.binom.cdf(ks - 1, n, 0.5) <= alpha]
    return int(ok.max()) if ok.size else 0
