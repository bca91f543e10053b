"""Training speed and loss of the colorization networks in float32 and mixed bfloat16, in one run.

    python benchmarks/colorization_precision.py [--steps N] [--batch B] [--repeats R]

Trains each of the chapter's three variants (regression, classification, rebalanced) for the
same steps from the same seed and crops, once in float32 and once with
``precision="mixed_bfloat16"`` (bfloat16 convolutions, float32 weights, softmax and loss),
interleaved so that a busy machine slows both alike. Reports the training throughput of each
(windows per second, after the first chunk, which includes tracing), their ratio, and how far
apart the two loss curves are at every checkpoint. Writes
benchmarks/results/colorization_precision.json, which the colorization chapter quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import color, colorizer, data  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "colorization_precision.json"
VARIANTS = ("regression", "classification", "rebalanced")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per run")
    parser.add_argument("--batch", type=int, default=32, help="crops per step")
    parser.add_argument("--chunk", type=int, default=10, help="steps between loss checkpoints")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (best kept)")
    args = parser.parse_args()

    photos, _ = data.load_photos("train", size=128)  # the chapter's full-scale set-up
    ab = np.concatenate([color.rgb_to_lab(p).numpy()[..., 1:].reshape(-1, 2) for p in photos])
    bins = color.used_bins(ab, 10)
    weights = color.rebalance_weights(color.empirical_prior(ab, bins, 5.0)).astype(np.float32)
    windows = colorizer.random_windows(photos, args.steps * args.batch, seed=0)

    rates: dict = {v: {"float32": 0.0, "mixed_bfloat16": 0.0} for v in VARIANTS}
    losses: dict = {v: {} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(args.repeats):
            for variant in VARIANTS:
                for precision in ("float32", "mixed_bfloat16"):
                    run = colorizer.train(variant, windows, bins, weights=weights,
                                          steps=args.steps, cache=Path(cache),
                                          batch_size=args.batch, lr=3e-3, chunk=args.chunk,
                                          precision=precision, retrain=True)
                    rates[variant][precision] = max(rates[variant][precision],
                                                    run.windows_per_s)
                    losses[variant][precision] = [loss for _, loss in run.losses]
    result: dict = {"steps": args.steps, "batch": args.batch, "chunk": args.chunk,
                    "repeats": args.repeats, "bins": int(len(bins)), "variants": {}}
    for v in VARIANTS:
        f32, bf16 = (np.array(losses[v][p]) for p in ("float32", "mixed_bfloat16"))
        result["variants"][v] = {
            "windows_per_s": {p: round(r, 1) for p, r in rates[v].items()},
            "speedup_bf16": round(rates[v]["mixed_bfloat16"] / rates[v]["float32"], 2),
            "losses_float32": f32.round(4).tolist(),
            "losses_bf16": bf16.round(4).tolist(),
            "max_abs_loss_difference": round(float(np.abs(bf16 - f32).max()), 4),
            "max_rel_loss_difference": round(float((np.abs(bf16 - f32) / f32).max()), 4),
        }
        print(f"{v:>14}: float32 {rates[v]['float32']:6.1f}, bfloat16 "
              f"{rates[v]['mixed_bfloat16']:6.1f} windows/s "
              f"({result['variants'][v]['speedup_bf16']:.2f}x); losses differ by at most "
              f"{result['variants'][v]['max_abs_loss_difference']:.3f} "
              f"({result['variants'][v]['max_rel_loss_difference']:.1%})")
    speedups = [result["variants"][v]["speedup_bf16"] for v in VARIANTS]
    result["speedup_bf16_mean"] = round(float(np.mean(speedups)), 2)
    result["machine"] = {
        "cpus": os.cpu_count(), "cpu_bf16_flags": colorizer.cpu_bf16_flags(),
        "tensorflow": tf.__version__, "python": platform.python_version(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"mean speed-up of bfloat16: {result['speedup_bf16_mean']:.2f}x. Wrote {RESULTS}")


if __name__ == "__main__":
    main()
