"""Wall time and peak memory of every chapter, at quick and full scale, in one run.

    python benchmarks/notebooks.py [--scale quick|full|both] [--only NAME ...] [--warm] [--keep DIR]

Each notebook is executed in a fresh kernel (as the book build does, from `chapters/`);
the kernel's peak resident memory is read from the kernel process's VmHWM, and the mean
1-minute load average during the run is recorded beside it. The chapters'
caches of trained weights go to an empty temporary folder (``BOOK_CACHE_DIR``), so every
model is trained as in a first build; ``--warm`` uses ``data/cache`` instead (a re-run).
``--keep DIR`` also writes each executed notebook to DIR/<scale>/ (to build or inspect its pages).
Each run records the CPU's model name beside its time: machines of one kind differ a lot.
Prints a table and writes benchmarks/results/notebooks.json. Targets: the whole book under
15 minutes at full scale and under 3 minutes at quick scale on a 2-core machine; every
notebook under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

from helpers.config import cpu_model

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
RESULTS = ROOT / "benchmarks" / "results" / "notebooks.json"
sys.path.insert(0, str(ROOT / "_ext"))
# The chapter list, and the digest the cost line checks, from the script that writes the cells.
from chapter_cells import chapters, source_digest  # noqa: E402


def _vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of a process (Linux VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class _PeakWatcher(threading.Thread):
    """Polls the peak RSS of this process's children (the kernel) until stopped."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.peak, self._halt = interval, 0, threading.Event()
        self.loads: list[float] = []  # the 1-minute load average, sampled while it runs

    def run(self) -> None:
        me = psutil.Process()
        while not self._halt.is_set():
            for child in me.children(recursive=True):
                self.peak = max(self.peak, _vm_hwm_bytes(child.pid))
            self.loads.append(os.getloadavg()[0])
            self._halt.wait(self.interval)

    def mean_load(self) -> float | None:
        """Mean 1-minute load average over the run (other work on the machine shows here)."""
        return round(sum(self.loads) / len(self.loads), 2) if self.loads else None

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def run_notebook(path: Path, quick: bool, timeout: int = 1800, keep: Path | None = None) -> dict:
    """Execute one notebook in a fresh kernel; return its wall time and kernel peak RSS.

    With ``keep``, the executed notebook is also written to ``keep/<scale>/<name>``."""
    os.environ["BOOK_QUICK"] = "1" if quick else "0"
    os.environ["BOOK_BUILD"] = "1"  # no progress bars, as in the book build
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(CHAPTERS)}})
    watcher = _PeakWatcher()
    watcher.start()
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        seconds = time.perf_counter() - start
        peak = watcher.stop()
    scale = "quick" if quick else "full"
    if keep is not None:
        (keep / scale).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, keep / scale / path.name)
    return {"notebook": path.name, "scale": scale,
            "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20, 1),
            "load_average": watcher.mean_load(), "cpu": cpu_model(),
            "source": source_digest(nbformat.read(path, as_version=4))}


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """Return ``old`` with every (notebook, scale) measured again replaced by its new row."""
    fresh = {(r["notebook"], r["scale"]) for r in new}
    kept = [r for r in old if (r["notebook"], r["scale"]) not in fresh]
    return sorted(kept + new, key=lambda r: (r["scale"] != "quick", r["notebook"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["quick", "full", "both"], default="both")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 02")
    parser.add_argument("--warm", action="store_true",
                        help="reuse the trained weights in data/cache (a re-run, not a first run)")
    parser.add_argument("--keep", type=Path,
                        help="also write the executed notebooks to this folder")
    args = parser.parse_args()
    notebooks = chapters()  # NN_*.ipynb and the appendix
    if args.only:
        notebooks = [p for p in notebooks if any(p.name.startswith(o) for o in args.only)]
    if not notebooks:
        raise SystemExit("No chapter notebooks matched; check --only.")
    scales = {"quick": [True], "full": [False], "both": [True, False]}[args.scale]
    with tempfile.TemporaryDirectory(prefix="book-bench-cache-") as empty:
        if not args.warm:
            os.environ["BOOK_CACHE_DIR"] = empty  # the kernels inherit it
        rows = [run_notebook(p, quick, keep=args.keep) for quick in scales for p in notebooks]
    print(f"{'notebook':38s} {'scale':6s} {'seconds':>8s} {'peak MB':>8s}")
    for r in rows:
        print(f"{r['notebook']:38s} {r['scale']:6s} {r['seconds']:8.1f} {r['peak_rss_mb']:8.1f}")
    if RESULTS.is_file():  # --only or --scale measure part of the book: keep the rest
        rows = merge_rows(json.loads(RESULTS.read_text())["notebooks"], rows)
    totals = {}
    for r in rows:
        totals[r["scale"]] = round(totals.get(r["scale"], 0) + r["seconds"], 1)
    for scale, total in totals.items():
        print(f"{'total':38s} {scale:6s} {total:8.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1min_at_end": round(os.getloadavg()[0], 2)},
        "caches": "warm (data/cache)" if args.warm else "cold (empty BOOK_CACHE_DIR)",
        "targets": {"full_total_s": 900, "quick_total_s": 180, "peak_rss_mb": 2048},
        "notebooks": rows, "totals_s": totals,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
