"""``python -m helpers.colorizer train|colorize``: the chapter's colorizer on your own photos.

``train`` scans a photo folder once (``helpers.collection``: bins, prior and rebalancing
weights, without loading it whole), then trains ``colorizer.build_model``'s network on
windows drawn from the files with ``tf.data`` and ``colorizer.make_targets``' targets, under
the default, a ``MirroredStrategy`` or a ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``). The
run folder holds the collection, checkpoints (a stopped run resumes; ``--steps`` continues a
finished one), ``run.json`` and TensorBoard logs. ``colorize`` colours photos with a run's
latest checkpoint through ``colorizer.predict_ab``.

Training runs the chapter's own loop, ``colorizer.make_trainer`` and ``colorizer.train_loop``
(what ``scenes.train_network`` runs on generated scenes); this module feeds it windows
streamed from files and adds the one run record (``run.json``), TensorBoard and the progress
display.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
import typing
import warnings
from pathlib import Path

import numpy as np

NETWORKS = ("post", "context", "local", "main")  # colorizer.ARCHITECTURES (a test checks)
STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
WINDOWS = {"post": 32, "context": 96, "local": 96, "main": 128}
"""Side of each network's training windows (colorizer.WINDOW, CONTEXT_WINDOW, MAIN_WINDOW)."""
BEST = "best.weights.h5"
"""The weights of the checkpoint with the lowest held-out loss, in a run folder."""
_K = 5  # neighbours of the soft encoding (the chapter's default)


# ---------------------------------------------------------------- choices


def choose_precision(gpus: int, cpu_flags: list[str]) -> str:
    """The precision ``--precision auto`` trains in.

    Args:
        gpus: number of GPUs TensorFlow sees.
        cpu_flags: the CPU's bfloat16 instruction sets (``colorizer.cpu_bf16_flags()``).

    Returns:
        ``"mixed_float16"`` on a GPU, ``"mixed_bfloat16"`` on a CPU with bfloat16
        instructions (``avx512_bf16`` or ``amx_bf16``), otherwise ``"float32"``.
    """
    if gpus > 0:
        return "mixed_float16"
    if {"avx512_bf16", "amx_bf16"} & set(cpu_flags):
        return "mixed_bfloat16"
    return "float32"


def make_strategy(name: str):
    """Create the ``tf.distribute`` strategy named on the command line.

    Args:
        name: ``"default"``, ``"mirrored"`` (all local GPUs, or the CPU) or ``"multiworker"``
            (``MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG`` variable).

    Returns:
        The strategy.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable "
                             "(the cluster's workers and this one's index); see the README.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}.")


def local_cluster(n: int) -> list[str]:
    """``TF_CONFIG`` values for ``n`` workers on this machine (127.0.0.1, free ports).

    Args:
        n: number of workers.

    Returns:
        One JSON string per worker, in index order.
    """
    import socket

    if n < 1:
        raise ValueError(f"A cluster needs at least one worker, got n={n}.")
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]}
    for s in socks:
        s.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(n)]


def task_of(strategy) -> tuple[bool, str]:
    """Whether this process is the chief of its cluster, and a name for its files.

    Args:
        strategy: the training strategy.

    Returns:
        ``(is_chief, name)``: a single process is its own chief; in a cluster the chief
        task, or worker 0 when there is none.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, "chief"
    kind, index = resolver.task_type, int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = kind == "chief" or (kind == "worker" and index == 0 and not has_chief)
    return chief, f"{kind}-{index}"


