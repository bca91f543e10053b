"""The colorizer command and its photo collection, on small synthetic photo folders."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import collection, color, colorizer, colorizer_cli

ROOT = Path(__file__).resolve().parents[1]
MODULE = "helpers.colorizer"  # python -m helpers.colorizer train|colorize


def _photos(folder: Path, n: int = 8, seed: int = 0) -> Path:
    """``n`` small colour JPEGs of smooth random colour fields (40-60 px a side)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = rng.integers(40, 61, 2)
        yy, xx = np.mgrid[0:h, 0:w]
        field = rng.random(3) + 0.3 * np.sin(xx[..., None] / 6 + yy[..., None] / 9
                                             + rng.random(3) * 6)
        im = np.clip(field + 0.05 * rng.standard_normal((h, w, 3)), 0, 1)
        Image.fromarray((im * 255).astype(np.uint8)).save(folder / f"photo{i:02d}.jpg")
    return folder


def _grey_and_broken(folder: Path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((48, 52)) * 255).astype(np.uint8)).save(folder / "grey_L.png")
    grey = (rng.random((50, 50, 1)) * 255).astype(np.uint8).repeat(3, -1)
    Image.fromarray(grey).save(folder / "grey_rgb.png")  # stored as RGB, no colour
    (folder / "notes.txt").write_text("not a photo")
    (folder / "broken.jpg").write_bytes((folder / "photo00.jpg").read_bytes()[:40])


# ---------------------------------------------------------------- choices


def test_precision_follows_the_hardware():
    assert colorizer_cli.choose_precision(1, []) == "mixed_float16"
    assert colorizer_cli.choose_precision(2, ["avx512_bf16"]) == "mixed_float16"
    assert colorizer_cli.choose_precision(0, ["avx512_bf16"]) == "mixed_bfloat16"
    assert colorizer_cli.choose_precision(0, ["amx_bf16"]) == "mixed_bfloat16"
    assert colorizer_cli.choose_precision(0, ["avx_ne_convert"]) == "float32"
    assert colorizer_cli.choose_precision(0, []) == "float32"


@pytest.mark.parametrize("network", colorizer_cli.NETWORKS)
def test_float16_model_is_the_chapters_network_in_float16(network):
    ref = colorizer.build_model(24, "classification", "float32", network)
    half = colorizer.build_model(24, "classification", "mixed_float16", network)
    assert [w.shape for w in half.get_weights()] == [w.shape for w in ref.get_weights()]
    assert {w.dtype for w in half.get_weights()} == {np.dtype("float32")}  # float32 weights
    convs = [layer for layer in half.layers if hasattr(layer, "kernel_size")]
    assert convs and all(layer.dtype_policy.name == "mixed_float16" for layer in convs)
    assert half.output.dtype == "float32"  # softmax, and so the loss, stay float32


def test_local_cluster_gives_each_worker_its_index_and_distinct_ports():
    configs = [json.loads(c) for c in colorizer_cli.local_cluster(3)]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(c["cluster"]["worker"] == workers for c in configs)
    with pytest.raises(ValueError, match="at least one worker"):
        colorizer_cli.local_cluster(0)


def test_multiworker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        colorizer_cli.make_strategy("multiworker")


# ---------------------------------------------------------------- the collection


