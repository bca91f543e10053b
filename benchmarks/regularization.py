"""Vectorised ensemble vs per-run Keras ``fit(batch_size=1)``, side by side, on the same work.

    python benchmarks/regularization.py [--runs 5] [--epochs 100]

The work is the regularization chapter's reproduction of the post: the 1-10-10-10-1 network
without activations, absolute-error loss, SGD with learning rate 0.01 and batch size 1, on the
40 training points of ``helpers.data.make_line_data``, ``--runs`` runs with an L1 penalty
(0.3) and as many with an L2 penalty (0.15 in Keras' convention, the post's 0.3 in TF1's).
Keras trains one model per run with ``fit``; ``helpers.training.train_ensemble`` trains all
runs at once. Both timings include building and tracing. Writes
benchmarks/results/regularization.json with both wall times and their ratio (target >= 50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import data, training  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "regularization.json"
SIZES = (1, 10, 10, 10, 1)
LR = 0.01


def keras_runs(init: training.Weights, l1: np.ndarray, l2: np.ndarray, x: np.ndarray,
               y: np.ndarray, epochs: int) -> list[list[np.ndarray]]:
    """Train every run as its own Keras model with fit(batch_size=1)."""
    out = []
    for run in range(len(l1)):
        reg = keras.regularizers.L1L2(l1=float(l1[run]), l2=float(l2[run]))
        model = keras.Sequential([keras.Input((1,))] + [
            keras.layers.Dense(n, kernel_regularizer=reg) for n in SIZES[1:]])
        model.set_weights(training.keras_weights(init, run))
        model.compile(optimizer=keras.optimizers.SGD(LR), loss="mean_absolute_error")
        model.fit(x[:, None], y, batch_size=1, epochs=epochs, shuffle=True, verbose=0)
        out.append(model.get_weights())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per penalty (default 5)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    args = parser.parse_args()
    if args.runs < 1 or args.epochs < 1:
        raise ValueError("--runs and --epochs must be at least 1.")

    (x, y), (x_test, y_test) = data.make_line_data(seed=0)
    total = 2 * args.runs
    init = training.glorot_weights(SIZES, total, seed=0)
    l1 = np.array([0.3] * args.runs + [0.0] * args.runs, np.float32)
    l2 = np.array([0.0] * args.runs + [0.15] * args.runs, np.float32)

    start = time.perf_counter()
    result = training.train_ensemble(x, y, init, l1=l1, l2=l2, lr=LR, epochs=args.epochs,
                                     seed=0, progress=False)
    ensemble_s = time.perf_counter() - start
    start = time.perf_counter()
    training.train_ensemble(x, y, init, l1=l1, l2=l2, lr=LR, epochs=args.epochs, seed=1,
                            progress=False)
    ensemble_warm_s = time.perf_counter() - start

    start = time.perf_counter()
    keras_weights = keras_runs(init, l1, l2, x, y, args.epochs)
    keras_s = time.perf_counter() - start

    # Both did the real work: same kind of fits (test error of each run, L1 and L2 halves).
    ens_err = np.abs(training.predict(result.weights, x_test) - y_test).mean(axis=1)
    keras_w = training.from_keras(keras_weights)
    keras_err = np.abs(training.predict(keras_w, x_test) - y_test).mean(axis=1)

    steps = total * args.epochs * len(x)
    report = {
        "work": {"runs": total, "epochs": args.epochs, "samples": len(x), "sgd_steps": steps,
                 "network": list(SIZES), "penalties": "L1 0.3 (half the runs), L2 0.15"},
        "keras_fit_s": round(keras_s, 3),
        "ensemble_s": round(ensemble_s, 3),
        "ensemble_warm_s": round(ensemble_warm_s, 3),
        "ratio": round(keras_s / ensemble_s, 1),
        "ratio_warm": round(keras_s / ensemble_warm_s, 1),
        "keras_ms_per_step": round(1000 * keras_s / steps, 4),
        "ensemble_ms_per_run_step": round(1000 * ensemble_s / steps, 5),
        "test_mae_mean": {"ensemble": round(float(ens_err.mean()), 3),
                          "keras": round(float(keras_err.mean()), 3)},
        "target_ratio": 50,
        "machine": {"python": platform.python_version(), "tensorflow": tf.__version__,
                    "keras": keras.__version__, "cpus": os.cpu_count(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Keras fit, one model per run: {keras_s:8.2f} s")
    print(f"ensemble (incl. tracing):     {ensemble_s:8.2f} s   ratio {report['ratio']}x")
    print(f"ensemble (warm):              {ensemble_warm_s:8.2f} s   ratio {report['ratio_warm']}x")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