def workers_of(strategy) -> tuple[int, int]:
    """How many worker processes train together, and this one's index among them.

    Args:
        strategy: the training strategy.

    Returns:
        ``(workers, index)``: ``(1, 0)`` outside a cluster; in one, the chief is 0 and
        worker ``i`` is ``i + 1`` when there is a chief, ``i`` otherwise.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1, 0
    spec = resolver.cluster_spec().as_dict()
    chiefs = len(spec.get("chief", []))
    index = 0 if resolver.task_type == "chief" else int(resolver.task_id or 0) + chiefs
    return chiefs + len(spec.get("worker", [])), index


def weights_digest(model) -> str:
    """SHA-256 of a model's weights (equal on every worker of a synchronous run)."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- the run folder


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run trains with: the ``settings`` its ``run.json`` records.

    The first seven (``RESUME_KEYS``) define the run; a resumed run must be given the same.
    The last three only say how long to train and how often to save, and may change when a
    run is resumed (e.g. a larger ``steps``).
    """

    network: str
    variant: str
    batch: int
    lr: float
    seed: int
    size: int
    augment: bool
    steps: int
    patience: int
    checkpoint_every: int

    RESUME_KEYS: typing.ClassVar[tuple[str, ...]] = ("network", "variant", "batch", "lr",
                                                      "seed", "size", "augment")

    @classmethod
    def from_args(cls, args) -> RunSettings:
        """The settings of a parsed ``train`` command line."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def from_record(cls, record: dict) -> RunSettings:
        """The settings a ``run.json`` records (its ``settings`` entry)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(record) != names:
            raise ValueError(f"run.json's settings have keys {sorted(record)}, not "
                             f"{sorted(names)}; the run was written by another version of "
                             "the command: retrain it.")
        return cls(**record)

    def as_record(self) -> dict:
        """The ``settings`` entry of ``run.json``."""
        return dataclasses.asdict(self)

    def differences(self, other: RunSettings) -> list[str]:
        """The defining settings (``RESUME_KEYS``) in which ``other`` differs, as options."""
        return [f"--{k.replace('_', '-')} {getattr(self, k)} (not {getattr(other, k)})"
                for k in self.RESUME_KEYS if getattr(self, k) != getattr(other, k)]


def machine() -> dict:
    """What the run trained on: CPU model, bfloat16 flags, cores, GPUs, Python and TF."""
    import platform

    import tensorflow as tf

    from helpers import colorizer, config

    return {"cpu": config.cpu_model(), "cpu_bf16_flags": colorizer.cpu_bf16_flags(),
            "cores": len(os.sched_getaffinity(0)),
            "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
            "python": platform.python_version(), "tensorflow": tf.__version__}


def commit() -> str | None:
    """The book's git commit (``+dirty`` when the helpers or the photo manifest differ from
    it), or None outside git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "helpers", "data/photos.csv"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty.strip() else "")


def _check_resume(run: Path, args) -> dict:
    """The run's saved settings, after checking the command line agrees with them."""
    saved = json.loads((run / "run.json").read_text())
    differ = RunSettings.from_record(saved["settings"]).differences(
        RunSettings.from_args(args))
    if differ:
        raise ValueError(f"{str(run)!r} was trained with {', '.join(differ)}; pass the same "
                         "settings to continue it, or a new --out for a new run.")
    from helpers import collection

    coll = collection.load(run)
    if args.step is not None and float(args.step) != coll.step:
        raise ValueError(f"{str(run)!r} was trained with other bins: side {coll.step:g} "
                         f"({len(coll.bins)} bins), not {args.step:g}; continue it with its own "
                         "bins or train a new run with a new --out.")
    if Path(args.photos).resolve() != coll.folder:
        raise ValueError(f"{str(run)!r} was trained on {str(coll.folder)!r}, not "
                         f"{args.photos!r}; use a new --out for another folder.")
    return saved


def _start_run(run: Path, args, chief: bool) -> None:
    """Scan the photos (the chief) or wait for the chief's scan (other workers)."""
    from helpers import collection

    if chief:
        coll = collection.scan(args.photos, step=args.step or 10.0, size=args.size,
                               working=run / "working", held_out_folder=args.held_out)
        collection.save(coll, run)
        record = {"settings": RunSettings.from_args(args).as_record(), "history": [], "steps": 0,
                  "photos": {"folder": str(coll.folder), "train": coll.train,
                             "held_out_folder": None if coll.held_out_folder is None
                             else str(coll.held_out_folder), "held_out": coll.held_out},
                  "best": None, "stopped_early": False, "wall_seconds": 0.0, "sessions": []}
        (run / "run.json").write_text(json.dumps(record, indent=1))
        print(f"scanned {args.photos}: {len(coll.train)} colour photos to train on, "
              f"{len(coll.held_out)} held out, {coll.grey} grey-scale left out, "
              f"{coll.skipped} unreadable; {len(coll.bins)} ab bins", flush=True)
        return
    while not (run / "run.json").is_file():
        time.sleep(0.5)


