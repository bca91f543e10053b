"""Load time and batch-1 latency of every deployment format of one model, in one run.

    python benchmarks/freezing.py [--calls N] [--loads N] [--epochs N]

Trains the freezing chapter's small Fashion-MNIST network (or takes random weights with
``--epochs 0``), writes it as a Keras file, a SavedModel, a frozen GraphDef and three
TensorFlow Lite flavours, then measures each format's load time and median batch-1 latency
next to ``model.predict`` and a direct ``model(x)`` call on the in-memory model. Prints a
table and writes benchmarks/results/freezing.json; every ratio is relative to the direct
Keras call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import config, data, freeze  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "freezing.json"


def small_cnn() -> keras.Sequential:
    """The chapter's network: two convolution blocks and two dense layers."""
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


def write_formats(model: keras.Model, calibration: np.ndarray, folder: Path) -> dict[str, Path]:
    """Write the model in the six formats; return their paths."""
    paths = {"keras": folder / "model.keras", "savedmodel": folder / "saved_model",
             "frozen_graph": folder / "model.pb"}
    model.save(paths["keras"])
    model.export(paths["savedmodel"], verbose=False)
    frozen = freeze.freeze_to_graphdef(model)
    tf.io.write_graph(frozen.graph_def, str(folder), "model.pb", as_text=False)
    for mode in freeze.TFLITE_MODES:
        paths[f"tflite_{mode}"] = folder / f"model_{mode}.tflite"
        paths[f"tflite_{mode}"].write_bytes(
            freeze.convert_to_tflite(model, mode, representative_data=calibration))
    return paths


def loaders(paths: dict[str, Path]) -> dict:
    """One function per format that loads it and returns a callable on a batch."""
    def savedmodel():
        loaded = tf.saved_model.load(str(paths["savedmodel"]))
        return lambda x: loaded.serve(x)

    def keras_file():
        loaded = keras.models.load_model(paths["keras"])
        return lambda x: loaded(x, training=False)

    return {
        "keras": keras_file,
        "savedmodel": savedmodel,
        "frozen_graph": lambda: freeze.load_frozen_graph(paths["frozen_graph"]),
        **{f"tflite_{m}": (lambda m=m: freeze.load_tflite(paths[f"tflite_{m}"]))
           for m in freeze.TFLITE_MODES},
    }


def summary(seconds: np.ndarray) -> dict:
    """Median and quartiles in milliseconds."""
    q1, median, q3 = np.percentile(1e3 * seconds, [25, 50, 75])
    return {"median_ms": round(float(median), 4), "q1_ms": round(float(q1), 4),
            "q3_ms": round(float(q3), 4), "n": int(len(seconds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="timed batch-1 calls per format")
    parser.add_argument("--loads", type=int, default=5, help="timed loads per format")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (0: untrained)")
    args = parser.parse_args()
    if args.calls < 1 or args.loads < 1 or args.epochs < 0:
        raise SystemExit("--calls and --loads must be at least 1 and --epochs at least 0.")

    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    x_train = (x_train[..., None] / 255.0).astype("float32")
    x_test = (x_test[..., None] / 255.0).astype("float32")
    config.set_seed(0)
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if args.epochs:
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, verbose=0)
    one_image = x_test[:1]
    reference = model.predict(x_test, batch_size=1000, verbose=0)

    rows = {}
    rows["keras_predict"] = {"latency": summary(freeze.time_calls(
        lambda: model.predict(one_image, verbose=0), repeats=max(10, args.calls // 10)))}
    rows["keras_call"] = {"latency": summary(freeze.time_calls(
        lambda: model(one_image, training=False), repeats=args.calls))}
    with tempfile.TemporaryDirectory(prefix="freezing-bench-") as tmp:
        paths = write_formats(model, x_train[:500], Path(tmp))
        for name, load in loaders(paths).items():
            load_seconds = freeze.time_calls(load, repeats=args.loads, warmup=1)
            run = load()
            outputs = np.asarray(run(x_test[:1000]))
            rows[name] = {
                "file_bytes": freeze.file_size(paths[name]),
                "load": summary(load_seconds),
                "latency": summary(freeze.time_calls(lambda run=run: run(one_image),
                                                     repeats=args.calls, warmup=5)),
                "max_abs_diff_vs_keras": float(np.abs(outputs - reference[:1000]).max()),
            }
    base = rows["keras_call"]["latency"]["median_ms"]
    for row in rows.values():
        row["latency_ratio_vs_keras_call"] = round(row["latency"]["median_ms"] / base, 4)

    print(f"{'format':16s} {'size KiB':>9s} {'load ms':>9s} {'latency ms':>11s} "
          f"{'x keras call':>13s} {'max |diff|':>11s}")
    for name, row in rows.items():
        size = f"{row['file_bytes'] / 1024:9.1f}" if "file_bytes" in row else f"{'':9s}"
        load = f"{row['load']['median_ms']:9.1f}" if "load" in row else f"{'':9s}"
        diff = f"{row['max_abs_diff_vs_keras']:11.1e}" if "max_abs_diff_vs_keras" in row else ""
        print(f"{name:16s} {size} {load} {row['latency']['median_ms']:11.3f} "
              f"{row['latency_ratio_vs_keras_call']:13.3f} {diff}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "settings": vars(args) | {"litert_threads": 1, "batch_size": 1},
        "formats": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