def test_streaming_prior_equals_the_chapters_prior_of_all_pixels(tmp_path):
    folder = _photos(tmp_path / "photos", n=9)
    coll = collection.scan(folder, step=10, size=40, sigma=5.0, lam=0.5)
    assert len(coll.train) + len(coll.held_out) == 9 and 1 <= len(coll.held_out) <= 4
    assert not set(coll.train) & set(coll.held_out)
    ab = np.concatenate([color.rgb_to_lab(collection.read_photo(p, 40)[0]).numpy()[..., 1:]
                         .reshape(-1, 2) for p in coll.paths("train")])
    bins = color.used_bins(ab, 10)
    np.testing.assert_array_equal(coll.bins, bins)
    assert coll.counts.sum() == len(ab)
    np.testing.assert_allclose(coll.prior, color.empirical_prior(ab, bins, sigma=5.0),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(coll.weights, color.rebalance_weights(coll.prior, 0.5),
                               rtol=1e-6)


def test_bad_files_are_counted_in_one_warning_and_grey_photos_left_out(tmp_path):
    folder = _photos(tmp_path / "photos", n=6)
    _grey_and_broken(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coll = collection.scan(folder, size=40)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "Skipped 2 file(s)" in messages[0]
    assert coll.grey == 2 and coll.skipped == 2
    assert len(coll.train) + len(coll.held_out) == 6
    assert not any("grey" in n for n in coll.train + coll.held_out)


def test_an_empty_or_colourless_folder_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no files"):
        collection.scan(tmp_path / "empty")
    only_grey = tmp_path / "grey"
    only_grey.mkdir()
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(only_grey / "a.png")
    with pytest.raises(ValueError, match="no colour photographs"):
        collection.scan(only_grey)
    with pytest.raises(ValueError, match="not a folder"):
        collection.scan(tmp_path / "missing")


def test_collection_round_trips_through_the_run_folder(tmp_path):
    folder = _photos(tmp_path / "photos", n=5)
    coll = collection.scan(folder, size=40, working=tmp_path / "run" / "working")
    collection.save(coll, tmp_path / "run")
    (tmp_path / "run").rename(tmp_path / "moved")  # a run folder may move
    back = collection.load(tmp_path / "moved")
    np.testing.assert_array_equal(back.prior, coll.prior)
    assert back.train == coll.train and back.folder == coll.folder
    for name, copy in zip(back.train, back.paths()):  # lossless working-size copies
        original = collection.read_photo(folder / name, 40)[0]
        np.testing.assert_array_equal(collection.read_photo(copy, 40)[0],
                                      np.round(original * 255) / np.float32(255))
    with pytest.raises(ValueError, match="not a run folder"):
        collection.load(tmp_path / "elsewhere")


def _batches(ds, n):
    return [b.numpy() for b in ds.take(n)]


def test_windows_resume_where_they_stopped_and_workers_read_disjoint_visits(tmp_path):
    paths = collection.scan(_photos(tmp_path / "photos", n=5), size=40).paths()
    common = dict(size=40, window=32, seed=3)
    whole = _batches(collection.windows_dataset(paths, batch=4, **common), 6)
    assert whole[0].shape == (4, 32, 32, 4)  # RGB and opacity
    again = _batches(collection.windows_dataset(paths, batch=4, **common), 6)
    np.testing.assert_array_equal(np.stack(whole), np.stack(again))  # seeded
    resumed = _batches(collection.windows_dataset(paths, batch=4, start=4, **common), 2)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[4:6]))
    # batch 4 = 4 crops of one photo visit; pipeline i of 2 takes visits i, i + 2, ...
    for i in range(2):
        mine = _batches(collection.windows_dataset(paths, batch=4, pipeline=i, pipelines=2,
                                                   **common), 3)
        np.testing.assert_array_equal(np.stack(mine), np.stack(whole[i::2]))
    assert not np.array_equal(whole[0], whole[1])