# ---------------------------------------------------------------- training


def _progress(total: int, done: int):
    """A tqdm bar in a terminal, None otherwise (one line per checkpoint is printed then)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", dynamic_ncols=True)


def _held_out_batch(coll, args, window: int, bins, weights, kind: str):
    """A fixed batch of held-out windows with their targets, or None without held-out photos.

    Four windows of each held-out photo, cut as the training windows are (``--augment``), in
    positions fixed by the run's seed, so that every checkpoint is scored on the same ones.
    """
    from helpers import collection, colorizer

    if not coll.held_out:
        return None
    ds = collection.windows_dataset(coll.paths("held_out"), size=coll.size, window=window,
                                    batch=4 * len(coll.held_out), seed=10_000 + args.seed,
                                    augment=args.augment)
    windows = next(iter(ds))
    return colorizer.make_targets(windows, bins, weights, kind, coll.sigma, _K, args.network)


def _summaries(writer, step: int, shadow, coll, held_loss: float, loss: float, rate: float,
               variant: str) -> None:
    """Write a checkpoint's TensorBoard summaries (losses, colourized held-out photos)."""
    import tensorflow as tf

    from helpers import collection, color, colorizer

    with writer.as_default(step=step):
        tf.summary.scalar("loss/train", loss)
        if np.isfinite(held_loss):
            tf.summary.scalar("loss/held_out", held_loss)
        if np.isfinite(rate):
            tf.summary.scalar("windows_per_second", rate)
        bins = None if variant == "regression" else coll.bins
        shown = list(zip(coll.held_out, coll.paths("held_out")))[:collection.MAX_HELD_OUT]
        for name, path in shown:
            rgb, _ = collection.read_photo(path, coll.size)
            grey = np.repeat(color.rgb_to_lab(rgb).numpy()[..., :1] / 100.0, 3, axis=-1)
            out = colorizer.colorize(shadow, rgb, bins)
            strip = np.concatenate([grey, out, rgb], axis=1)  # grey | colourized | truth
            tf.summary.image(f"held_out/{name}", strip[None], step=step)
    writer.flush()


