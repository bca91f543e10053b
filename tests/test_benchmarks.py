"""The notebook benchmark's memory watcher (it once crashed on stop(), so make bench never ran)."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "notebooks.py"


def _load_bench(name: str = "notebooks"):
    """A benchmark script of benchmarks/ imported as a module (``name`` without .py)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", SCRIPT.parent / f"{name}.py")
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


def test_cpu_model_reads_the_model_name_line(tmp_path):
    import platform

    from helpers import config

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n")
    assert config.cpu_model(info) == "AMD EPYC 9B14"
    info.write_text("processor\t: 0\n")  # no model line: the platform's answer, never an error
    assert config.cpu_model(info) == platform.processor()
    assert config.cpu_model(tmp_path / "missing") == platform.processor()
    assert _load_bench().cpu_model is config.cpu_model  # the benchmark records the same name


def test_conv_flops_match_a_hand_count_of_a_two_layer_network():
    import keras

    throughput = _load_bench("colorizer_throughput")
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)  # 8×8×1 → 8×8×4
    x = keras.layers.Conv2D(2, 3, strides=2, name="b")(x)  # valid: 8×8×4 → 3×3×2
    model = keras.Model(inputs, keras.layers.ReLU()(x))
    rows = throughput.conv_flops(model, 8)
    assert [(r["name"], r["h_out"], r["w_out"]) for r in rows] == [("a", 8, 8), ("b", 3, 3)]
    a, b = 2 * 3 * 3 * 1 * 4 * 8 * 8, 2 * 3 * 3 * 4 * 2 * 3 * 3  # 4608 and 1296
    assert [r["flops"] for r in rows] == [a, b]
    # TensorFlow's profiler, where it works, counts the same convolutions (and the bias adds)
    prof = throughput.profiler_flops(model, 8)
    if "error" not in prof:
        assert prof["by_op"]["Conv2D"] == a + b
        assert prof["by_op"]["BiasAdd"] == 8 * 8 * 4 + 3 * 3 * 2
        assert prof["forward"] == sum(prof["by_op"].values())
