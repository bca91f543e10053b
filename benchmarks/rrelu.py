"""Training throughput of the RReLU chapter's loop against plain ``model.fit``, in one run.

    python benchmarks/rrelu.py [--n-train N] [--repeats N] [--activation NAME] [--batch-norm]

Builds the chapter's perceptron (784-1024-128-10, Adam 1e-4, batches of 60) on Fashion-MNIST
and times one training epoch three ways, interleaved so that a busy machine slows all of them
alike: the chapter's compiled step over its cached, prefetched ``tf.data`` pipeline
(``helpers.experiments``), ``model.fit`` on NumPy arrays, and ``model.fit`` on the same
``tf.data`` pipeline. Each epoch starts from the same fresh weights after a warm-up epoch that
traces the step. Prints samples per second (median and best epoch over repeats) and writes
benchmarks/results/rrelu.json; the ratio is ours over plain ``model.fit``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import experiments  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "rrelu.json"
BATCH, LR = 60, 1e-4


def fresh_model(activation: str, batch_norm: bool) -> keras.Sequential:
    """The chapter's network with the same initial weights every time."""
    return experiments.build_mlp(activation, batch_norm=batch_norm, seed=0)


def time_loop(model, data: dict) -> float:
    """Seconds for one epoch of the chapter's compiled step after a warm-up epoch."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    step = experiments.compiled_train_step(model, keras.optimizers.Adam(LR), loss)
    ds = experiments.make_dataset(data["x_train"], data["y_train"], BATCH, shuffle=True)
    for xb, yb in ds:  # warm-up: traces the step and fills the tf.data cache
        step(xb, yb)
    start = time.perf_counter()
    for xb, yb in ds:
        step(xb, yb)
    return time.perf_counter() - start


def time_fit(model, data: dict, use_dataset: bool) -> float:
    """Seconds for one epoch of ``model.fit`` after a warm-up epoch."""
    model.compile(keras.optimizers.Adam(LR),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    if use_dataset:
        ds = experiments.make_dataset(data["x_train"], data["y_train"], BATCH, shuffle=True)
        model.fit(ds, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles itself
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
    else:
        x, y = data["x_train"], data["y_train"]
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        start = time.perf_counter()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=12000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--activation", default="rrelu", choices=tuple(experiments.CONFIGS))
    parser.add_argument("--batch-norm", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    data = experiments.load_flat_images("fashion_mnist", n_train=args.n_train, n_test=100)
    methods = {
        "ours_compiled_step_tf_data": lambda m: time_loop(m, data),
        "keras_fit_numpy": lambda m: time_fit(m, data, use_dataset=False),
        "keras_fit_tf_data": lambda m: time_fit(m, data, use_dataset=True),
    }
    load_start = os.getloadavg()[0]
    seconds = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, run in methods.items():
            keras.utils.set_random_seed(0)
            seconds[name].append(run(fresh_model(args.activation, args.batch_norm)))
    rate = {name: args.n_train / float(np.median(s)) for name, s in seconds.items()}
    best = {name: args.n_train / float(np.min(s)) for name, s in seconds.items()}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "load_average_1min_start_end": [round(load_start, 2),
                                                    round(os.getloadavg()[0], 2)]},
        "settings": {"n_train": args.n_train, "repeats": args.repeats, "batch_size": BATCH,
                     "learning_rate": LR, "activation": args.activation,
                     "batch_norm": args.batch_norm, "network": "784-1024-128-10"},
        "samples_per_second": {k: round(v, 1) for k, v in rate.items()},
        "samples_per_second_best_epoch": {k: round(v, 1) for k, v in best.items()},
        "epoch_seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "ratio_ours_vs_keras_fit_numpy": round(rate["ours_compiled_step_tf_data"]
                                               / rate["keras_fit_numpy"], 3),
        "ratio_best_epoch_ours_vs_keras_fit_numpy": round(best["ours_compiled_step_tf_data"]
                                                          / best["keras_fit_numpy"], 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in rate.items():
        print(f"{name:28s} {value:9.0f} samples/s (median epoch), {best[name]:9.0f} (best epoch)")
    print(f"ratio ours / model.fit (NumPy): {result['ratio_ours_vs_keras_fit_numpy']:.2f} median, "
          f"{result['ratio_best_epoch_ours_vs_keras_fit_numpy']:.2f} best"
          f"  -> {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