def train(args) -> int:
    """The ``train`` command (see ``main``)."""
    import tensorflow as tf

    from helpers import collection, colorizer

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    strategy = make_strategy(args.strategy)
    chief, task = task_of(strategy)
    replicas = strategy.num_replicas_in_sync
    if args.steps < 1 or args.batch < 1 or args.checkpoint_every < 1 or args.patience < 0:
        raise ValueError("--steps, --batch and --checkpoint-every must be positive, "
                         "--patience at least 0.")
    if args.patience and workers_of(strategy)[0] > 1:
        raise ValueError("--patience (early stopping) needs one process; train without it "
                         "under --strategy multiworker.")
    if args.batch % replicas:
        raise ValueError(f"--batch {args.batch} must be a multiple of the {replicas} replicas.")
    if args.batch % workers_of(strategy)[0]:
        raise ValueError(f"--batch {args.batch} must be a multiple of the number of workers.")
    run = Path(args.out)
    if (run / "run.json").is_file():
        _check_resume(run, args)
    else:
        if not Path(args.photos).is_dir():
            raise ValueError(f"{args.photos!r} is not a folder; pass --photos a folder of photos.")
        run.mkdir(parents=True, exist_ok=True)
        _start_run(run, args, chief)
    coll = collection.load(run)
    precision = args.precision
    if precision == "auto":
        precision = choose_precision(len(tf.config.list_physical_devices("GPU")),
                                     colorizer.cpu_bf16_flags())
    q = len(coll.bins)
    kind = "regression" if args.variant == "regression" else "classification"
    weights = coll.weights if args.variant == "rebalanced" else None
    window = WINDOWS[args.network]
    trainer = colorizer.make_trainer(q, args.variant, lr=args.lr, precision=precision,
                                     architecture=args.network, seed=args.seed,
                                     strategy=strategy)
    saved_dir = run / "checkpoints"
    latest = tf.train.latest_checkpoint(saved_dir)
    if latest:
        trainer.checkpoint.restore(latest).expect_partial()
    done = int(trainer.step.numpy())
    target = args.steps
    record = json.loads((run / "run.json").read_text())
    if done >= target or record.get("stopped_early"):
        why = ("it stopped early: its held-out loss stopped improving" if
               record.get("stopped_early") else f"pass --steps above {done} to train on")
        print(f"{run} is trained to step {done}; {why}.", flush=True)
        return 0
    # a resume may change steps, patience and checkpoint_every (the rest was checked equal):
    # the record keeps the settings of the command that trained it last
    record["settings"] = RunSettings.from_args(args).as_record()
    write_dir = saved_dir if chief else run / f".{task}"  # other workers: a scratch copy
    manager = tf.train.CheckpointManager(trainer.checkpoint, write_dir, max_to_keep=2)

    workers, index = workers_of(strategy)
    per_worker = args.batch // workers  # windows each worker feeds per step

    # Each worker reads its own photos (auto-sharding off) in global batches, which the
    # strategy splits among the replicas, so each worker consumes batch / workers windows
    # per step.
    ds = collection.windows_dataset(coll.paths(), size=coll.size, window=window,
                                    batch=per_worker, seed=args.seed, start=done,
                                    pipeline=index, pipelines=workers, augment=args.augment,
                                    pixels=coll.pixels)
    if workers > 1:
        ds = ds.unbatch().batch(args.batch, drop_remainder=True)
    ds = ds.map(lambda w: colorizer.make_targets(w, coll.bins, weights, kind, coll.sigma, _K,
                                                 args.network),
                num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    if args.threads:
        options.threading.private_threadpool_size = args.threads
    data = ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    held = _held_out_batch(coll, args, window, coll.bins, weights, kind)
    if chief and held is not None and "held_out_baseline" not in record:
        record["held_out_baseline"] = colorizer.prior_only_loss(held[1], held[2],
                                                                coll.prior, coll.bins)
    # a float32 copy colours the held-out photos for TensorBoard outside the strategy
    shadow = colorizer.build_model(q, kind, "float32", args.network) if chief else None
    writer = tf.summary.create_file_writer(str(run / "logs")) if chief else None
    session = {"from_step": done, "to_step": done, "seconds": 0.0, "precision": precision,
               "machine": machine(), "commit": commit()}
    record.setdefault("sessions", []).append(session)
    best = record.get("best") or {"step": 0, "held_out_loss": float("inf")}
    waited = sum(1 for h in record["history"] if h[0] > best["step"])
    t_start = time.perf_counter()
    bar = _progress(target, done) if chief else None
    print(f"{task}: training {args.network} {args.variant} from step {done} to {target} "
          f"({replicas} replica(s), batch {args.batch}, {precision})", flush=True)

    def on_chunk(now: int, n: int, loss: float, seconds: float) -> bool:
        nonlocal waited
        # the first chunk of a process includes tracing: its rate is not reported
        rate = n * args.batch / seconds if now - n > done else float("nan")
        if not chief:
            return False
        held_loss = (float("nan") if held is None
                     else colorizer.held_out_loss(trainer, *held))
        shadow.set_weights(trainer.model.get_weights())
        _summaries(writer, now, shadow, coll, held_loss, loss, rate, args.variant)
        if held_loss < best["held_out_loss"]:
            best.update(step=now, held_out_loss=held_loss)
            shadow.save_weights(run / BEST)
            record["best"], waited = dict(best), 0
        else:
            waited += 1
        stop = bool(args.patience) and waited >= args.patience
        record["history"].append([now, loss, held_loss, rate])
        record["steps"], record["stopped_early"] = now, stop
        session.update(to_step=now, seconds=time.perf_counter() - t_start)
        record["wall_seconds"] = sum(s["seconds"] for s in record["sessions"])
        (run / "run.json").write_text(json.dumps(record, indent=1))
        line = (f"step {now}/{target}: loss {loss:.3f}, held-out {held_loss:.3f}, "
                + (f"{rate:.0f} windows/s" if np.isfinite(rate)
                   else "no rate for a process's first chunk (it includes tracing)")
                + (f"; stopped: no better held-out loss in {waited} checkpoints, the best "
                   f"was at step {best['step']}" if stop else ""))
        (bar.write if bar is not None else print)(line)
        sys.stdout.flush()
        return stop

    colorizer.train_loop(trainer, data, until=target, every=args.checkpoint_every,
                         manager=manager, on_chunk=on_chunk,
                         on_step=None if bar is None else lambda _: bar.update(1))
    if bar is not None:
        bar.close()
    if not chief:
        import shutil

        shutil.rmtree(write_dir, ignore_errors=True)
    rates = [r for *_, r in record["history"] if np.isfinite(r)] if chief else []
    print(f"{task}: done at step {int(trainer.step.numpy())}; weights sha256 "
          f"{weights_digest(trainer.model)}"
          + (f"; {np.median(rates):.0f} windows/s (median over checkpoints)" if rates else ""),
          flush=True)
    return 0


# ---------------------------------------------------------------- colorizing


def load_run(run: str | Path):
    """A trained run's model (latest checkpoint, float32) and its collection.

    Args:
        run: a run folder written by ``train``.

    Returns:
        ``(model, collection, settings)``.
    """
    import tensorflow as tf

    from helpers import collection, colorizer

    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"The run folder {str(run)!r} does not exist; train one with "
                         f"`python -m helpers.colorizer train --photos DIR --out {run}`.")
    coll = collection.load(run)
    if not (run / "run.json").is_file():
        raise ValueError(f"{str(run)!r} has no run.json; is it a run folder?")
    settings = RunSettings.from_record(json.loads((run / "run.json").read_text())["settings"])
    latest = tf.train.latest_checkpoint(run / "checkpoints")
    if not latest and not (run / BEST).is_file():
        raise ValueError(f"{str(run)!r} holds no checkpoint yet; let `train` reach its first "
                         "checkpoint (--checkpoint-every).")
    kind = "regression" if settings.variant == "regression" else "classification"
    model = colorizer.build_model(len(coll.bins), kind, "float32", settings.network)
    if (run / BEST).is_file():  # the checkpoint with the lowest held-out loss
        try:
            model.load_weights(run / BEST)
        except ValueError as err:
            raise ValueError(f"{str(run / BEST)!r} does not fit today's {settings.network} "
                             f"network over {len(coll.bins)} bins ({err}); retrain the run "
                             "(`make weights` for the book's runs).") from None
        return model, coll, settings
    try:
        status = tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.InvalidArgumentError) as err:
        raise ValueError(f"The checkpoint in {str(run)!r} does not fit its own {len(coll.bins)} "
                         "ab bins (prior.npz): it was trained with other bins. Train again into "
                         f"a new --out ({str(err).splitlines()[0][:120]}).") from None
    return model, coll, settings


