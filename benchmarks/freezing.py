"""Size, load time, latency and throughput of every deployment format of one model, in one run.

    python benchmarks/freezing.py [--rounds N] [--loads N] [--epochs N] [--min-ms T]

Trains the freezing chapter's Fashion-MNIST network (``helpers.deployment``, the chapter's
own definition and cache), writes it in every format of ``deployment.FILES``, then measures
each format's load time and its latency at several batch sizes next to the in-process Keras
baselines (eager call, ``tf.function``, ``tf.function`` with XLA), in interleaved rounds: a
round times every run once, so the rounds pair the runs under the same machine load. TensorFlow gets
the threads LiteRT and ONNX Runtime get (``deployment.pin_threads``). Ratios are given
against ``tf.function``, the compiled baseline, as the median of the per-round ratios. Writes
benchmarks/results/freezing.json with every round's median, so a reader can redo the
statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ start-up notices, not warnings

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import data, deployment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "freezing.json"
BATCHES = (1, 8, 32, 128)
BASELINE = "keras_function"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="interleaved timing rounds")
    parser.add_argument("--loads", type=int, default=5, help="timed loads per format")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (0: untrained)")
    parser.add_argument("--min-ms", type=float, default=25.0,
                        help="each timing in a round lasts about this long (ms)")
    args = parser.parse_args()
    if args.rounds < 2 or args.loads < 1 or args.epochs < 0 or args.min_ms <= 0:
        raise SystemExit("Need --rounds >= 2, --loads >= 1, --epochs >= 0, --min-ms > 0.")

    deployment.pin_threads()  # before TensorFlow's first operation
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    x_train = (x_train[..., None] / 255.0).astype("float32")
    x_test = (x_test[..., None] / 255.0).astype("float32")
    model = deployment.trained_small_cnn(x_train, y_train, epochs=args.epochs, seed=0)
    reference = model.predict(x_test, batch_size=1000, verbose=0)

    with tempfile.TemporaryDirectory(prefix="freezing-bench-") as tmp:
        paths = deployment.write_formats(model, Path(tmp), x_train[:500])
        sizes = {name: deployment.file_size(p) for name, p in paths.items()}
        loads = deployment.loaders(paths)
        load_s = deployment.load_seconds(loads, repeats=args.loads)
        loaded = {name: load() for name, load in loads.items()}
        runs = deployment.timed_runs(model, loaded, x_test[:max(BATCHES)])
        latency = deployment.latency_rounds(runs, x_test, BATCHES, rounds=args.rounds,
                                            min_seconds=args.min_ms / 1e3)
        rows = {}
        for name, run in runs.items():
            row = {"latency_ms": {str(b): [round(1e3 * t, 5) for t in latency[name][b]]
                                  for b in BATCHES}}
            if name in paths:
                row |= {"file_bytes": sizes[name],
                        "load_ms_median": round(1e3 * float(np.median(load_s[name])), 3)}
            if not name.endswith("_raw"):
                row |= deployment.fidelity(deployment.run_batches(run, x_test), reference,
                                           y_test)
            rows[name] = row

    base = {b: np.asarray(rows[BASELINE]["latency_ms"][str(b)]) for b in BATCHES}
    print(f"{'run':18s} {'KiB':>7s} {'load ms':>8s} " + " ".join(
        f"{'b=' + str(b) + ' ms':>10s}" for b in BATCHES) + f" {'x tf.fn b=1':>11s} "
        f"{'x tf.fn b=32':>12s} {'agree':>7s}")
    for name, row in rows.items():
        med = {b: float(np.median(row["latency_ms"][str(b)])) for b in BATCHES}
        # per-round ratio against the compiled baseline, then its median over rounds
        ratio = {b: float(np.median(np.asarray(row["latency_ms"][str(b)]) / base[b]))
                 for b in BATCHES}
        row["median_ms"] = {str(b): round(med[b], 5) for b in BATCHES}
        row["ratio_vs_tf_function"] = {str(b): round(ratio[b], 4) for b in BATCHES}
        size = f"{row['file_bytes'] / 1024:7.1f}" if "file_bytes" in row else " " * 7
        load = f"{row['load_ms_median']:8.1f}" if "load_ms_median" in row else " " * 8
        agree = f"{row['agreement']:7.4f}" if "agreement" in row else ""
        print(f"{name:18s} {size} {load} " + " ".join(f"{med[b]:10.4f}" for b in BATCHES)
              + f" {ratio[1]:11.3f} {ratio[32]:12.3f} {agree}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "threads_given": deployment.threads(),
                    "inter_op_threads": 1,
                    "python": platform.python_version(), "processor": platform.processor(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "settings": vars(args) | {"batches": list(BATCHES), "baseline": BASELINE},
        "runs": rows,
    }, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
