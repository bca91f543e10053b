"""The freezing chapter's classifier and the formats it is deployed in: write, load, time.

One definition serves chapter 5 and ``benchmarks/freezing.py``: the small Fashion-MNIST
network, the file each deployment format writes, a loader per format returning a callable on
a batch, the compiled Keras baselines, and latency measured in interleaved rounds, so that
every format is timed under the same machine load as the others.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from helpers import config, freeze

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


def timed_runs(model: Any, loaded: dict[str, Callable], x: np.ndarray) -> dict[str, Callable]:
    """Every callable the chapter and the benchmark time, in one order.

    Args:
        model: the in-memory Keras model (for the compiled baselines).
        loaded: format name to loaded callable (the loaders' results); the eager baseline
            ``"keras"`` is the model loaded from its ``.keras`` file.
        x: the inputs the runs will be called on (prefixes ``x[:b]``): the full-integer
            model's raw run is fed them quantised in advance.

    Returns:
        The baselines, then every format, then ``"tflite_int8_raw"``: ``invoke()`` on
        pre-quantised int8 input, returning the raw int8 output.
    """
    runs = {"keras": loaded["keras"]}
    runs.update({k: v for k, v in baselines(model).items() if k != "keras"})
    runs.update({k: v for k, v in loaded.items() if k != "keras"})
    int8 = loaded["tflite_int8"]
    quantised = int8.quantise(x)
    runs["tflite_int8_raw"] = lambda xb: int8.invoke_quantised(quantised[:len(xb)])
    return runs


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
                   rounds: int, min_seconds: float) -> dict[str, dict[int, np.ndarray]]:
    """Median seconds per call of every run at every batch size, once per round.

    Each round times every run at every batch size in turn (the order of runs rotates from
    round to round), so a change in machine load hits all runs alike and the rounds are the
    pairing unit of a comparison between two runs.

    Args:
        runs: name to callable on a batch (``x[:b]`` for batch size ``b``).
        x: inputs; at least ``max(batches)`` of them.
        batches: batch sizes to time.
        rounds: how many rounds.
        min_seconds: each timing in a round lasts about this long (at least 3 calls).

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
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for b in batches:
            xb = x[:b]
            for name in order:
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
    for i in range(repeats):
        start = time.perf_counter()
        function()
        times[i] = time.perf_counter() - start
    return times