def _inputs(items: list[str]) -> list[Path]:
    files = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{item!r} is neither an image nor a folder.")
    if not files:
        raise ValueError("No files to colorize in " + ", ".join(map(repr, items)) + ".")
    return files


BAND_ROWS = 256
"""Full-resolution rows converted to Lab and back at a time: the conversions' intermediates
then take a band's worth of memory, not a whole large photo's several times over."""


def colorize_file(model, coll, path: str | Path, variant: str,
                  band_rows: int = BAND_ROWS) -> np.ndarray:
    """Colour one photograph at its own resolution.

    The network predicts ab at the run's working size (its shorter side ``coll.size``), the
    ab image is scaled bilinearly to the photo's size and joined to the photo's own L, in
    bands of ``band_rows`` rows (the conversions are per pixel, so the result is the same).

    Args:
        model: a trained model (``load_run``).
        coll: the run's collection (bins, working size).
        path: an image file (colour or grey-scale).
        variant: the run's variant (regression models need no bins).
        band_rows: rows converted at a time (memory, not the result).

    Returns:
        float RGB ``(H, W, 3)`` in [0, 1].
    """
    if band_rows < 1:
        raise ValueError(f"band_rows must be a positive number of rows, got {band_rows}.")
    import tensorflow as tf

    from helpers import collection, color, colorizer

    full, _ = collection.read_photo(path)
    small, _ = collection.read_photo(path, coll.size)
    L_small = color.rgb_to_lab(small).numpy()[..., 0]
    bins = None if variant == "regression" else coll.bins
    ab = colorizer.predict_ab(model, L_small, bins)
    ab_full = tf.image.resize(ab[None], full.shape[:2], method="bilinear")[0].numpy()
    out = np.empty(full.shape, np.float32)
    for r in range(0, full.shape[0], band_rows):
        L = color.rgb_to_lab(full[r:r + band_rows]).numpy()[..., :1]
        out[r:r + band_rows] = color.lab_to_rgb(np.concatenate([L, ab_full[r:r + band_rows]], -1))
    return out