# ---------------------------------------------------------------- the command, in process


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 3 steps (checkpoints at 2 and 3) on 8 photos, grey and broken files among them."""
    base = tmp_path_factory.mktemp("cli")
    folder = _photos(base / "photos", n=8)
    _grey_and_broken(folder)
    run = base / "run"
    args = ["train", "--photos", str(folder), "--out", str(run), "--steps", "3", "--batch", "8",
            "--checkpoint-every", "2", "--size", "40", "--precision", "float32"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert colorizer_cli.main(args) == 0
    return folder, run, args


def test_train_writes_checkpoints_history_and_tensorboard_logs(trained):
    _, run, _ = trained
    record = json.loads((run / "run.json").read_text())
    assert record["steps"] == 3 and [h[0] for h in record["history"]] == [2, 3]
    assert all(np.isfinite(h[1]) and np.isfinite(h[2]) for h in record["history"])
    assert tf.train.latest_checkpoint(run / "checkpoints").endswith("ckpt-3")
    events = list((run / "logs").glob("events.out.tfevents.*"))
    assert events
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0]))
            for v in e.summary.value}
    assert {"loss/train", "loss/held_out"} <= tags
    assert any(t.startswith("held_out/") for t in tags)  # colourized held-out photos


def test_steps_continue_a_finished_run(trained, capsys):
    _, run, args = trained
    assert colorizer_cli.main(args) == 0  # already at step 3: nothing to do
    assert "trained to step 3" in capsys.readouterr().out
    more = args[:args.index("--steps") + 1] + ["5"] + args[args.index("--steps") + 2:]
    assert colorizer_cli.main(more) == 0
    assert "from step 3 to 5" in capsys.readouterr().out
    record = json.loads((run / "run.json").read_text())
    assert record["steps"] == 5 and record["history"][-1][0] == 5
    assert record["settings"]["steps"] == 5  # the record names the command that trained it last


def test_colorize_keeps_size_and_lightness_and_accepts_grey(trained, tmp_path):
    folder, run, _ = trained
    with pytest.warns(UserWarning, match="Skipped 2 file"):
        assert colorizer_cli.main(["colorize", "--run", str(run), str(folder),
                                   "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "grey_L.png").is_file() and (out / "photo00.png").is_file()
    src = collection.read_photo(folder / "grey_L.png")[0]
    got = np.asarray(Image.open(out / "grey_L.png"), np.float32) / 255
    assert got.shape == src.shape
    L_src = color.rgb_to_lab(src).numpy()[..., 0]
    L_got = color.rgb_to_lab(got).numpy()[..., 0]
    assert np.median(np.abs(L_got - L_src)) < 2.0  # the photo's own lightness, recoloured


def test_colorize_in_bands_gives_the_whole_image_result(trained):
    folder, run, _ = trained
    model, coll, settings = colorizer_cli.load_run(run)
    photo = folder / "photo00.jpg"
    whole = colorizer_cli.colorize_file(model, coll, photo, settings.variant, band_rows=10**6)
    banded = colorizer_cli.colorize_file(model, coll, photo, settings.variant, band_rows=7)
    assert banded.shape == whole.shape and banded.dtype == np.float32
    # per-pixel conversions: bands change nothing but float32 rounding (exact on one CPU; on an
    # AVX2 one, one value in 9,063 differed by 3e-8)
    np.testing.assert_allclose(banded, whole, rtol=0, atol=4 * np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match="band_rows"):
        colorizer_cli.colorize_file(model, coll, photo, settings.variant, band_rows=0)


def test_bad_runs_give_one_clear_error(trained, tmp_path, capsys):
    folder, run, args = trained
    assert colorizer_cli.main(["colorize", "--run", str(tmp_path / "nothing"), str(folder),
                               "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    other_bins = args + ["--step", "5"]
    assert colorizer_cli.main(other_bins) == 2
    assert "other bins" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert colorizer_cli.main(["train", "--photos", str(tmp_path / "empty"), "--out",
                               str(tmp_path / "r2"), "--steps", "1"]) == 2
    assert "no files" in capsys.readouterr().err
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for f in ("collection.json", "run.json"):
        (tampered / f).write_bytes((run / f).read_bytes())
    (tampered / "checkpoints").symlink_to(run / "checkpoints")
    with np.load(run / "prior.npz") as z:
        np.savez(tampered / "prior.npz", **{k: z[k][:-1] for k in z.files})
    assert colorizer_cli.main(["colorize", "--run", str(tampered), str(folder),
                               "--out", str(tmp_path / "o")]) == 2
    assert "other bins" in capsys.readouterr().err


def test_the_command_speaks_first_and_imports_the_colorizer_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = str(ROOT)
    probe = "\n".join([  # count the modules defining make_trainer when the command starts
        "import runpy, sys", "import helpers.colorizer_cli as cli", "real = cli.main",
        "def counting(argv=None):",
        "    print('copies', sum(getattr(m, 'make_trainer', None) is not None",
        "                        for m in list(sys.modules.values())), flush=True)",
        "    return real(argv)",
        "cli.main = counting",
        "sys.argv = ['colorizer', 'colorize', '--run', sys.argv[1], '--out', sys.argv[1], "
        "sys.argv[1]]",
        "try:", "    runpy.run_module('helpers.colorizer', run_name='__main__')",
        "except SystemExit as e:", "    print('status', e.code)"])
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "missing")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    err = out.stderr.splitlines()
    assert err and err[0].startswith("error: The run folder"), out.stderr[:500]
    assert "status 2" in out.stdout and "copies 0" in out.stdout, out.stdout


# ---------------------------------------------------------------- two workers


def _start_workers(folder: Path, run: Path, steps: int, logs: Path) -> list:
    procs = []
    for i, tf_config in enumerate(colorizer_cli.local_cluster(2)):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT),
                   TF_CONFIG=tf_config)
        cmd = [sys.executable, "-m", MODULE, "train", "--photos", str(folder), "--out",
               str(run), "--steps", str(steps), "--batch", "8", "--checkpoint-every", "2",
               "--size", "40", "--precision", "float32", "--strategy", "multiworker",
               "--threads", "1"]
        log = open(logs / f"worker{i}-{steps}.log", "w")
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    return procs


def _stop(procs) -> None:
    for p, log in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(30)
        log.close()


@pytest.mark.slow
def test_two_workers_agree_and_resume_after_a_worker_is_stopped(tmp_path):
    folder = _photos(tmp_path / "photos", n=6)
    run = tmp_path / "run"
    procs = _start_workers(folder, run, 100_000, tmp_path)  # stopped long before the end
    try:
        deadline = time.monotonic() + 300
        while tf.train.latest_checkpoint(run / "checkpoints") is None:
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            assert all(p.poll() is None for p, _ in procs), "a worker ended early"
            time.sleep(0.5)
    finally:
        procs[1][0].send_signal(signal.SIGKILL)  # one worker is stopped ...
        time.sleep(1)
        _stop(procs)  # ... and the other, waiting for it, too
    stopped_at = int(tf.train.latest_checkpoint(run / "checkpoints").rsplit("-", 1)[1])
    assert stopped_at >= 2
    target = stopped_at + 2
    procs = _start_workers(folder, run, target, tmp_path)
    try:
        for p, _ in procs:
            p.wait(300)
    finally:
        _stop(procs)
    logs = [(tmp_path / f"worker{i}-{target}.log").read_text() for i in range(2)]
    assert all(p.returncode == 0 for p, _ in procs), logs
    assert all(f"from step {stopped_at} to {target}" in log for log in logs)
    digests = [re.search(r"weights sha256 ([0-9a-f]{64})", log).group(1) for log in logs]
    assert digests[0] == digests[1]
    assert json.loads((run / "run.json").read_text())["steps"] == target
    assert not (run / ".worker-1").exists()  # the other worker's scratch checkpoints


@pytest.mark.parametrize("network", ["context", "local"])
def test_the_whole_image_networks_train_and_colorize(tmp_path, network):
    folder = _photos(tmp_path / "photos", n=5)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert colorizer_cli.main(["train", "--photos", str(folder), "--out", str(run),
                                   "--network", network, "--steps", "2", "--batch", "4",
                                   "--checkpoint-every", "2", "--size", "96",
                                   "--precision", "float32"]) == 0
    assert json.loads((run / "run.json").read_text())["settings"]["network"] == network
    model, coll, _ = colorizer_cli.load_run(run)
    assert model.name.startswith(f"colorizer_{network}")
    assert colorizer.receptive_field(model) == colorizer.receptive_field(
        colorizer.build_model(8, architecture=network))
    rgb = colorizer_cli.colorize_file(model, coll, folder / "photo00.jpg", "rebalanced")
    assert rgb.shape == collection.read_photo(folder / "photo00.jpg")[0].shape


def test_mixed_float16_trains_on_cpu_and_saves_float32_weights(tmp_path):
    """The GPU precision, forced on the CPU: loss scaling in use, finite losses, float32
    weights that colorize reloads."""
    folder = _photos(tmp_path / "photos", n=5)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert colorizer_cli.main(["train", "--photos", str(folder), "--out", str(run),
                                   "--steps", "3", "--batch", "4", "--checkpoint-every", "1",
                                   "--size", "40", "--precision", "mixed_float16"]) == 0
    history = json.loads((run / "run.json").read_text())["history"]
    assert [h[0] for h in history] == [1, 2, 3]
    assert all(np.isfinite(h[1]) and np.isfinite(h[2]) for h in history)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(run / "checkpoints"))
    dtypes = reader.get_variable_to_dtype_map()
    scale = [k for k in dtypes if "dynamic_scale" in k]
    assert scale, "no loss scale saved: the LossScaleOptimizer was not used"
    assert reader.get_tensor(scale[0]) > 0
    floats = {d for d in dtypes.values() if d.is_floating}
    assert floats == {tf.float32}  # weights, moments and scale: no float16 is saved
    model, coll, _ = colorizer_cli.load_run(run)
    rgb = colorizer_cli.colorize_file(model, coll, folder / "photo00.jpg", "rebalanced")
    assert rgb.shape == collection.read_photo(folder / "photo00.jpg")[0].shape
    assert np.isfinite(rgb).all()


# ---------------------------------------------------------------- the main colorizer's runs


def test_main_network_learns_from_held_out_scenes_and_stops_early(tmp_path):
    """--held-out scores a separate folder; --patience stops when its loss stops falling and
    keeps the best checkpoint's weights, which colorize then uses."""
    folder = _photos(tmp_path / "photos", n=6)
    apart = _photos(tmp_path / "apart", n=3, seed=7)
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert colorizer_cli.main(["train", "--photos", str(folder), "--held-out", str(apart),
                                   "--out", str(run), "--network", "main", "--augment",
                                   "--steps", "40", "--batch", "4", "--checkpoint-every", "1",
                                   "--patience", "1", "--lr", "0.3", "--size", "128",
                                   "--precision", "float32"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert sorted(record["photos"]["held_out"]) == [f"photo{i:02d}.jpg" for i in range(3)]
    assert sorted(record["photos"]["train"]) == [f"photo{i:02d}.jpg" for i in range(6)]
    held = [h[2] for h in record["history"]]
    assert record["stopped_early"] and record["steps"] < 40
    assert held[-1] >= min(held[:-1])  # it stopped at the first checkpoint that was no better
    assert record["best"] == {"step": record["history"][int(np.argmin(held))][0],
                              "held_out_loss": min(held)}
    assert record["sessions"][0]["machine"]["tensorflow"] == tf.__version__
    model, coll, _ = colorizer_cli.load_run(run)
    best = colorizer.build_model(len(coll.bins), "classification", "float32", "main")
    best.load_weights(run / colorizer_cli.BEST)
    last = colorizer.build_model(len(coll.bins), "classification", "float32", "main")
    tf.train.Checkpoint(model=last).restore(
        tf.train.latest_checkpoint(run / "checkpoints")).expect_partial()
    L = np.linspace(0, 100, 128 * 128, dtype=np.float32).reshape(1, 128, 128, 1)
    np.testing.assert_array_equal(model(L).numpy(), best(L).numpy())
    assert not np.array_equal(model(L).numpy(), last(L).numpy())
    assert colorizer_cli.main(["train", "--photos", str(folder), "--held-out", str(apart),
                               "--out", str(run), "--network", "main", "--augment",
                               "--steps", "60", "--batch", "4", "--checkpoint-every", "1",
                               "--patience", "1", "--lr", "0.3", "--size", "128"]) == 0
    assert json.loads((run / "run.json").read_text())["steps"] == record["steps"]


def test_multiscale_crops_span_scales_and_mirror_half():
    ramp = np.tile(np.linspace(0, 1, 300, dtype=np.float32)[None, :, None], (200, 1, 3))
    crops = collection.multiscale_crops(ramp, 200, 32, np.random.default_rng(0))
    assert crops.shape == (200, 32, 32, 3)
    slope = crops[:, 16, -1, 0] - crops[:, 16, 0, 0]  # right minus left edge of each crop
    assert 60 < np.sum(slope < 0) < 140  # mirrored crops run downhill
    spans = np.abs(slope)  # a crop's span of the ramp grows with its side
    assert spans.min() < 0.15 and spans.max() > 0.5
    again = collection.multiscale_crops(ramp, 200, 32, np.random.default_rng(0))
    np.testing.assert_array_equal(crops, again)
    with pytest.raises(ValueError, match="at least the window"):
        collection.multiscale_crops(ramp[:20], 1, 32, np.random.default_rng(0))


def test_cut_out_objects_are_read_on_mid_grey(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (255, 0, 0, 255)  # an opaque red square, transparent black around
    Image.fromarray(rgba).save(tmp_path / "stamp.png")
    rgb, _ = collection.read_photo(tmp_path / "stamp.png")
    np.testing.assert_allclose(rgb[0, 0], 128 / 255)
    np.testing.assert_allclose(rgb[20, 20], (1, 0, 0))
    mask = collection.opaque_mask(tmp_path / "stamp.png", 80)
    assert mask.shape == collection.read_photo(tmp_path / "stamp.png", 80)[0].shape[:2]
    assert mask[40, 40] and not mask[5, 5] and 0.2 < mask.mean() < 0.3  # a quarter is opaque
    Image.fromarray(rgba[..., :3]).save(tmp_path / "plain.png")
    assert collection.opaque_mask(tmp_path / "plain.png") is None


def test_scan_counts_only_a_cut_outs_object_and_its_copy_keeps_the_outline(tmp_path):
    folder = _photos(tmp_path / "photos", n=5)
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[:, :15] = (0, 0, 255, 255)  # an opaque blue strip; the rest transparent red
    rgba[:, 15:] = (255, 0, 0, 0)
    Image.fromarray(rgba).save(folder / "stamp.png")
    coll = collection.scan(folder, size=40, working=tmp_path / "work", sigma=0)
    i = coll.train.index("stamp.png")
    assert coll.pixels[i] == 40 * 10  # a quarter of the 40×40 copy, the strip only
    assert len(coll.pixels) == len(coll.train) and min(coll.pixels[:i]) >= 40 * 40
    windows = collection._crops(coll.paths()[i], 0, size=40, window=32, crops=4, seed=0)
    assert windows.shape == (4, 32, 32, 4)
    blue = windows[..., 2] > 0.9  # the opacity channel marks the blue strip only
    np.testing.assert_array_equal(windows[..., 3] == 1, blue)
    np.testing.assert_array_equal(collection._crops(coll.paths()[0], 0, size=40, window=32,
                                                    crops=2, seed=0)[..., 3], 1)


def test_windows_visit_photos_in_proportion_to_their_opaque_pixels(tmp_path):
    paths = []
    for i, rgb in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):  # one colour each
        paths.append(str(tmp_path / f"plain{i}.png"))
        Image.fromarray(np.full((40, 40, 3), rgb, np.uint8)).save(paths[-1])
    ds = collection.windows_dataset(paths, size=40, window=32, batch=4, seed=0,
                                    pixels=[1, 3, 6])
    which = np.array([np.argmax(b[0, 0, 0, :3]) for b in _batches(ds, 400)])  # one visit each
    share = np.bincount(which, minlength=3) / len(which)
    assert share == pytest.approx([0.1, 0.3, 0.6], abs=0.06)
    with pytest.raises(ValueError, match="one non-negative count per photo"):
        collection.windows_dataset(paths, size=40, window=32, batch=4, pixels=[1, 2])


def test_book_runs_are_the_train_command_with_the_books_settings():
    for name in colorizer_cli.BOOK_RUNS:
        args = colorizer_cli.parser().parse_args(colorizer_cli.book_run_args(name))
        assert args.network in colorizer.ARCHITECTURES and args.augment and args.patience > 0
        assert Path(args.held_out).name == "val" and Path(args.photos).name == "train"
    assert set(colorizer_cli.NETWORKS) == set(colorizer.ARCHITECTURES)
    assert colorizer_cli.WINDOWS == {"post": colorizer.WINDOW, "main": colorizer.MAIN_WINDOW,
                                     "context": colorizer.CONTEXT_WINDOW,
                                     "local": colorizer.CONTEXT_WINDOW}
    with pytest.raises(ValueError, match="choose from"):
        colorizer_cli.book_run_args("main-nonsense")


def test_run_settings_round_trip_through_run_json_and_name_what_a_resume_changed():
    args = colorizer_cli.parser().parse_args(
        ["train", "--photos", "p", "--out", "o", "--variant", "rebalanced", "--lr", "0.002"])
    settings = colorizer_cli.RunSettings.from_args(args)
    record = json.loads(json.dumps(settings.as_record()))  # as run.json stores it
    assert colorizer_cli.RunSettings.from_record(record) == settings
    assert settings.differences(settings) == []
    longer = dataclasses.replace(settings, steps=settings.steps * 2, lr=0.001)
    assert settings.differences(longer) == ["--lr 0.002 (not 0.001)"]  # steps may change
    with pytest.raises(ValueError, match="another version"):
        colorizer_cli.RunSettings.from_record({**record, "old_key": 1})
