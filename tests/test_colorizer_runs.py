"""The committed colorizer runs (data/runs): they load into today's network code, and what
they record is what ``make weights`` would run."""

import json

import numpy as np
import pytest

from helpers import collection, colorizer, colorizer_cli, data


def _committed() -> list[str]:
    return sorted(p.name for p in colorizer_cli.BOOK_RUNS_DIR.glob("*") if p.is_dir())


def test_every_book_run_is_committed_and_nothing_else():
    assert _committed() == sorted(colorizer_cli.BOOK_RUNS)


@pytest.mark.parametrize("name", sorted(colorizer_cli.BOOK_RUNS))
def test_recorded_settings_are_the_ones_make_weights_uses(name):
    record = json.loads((colorizer_cli.BOOK_RUNS_DIR / name / "run.json").read_text())
    args = colorizer_cli.parser().parse_args(colorizer_cli.book_run_args(name))
    assert record["settings"] == colorizer_cli.RunSettings.from_args(args).as_record()


@pytest.mark.parametrize("name", sorted(colorizer_cli.BOOK_RUNS))
def test_recorded_photos_are_the_manifests_train_and_val_scenes(name):
    record = json.loads((colorizer_cli.BOOK_RUNS_DIR / name / "run.json").read_text())
    stem = {split: sorted(r["name"] for r in data.photo_manifest(split))
            for split in ("train", "val")}
    assert sorted(p.rsplit(".", 1)[0] for p in record["photos"]["train"]) == stem["train"]
    assert sorted(p.rsplit(".", 1)[0] for p in record["photos"]["held_out"]) == stem["val"]


@pytest.mark.parametrize("name", sorted(colorizer_cli.BOOK_RUNS))
def test_committed_weights_load_and_were_the_best_held_out_checkpoint(name):
    run = colorizer_cli.BOOK_RUNS_DIR / name
    model, coll, settings = colorizer_cli.load_run(run)
    record = json.loads((run / "run.json").read_text())
    losses = [h[2] for h in record["history"]]
    assert record["best"]["held_out_loss"] == min(losses)
    assert record["best"]["step"] == record["history"][int(np.argmin(losses))][0]
    L = np.full((1, 64, 96, 1), 50.0, np.float32)
    out = model(L, training=False).numpy()
    kind = 2 if settings.variant == "regression" else len(coll.bins)
    assert out.shape == (1, 16, 24, kind) and np.all(np.isfinite(out))
    assert isinstance(coll, collection.Collection) and colorizer.receptive_field(model) > 32