def colorize(args) -> int:
    """The ``colorize`` command (see ``main``)."""
    from PIL import Image

    model, coll, settings = load_run(args.run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped, written = [], 0
    for path in _inputs(args.images):
        try:
            rgb = colorize_file(model, coll, path, settings.variant)
        except (OSError, Image.DecompressionBombError, SyntaxError):
            skipped.append(str(path))
            continue
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(out / f"{path.stem}.png")
        written += 1
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} file(s) that are not readable images "
                      f"(e.g. {skipped[0]!r}).", stacklevel=2)
    print(f"colorized {written} photo(s) into {out}", flush=True)
    return 0


# ---------------------------------------------------------------- the book's runs

_ROOT = Path(__file__).resolve().parent.parent
BOOK_PHOTOS = _ROOT / "data" / "photos"
"""Where ``photos`` links the curated photographs (``train/``, ``val/``, ``test/``)."""
BOOK_RUNS_DIR = _ROOT / "data" / "runs"
"""The committed runs the chapter reads (weights, record, bins and prior of each)."""
BOOK_TRAINING = ["--network", "main", "--augment", "--size", "384", "--batch", "32",
                 "--lr", "1e-3", "--seed", "0", "--steps", "2400", "--checkpoint-every", "200",
                 "--patience", "5", "--precision", "float32"]
"""The settings of every committed run: the main colorizer on multi-scale crops, scored on
the validation scenes every 200 steps and stopped after 5 scores without improvement."""
BOOK_RUNS = {f"main-{v}": ["--variant", v] for v in ("classification", "rebalanced",
                                                     "regression")}
"""The committed runs, by folder name, with what sets each apart."""


def book_run_args(name: str, photos: Path = BOOK_PHOTOS, runs: Path = BOOK_RUNS_DIR) -> list:
    """The ``train`` command line that ``make weights`` runs for one committed run.

    Args:
        name: a key of ``BOOK_RUNS``.
        photos: the folder ``photos`` linked the curated photographs into.
        runs: the folder of the run folders.

    Returns:
        The arguments after ``python -m helpers.colorizer``.
    """
    if name not in BOOK_RUNS:
        raise ValueError(f"No committed run is called {name!r}; choose from "
                         f"{', '.join(BOOK_RUNS)}.")
    return ["train", "--photos", str(photos / "train"), "--held-out", str(photos / "val"),
            "--out", str(runs / name), *BOOK_TRAINING, *BOOK_RUNS[name]]


def link_photos(out: str | Path = BOOK_PHOTOS) -> dict:
    """Link the curated photographs (``data/photos.csv``) into ``out/<split>/``.

    Each photo becomes ``out/<split>/<name><suffix>``, a symbolic link to the packaged file,
    so that the folders can be passed to ``train`` (``--photos``, ``--held-out``) and
    ``colorize``. Links left from an earlier call are replaced.

    Args:
        out: the folder to fill.

    Returns:
        The number of photos linked per split.

    Raises:
        RuntimeError: naming the package to install when a photograph is missing.
    """
    from helpers import data

    out = Path(out)
    counts = {}
    for split in data.PHOTO_SPLITS:
        rows, paths = data.photo_manifest(split), data.photo_paths(split)
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            if old.is_symlink():
                old.unlink()
        for row, path in zip(rows, paths):
            (folder / f"{row['name']}{path.suffix.lower()}").symlink_to(path)
        counts[split] = len(rows)
    return counts


