"""The notebook benchmark's memory watcher (it once crashed on stop(), so make bench never ran)."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "notebooks.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_notebooks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_watcher_reports_a_childs_peak_memory_and_stops():
    bench = _load_bench()
    watcher = bench._PeakWatcher(interval=0.05)
    watcher.start()
    # a child that holds about 60 MB for a moment, as a kernel holds its data
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = bytearray(60 * 2**20); time.sleep(1.0)"])
    child.wait(timeout=30)
    time.sleep(0.1)
    peak = watcher.stop()
    assert not watcher.is_alive()
    assert peak >= 60 * 2**20
    assert watcher.mean_load() is not None and watcher.mean_load() >= 0
