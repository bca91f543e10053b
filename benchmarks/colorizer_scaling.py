"""The colorizer command on one and on two workers, and the cost of its streaming prior.

    python benchmarks/colorizer_scaling.py [--steps N] [--batch B] [--repeats R]

Trains ``python -m helpers.colorizer train`` on the book's photographs (linked into a
temporary folder) as one process with 2 TensorFlow threads, and as two
``MultiWorkerMirroredStrategy`` workers on 127.0.0.1 with 1 thread each, so both use the
same two cores; the same global batch, interleaved (one, two, one, two, ...) so that a busy
machine slows both alike. Throughput is the median windows per second over the checkpoints
after the first (which includes tracing), read from each run's ``run.json``. Separately, the
streaming pass (``helpers.collection.scan``) over the same photos is timed and scaled to
1,000 photos. Writes benchmarks/results/colorizer_scaling.json with the machine's load and
the date (UTC). Training is the command's, so it runs ``colorizer.train_loop``, the loop the
chapter's ``colorizer.train`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from helpers import collection, colorizer_cli, data  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "colorizer_scaling.json"


def _book_photos(folder: Path) -> int:
    """Link the book's photographs (those installed) into ``folder``; return how many."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, path, _ in data.PHOTOS:
        source = data._photo_path(path)
        if source.is_file():
            (folder / f"{name}{source.suffix}").symlink_to(source)
            n += 1
    if n == 0:
        raise SystemExit("None of the book's photographs is installed; see data/README.md.")
    return n


def _train(photos: Path, run: Path, workers: int, args) -> float:
    """One run of the command; the median windows per second after its first checkpoint."""
    threads = 2 // workers
    base = [sys.executable, "-m", "helpers.colorizer_cli", "train", "--photos", str(photos),
            "--out", str(run), "--steps", str(args.steps), "--batch", str(args.batch),
            "--checkpoint-every", str(args.chunk), "--precision", args.precision,
            "--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    if workers == 1:
        procs = [subprocess.Popen(base, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
    else:
        procs = [subprocess.Popen(base + ["--strategy", "multiworker"], cwd=ROOT,
                                  env=dict(env, TF_CONFIG=tf_config),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for tf_config in colorizer_cli.local_cluster(workers)]
    for p in procs:
        if p.wait(1800) != 0:
            raise SystemExit(f"a {workers}-worker run failed (exit {p.returncode})")
    rates = [r for *_, r in json.loads((run / "run.json").read_text())["history"]
             if np.isfinite(r)]
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--batch", type=int, default=32, help="global batch (windows per step)")
    parser.add_argument("--chunk", type=int, default=10, help="steps between checkpoints")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, interleaved")
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16"), help="training precision")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        n = _book_photos(photos)
        t0 = time.perf_counter()
        coll = collection.scan(photos, size=128, threads=2)
        scan_s = time.perf_counter() - t0
        rates = {1: [], 2: []}
        for r in range(args.repeats):
            for workers in (1, 2):
                rates[workers].append(_train(photos, Path(tmp) / f"run{workers}-{r}", workers,
                                             args))
                print(f"repeat {r}, {workers} worker(s): {rates[workers][-1]:.0f} windows/s",
                      flush=True)
    one, two = np.median(rates[1]), np.median(rates[2])
    result = {
        "photos": n, "train_photos": len(coll.train), "size": 128, "steps": args.steps,
        "batch": args.batch, "chunk": args.chunk, "repeats": args.repeats,
        "precision": args.precision, "network": "post", "variant": "rebalanced",
        "windows_per_s": {"1 worker x 2 threads": [round(x, 1) for x in rates[1]],
                          "2 workers x 1 thread": [round(x, 1) for x in rates[2]]},
        "median_windows_per_s": {"1 worker": round(float(one), 1),
                                 "2 workers": round(float(two), 1)},
        "two_over_one": round(float(two / one), 3),
        "scan_seconds": round(scan_s, 2),
        "scan_seconds_per_1000_photos": round(scan_s / n * 1000, 1),
        "scan_threads": 2,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": "python benchmarks/colorizer_scaling.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