def weights(args) -> int:
    """The ``weights`` command: retrain every committed run from scratch (``make weights``)."""
    import shutil

    names = args.only or list(BOOK_RUNS)
    for name in names:
        if name not in BOOK_RUNS:
            raise ValueError(f"No committed run is called {name!r}; choose from "
                             f"{', '.join(BOOK_RUNS)}.")
    counts = link_photos(BOOK_PHOTOS)
    print("photos linked into " + str(BOOK_PHOTOS) + ": "
          + ", ".join(f"{n} {s}" for s, n in counts.items()), flush=True)
    times = {}
    for name in names:
        shutil.rmtree(BOOK_RUNS_DIR / name, ignore_errors=True)
        t0 = time.perf_counter()
        status = train(parser().parse_args(book_run_args(name)))
        times[name] = time.perf_counter() - t0
        print(f"{name}: {times[name] / 60:.1f} min", flush=True)
        if status:
            return status
    print(f"retrained {len(names)} run(s) in {sum(times.values()) / 60:.1f} min: "
          + ", ".join(f"{n} {t / 60:.1f}" for n, t in times.items()), flush=True)
    return 0


# ---------------------------------------------------------------- command line


def _quiet_tensorflow() -> None:
    """Import TensorFlow and find its devices with its C++ start-up lines discarded.

    TensorFlow's C++ core writes lines such as "Could not find cuda drivers" and "failed call
    to cuInit" to the process's standard error before its logging is set up, where
    ``TF_CPP_MIN_LOG_LEVEL`` cannot reach them. They would open the command's output, so the
    file descriptor is pointed at the null device for the import only; a Python error in the
    import is still raised and printed.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m helpers.colorizer``."""
    from helpers.colorizer import VARIANTS

    p = argparse.ArgumentParser(prog="python -m helpers.colorizer",
                                description="Train the book's colorizer on a photo folder, "
                                            "or colorize photos with a trained run.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or continue training) a run on a photo folder")
    t.add_argument("--photos", required=True, help="folder of colour photographs (recursive)")
    t.add_argument("--held-out", default=None,
                   help="folder of photos kept out of training and scored at every checkpoint "
                        "(default: a few photos of --photos)")
    t.add_argument("--augment", action="store_true",
                   help="train on crops of random scale (up to the whole photo), half mirrored")
    t.add_argument("--patience", type=int, default=0,
                   help="stop after this many checkpoints without a lower held-out loss "
                        "(0: never); the best checkpoint's weights are kept as " + BEST)
    t.add_argument("--out", required=True, help="run folder (created, or continued)")
    t.add_argument("--variant", default="rebalanced", choices=VARIANTS)
    t.add_argument("--network", default="post", choices=NETWORKS)
    t.add_argument("--steps", type=int, default=1000,
                   help="train until this step (more than a finished run's steps continues it)")
    t.add_argument("--batch", type=int, default=32, help="global batch (windows per step)")
    t.add_argument("--strategy", default="default", choices=STRATEGIES)
    t.add_argument("--size", type=int, default=128,
                   help="working resolution: shorter side photos are read at (px)")
    t.add_argument("--step", type=float, default=None, help="side of the ab bins (default 10)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: mixed float16 on a GPU, mixed bfloat16 on a CPU that has it")
    t.add_argument("--threads", type=int, default=0,
                   help="TensorFlow and tf.data threads of this process (0: all)")
    w = sub.add_parser("weights", help="retrain the book's committed runs from scratch "
                                       "into data/runs (what `make weights` runs)")
    w.add_argument("--only", nargs="+", default=None, help="these runs only (default: all)")
    c = sub.add_parser("colorize", help="colour photos with a trained run")
    c.add_argument("--run", required=True, help="run folder written by train")
    c.add_argument("images", nargs="+", help="image files or folders (grey-scale is fine)")
    c.add_argument("--out", required=True, help="folder for the coloured PNGs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; bad input ends with one clear message and exit status 2.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    _quiet_tensorflow()  # parser() reads the network names from helpers.colorizer
    args = parser().parse_args(argv)
    try:
        return {"train": train, "weights": weights, "colorize": colorize}[args.command](args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
