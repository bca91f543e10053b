"""Training rate, FLOP/s and matrix-multiply fraction of the main colorizer, in one run.

    python benchmarks/colorizer_throughput.py [--steps N] [--repeats R] [--q Q] [--out PATH]

For float32 and for mixed bfloat16 (the Keras policy ``"mixed_bfloat16"``: bfloat16
convolutions, float32 weights, softmax and loss), side by side in one run:

1. the training rate of the book's main colorizer (``colorizer.make_trainer(q,
   "classification", precision=..., architecture="main")``) on ``MAIN_WINDOW``-px crops,
   batch 32, random L inputs, soft targets and pixel weights, with a ``tf.function`` step like
   ``colorizer.train_loop``'s replica step (gradient tape, cross-entropy with sample weights,
   ``optimizer.apply``), in windows per second: the warm-up steps (tracing included) are not
   timed, then ``--repeats`` runs of ``--steps`` steps each, median kept;
2. the FLOPs of one training window, counted from the model's layers. Convention: each
   ``Conv2D`` costs 2·k_h·k_w·c_in·c_out·H_out·W_out FLOPs (a multiply-add counts as 2 FLOPs);
   nothing else is counted (bias adds, ReLU, batch normalisation, upsampling and softmax are
   under 1% of it); one training step is taken as 3 × the forward pass (forward, gradient
   with respect to the activations, gradient with respect to the weights; the first layer's
   activation gradient is not needed, so this slightly overstates the work). The forward
   count is checked against TensorFlow's profiler (``tf.compat.v1.profiler``, float-operation
   view) run on the graph of a concrete function of the forward pass; both are reported, or
   the profiler's error where it fails;
3. the achieved GFLOP/s: rate × training FLOPs per window;
4. the GFLOP/s of a ``--matmul-size`` square ``tf.linalg.matmul`` in the same precision
   (float32 × float32, bfloat16 × bfloat16), median of the repeats;
5. the fraction: network GFLOP/s ÷ matmul GFLOP/s, per precision.

The repeats are interleaved (float32 network, float32 matmul, bfloat16 network, bfloat16
matmul, then again) so that other work on the machine slows all of them alike; the load
averages before and after the run are printed and recorded with the CPU's model and flags.
Mixed bfloat16 is skipped, with the reason recorded, on CPUs without ``avx512_bf16`` or
``amx_bf16`` unless ``--force``. Writes benchmarks/results/colorizer_throughput.json (or
``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from helpers import colorizer  # noqa: E402
from helpers.config import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "colorizer_throughput.json"
PRECISIONS = ("float32", "mixed_bfloat16")
MATMUL_DTYPE = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_ne_convert", "amx_tile",
              "amx_bf16", "amx_int8")
TRAINING_FACTOR = 3
FLOP_CONVENTION = (
    "Conv2D only: 2*k_h*k_w*c_in*c_out*H_out*W_out FLOPs per window (a multiply-add is 2 "
    "FLOPs); bias adds, ReLU, batch normalisation, upsampling and softmax are not counted; "
    f"training = {TRAINING_FACTOR} x forward (forward, activation gradient, weight gradient).")


def cpu_flags() -> list[str]:
    """The vector and matrix instruction sets among ``SIMD_FLAGS`` that /proc/cpuinfo lists."""
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [f for f in SIMD_FLAGS if f in words]


def conv_flops(model, side: int) -> list[dict]:
    """Forward FLOPs of every ``Conv2D`` of a one-input ``model`` on one ``side``×``side`` input.

    Each costs 2·k_h·k_w·c_in·c_out·H_out·W_out (``c_in`` per group, from the kernel's
    shape); the output sides come from running the layers on one zero input.

    Returns:
        One row per convolution: name, kernel, c_in, c_out, h_out, w_out and flops.
    """
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        return []
    probe = keras.Model(model.input, [layer.output for layer in convs])
    channels = model.input.shape[-1]
    outs = tf.nest.flatten(probe(np.zeros((1, side, side, channels), np.float32)))
    rows = []
    for layer, out in zip(convs, outs):
        k_h, k_w, c_in, c_out = (int(d) for d in layer.kernel.shape)
        h_out, w_out = int(out.shape[1]), int(out.shape[2])
        rows.append({"name": layer.name, "kernel": [k_h, k_w], "c_in": c_in, "c_out": c_out,
                     "h_out": h_out, "w_out": w_out,
                     "flops": 2 * k_h * k_w * c_in * c_out * h_out * w_out})
    return rows


def profiler_flops(model, side: int) -> dict:
    """TensorFlow's own count of the forward pass of one window (float-operation view).

    Returns:
        ``{"forward": total, "by_op": {op type: flops}}`` (summed over the graph's nodes), or
        ``{"error": why}`` if the profiler fails.
    """
    try:
        forward = tf.function(lambda x: model(x, training=False))
        graph = forward.get_concrete_function(
            tf.TensorSpec((1, side, side, model.input.shape[-1]), tf.float32)).graph
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        verbosity = tf.get_logger().level
        tf.get_logger().setLevel("ERROR")  # the v1 API's deprecation notice
        try:
            prof = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options,
                                                 run_meta=tf.compat.v1.RunMetadata())
        finally:
            tf.get_logger().setLevel(verbosity)
        if prof is None or prof.total_float_ops == 0:
            return {"error": "the profiler counted no float operations"}
        types = {op.name: op.type for op in graph.get_operations()}
        by_op: dict = {}
        nodes = list(prof.children)
        while nodes:
            node = nodes.pop()
            nodes.extend(node.children)
            if node.float_ops:
                kind = types.get(node.name, "other")
                by_op[kind] = by_op.get(kind, 0) + int(node.float_ops)
        return {"forward": int(prof.total_float_ops),
                "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]))}
    except Exception as err:  # any failure of the v1 route is a result to record
        return {"error": f"{type(err).__name__}: {err}"}


def make_step(trainer):
    """The replica step of ``colorizer.train_loop``, without a strategy, as a tf.function."""
    model, optimizer, loss_fn = trainer.model, trainer.optimizer, trainer.loss

    @tf.function(autograph=False)
    def step(L, target, pixel_w):
        with tf.GradientTape() as tape:
            pred = model(L, training=True)
            loss = loss_fn(target, pred, sample_weight=pixel_w)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def random_batch(model, q: int, batch: int, side: int, seed: int = 0) -> tuple:
    """Random L in [0, 100], soft targets over Q bins and pixel weights, at the output's size."""
    gen = tf.random.Generator.from_seed(seed)
    L = gen.uniform((batch, side, side, 1), 0.0, 100.0)
    out = model(L[:1], training=False).shape
    target = tf.nn.softmax(gen.normal((batch, out[1], out[2], q)))
    pixel_w = gen.uniform((batch, out[1], out[2]), 0.5, 2.0)
    return L, target, pixel_w


def time_steps(step, batch: tuple, steps: int) -> float:
    """Windows per second over ``steps`` training steps."""
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step(*batch)
    float(loss)  # the last step has finished
    return steps * int(batch[0].shape[0]) / (time.perf_counter() - t0)


def time_matmul(a: tf.Tensor, calls: int) -> float:
    """GFLOP/s of ``calls`` products ``a @ a`` (2·n³ FLOPs each)."""
    n = int(a.shape[0])
    t0 = time.perf_counter()
    for _ in range(calls):
        c = tf.linalg.matmul(a, a)
    float(c[0, 0])
    return calls * 2 * n**3 / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (tracing)")
    parser.add_argument("--q", type=int, default=270, help="ab bins (the network's outputs)")
    parser.add_argument("--batch", type=int, default=32, help="windows per step")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the matrices")
    parser.add_argument("--matmul-calls", type=int, default=3, help="products per repeat")
    parser.add_argument("--force", action="store_true",
                        help="run mixed bfloat16 even where the CPU lacks bfloat16 instructions")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = parser.parse_args()
    if min(args.steps, args.repeats, args.batch, args.matmul_size, args.matmul_calls) < 1 \
            or args.warmup < 1:
        raise SystemExit("--steps, --repeats, --warmup, --batch and the matmul options must be "
                         "at least 1.")

    load_before = os.getloadavg()
    side = colorizer.MAIN_WINDOW
    bf16_flags = sorted(BF16_FLAGS & set(colorizer.cpu_bf16_flags()))
    precisions, skipped = list(PRECISIONS), {}
    if not bf16_flags and not args.force:
        precisions.remove("mixed_bfloat16")
        skipped["mixed_bfloat16"] = ("the CPU lists neither avx512_bf16 nor amx_bf16, so "
                                     "bfloat16 would be emulated (--force runs it anyway)")
        print(f"skipping mixed_bfloat16: {skipped['mixed_bfloat16']}")

    steps, batches, mats, flops = {}, {}, {}, {}
    for p in precisions:
        trainer = colorizer.make_trainer(args.q, "classification", precision=p,
                                         architecture="main")
        rows = conv_flops(trainer.model, side)
        flops[p] = {"analytic_forward": sum(r["flops"] for r in rows),
                    "profiler": profiler_flops(trainer.model, side), "layers": rows}
        steps[p] = make_step(trainer)
        batches[p] = random_batch(trainer.model, args.q, args.batch, side)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            float(steps[p](*batches[p]))
        print(f"{p}: {args.warmup} warm-up step(s), tracing included, "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        mats[p] = tf.cast(tf.random.stateless_normal((args.matmul_size,) * 2, seed=(0, 1)),
                          MATMUL_DTYPE[p])
        time_matmul(mats[p], 1)  # warm-up

    rates = {p: [] for p in precisions}
    matmul = {p: [] for p in precisions}
    for r in range(args.repeats):
        for p in precisions:
            rates[p].append(time_steps(steps[p], batches[p], args.steps))
            matmul[p].append(time_matmul(mats[p], args.matmul_calls))
            print(f"repeat {r}, {p}: {rates[p][-1]:.1f} windows/s, matmul "
                  f"{matmul[p][-1]:.1f} GFLOP/s", flush=True)
    load_after = os.getloadavg()

    results = {}
    for p in PRECISIONS:
        if p in skipped:
            results[p] = {"skipped": skipped[p]}
            continue
        forward = flops[p]["analytic_forward"]
        train_flops = TRAINING_FACTOR * forward
        rate, mm = float(np.median(rates[p])), float(np.median(matmul[p]))
        net_gflops = rate * train_flops / 1e9
        prof = flops[p]["profiler"]
        results[p] = {
            "windows_per_s": [round(x, 2) for x in rates[p]],
            "median_windows_per_s": round(rate, 2),
            "forward_flops_per_window": {
                "analytic": forward, "profiler": prof.get("forward"),
                "profiler_by_op": prof.get("by_op"), "profiler_error": prof.get("error"),
                "profiler_conv2d_over_analytic": (
                    round(prof["by_op"].get("Conv2D", 0) / forward, 4)
                    if "forward" in prof else None)},
            "training_flops_per_window": train_flops,
            "network_gflops": round(net_gflops, 2),
            "matmul_dtype": MATMUL_DTYPE[p].name,
            "matmul_gflops": [round(x, 2) for x in matmul[p]],
            "median_matmul_gflops": round(mm, 2),
            "fraction_of_matmul": round(net_gflops / mm, 3),
            "layers": flops[p]["layers"],
        }
    result = {
        "network": "main", "variant": "classification", "q": args.q, "window": side,
        "batch": args.batch, "steps": args.steps, "warmup_steps": args.warmup,
        "repeats": args.repeats, "matmul_size": args.matmul_size,
        "matmul_calls_per_repeat": args.matmul_calls, "inputs": "random (seed 0)",
        "flop_convention": FLOP_CONVENTION,
        "precisions": results,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "cpu_flags": cpu_flags(),
                    "cpu_bf16_flags": colorizer.cpu_bf16_flags(),
                    "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                    "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
                    "tensorflow": tf.__version__, "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python benchmarks/colorizer_throughput.py " + " ".join(sys.argv[1:]),
    }
    if "mixed_bfloat16" not in skipped:
        f32, bf16 = results["float32"], results["mixed_bfloat16"]
        result["bf16_over_float32"] = {
            "training": round(bf16["median_windows_per_s"] / f32["median_windows_per_s"], 2),
            "matmul": round(bf16["median_matmul_gflops"] / f32["median_matmul_gflops"], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nload average (1, 5, 15 min): before {result['load_average_before']}, "
          f"after {result['load_average_after']} on {os.cpu_count()} CPUs ({cpu_model()})")
    for p in precisions:
        row = results[p]
        fw = row["forward_flops_per_window"]
        check = (f"profiler {fw['profiler'] / 1e6:.1f} M, of which Conv2D "
                 f"{fw['profiler_by_op'].get('Conv2D', 0) / 1e6:.1f} M"
                 if fw["profiler"] is not None
                 else f"profiler failed: {fw['profiler_error']}")
        print(f"{p:>15}: {row['median_windows_per_s']:6.1f} windows/s x "
              f"{row['training_flops_per_window'] / 1e9:.3f} GFLOP/window = "
              f"{row['network_gflops']:6.1f} GFLOP/s; matmul {row['median_matmul_gflops']:6.1f} "
              f"GFLOP/s; fraction {row['fraction_of_matmul']:.3f} (forward "
              f"{fw['analytic'] / 1e6:.1f} M analytic, {check})")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
