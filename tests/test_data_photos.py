import csv
import importlib.util
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import config, data


def _write_images(folder, n, size=(60, 40), mode="RGB"):
    """Write ``n`` small images with a known constant colour each; return their colours."""
    colours = []
    for i in range(n):
        rgb = (10 * i, 255 - 10 * i, 128)
        Image.new("RGB", size, rgb).convert(mode).save(folder / f"img{i:02d}.png")
        colours.append(np.array(rgb, np.float32) / 255)
    return colours


def test_folder_is_split_by_image_every_fifth_is_test(tmp_path):
    colours = _write_images(tmp_path, 10)
    train, train_names = data.load_photos("train", size=32, folder=tmp_path)
    test, test_names = data.load_photos("test", size=32, folder=tmp_path)
    assert test_names == ["img04", "img09"]
    assert len(train) == 8 and not set(train_names) & set(test_names)
    everything, names = data.load_photos("all", size=32, folder=tmp_path)
    assert names == sorted(train_names + test_names)
    for im, c in zip(everything, colours):
        assert im.dtype == np.float32 and im.shape == (32, 48, 3)  # shorter side 32, aspect kept
        np.testing.assert_allclose(im, np.broadcast_to(c, im.shape), atol=1 / 255)


def test_folder_ignores_other_files_and_converts_rgba(tmp_path):
    _write_images(tmp_path, 2, mode="RGBA")
    (tmp_path / "notes.txt").write_text("not an image")
    images, names = data.load_photos("all", size=40, folder=tmp_path)
    assert names == ["img00", "img01"] and images[0].shape == (40, 60, 3)


def test_folder_rejects_grey_images(tmp_path):
    _write_images(tmp_path, 1, mode="L")
    with pytest.raises(ValueError, match="not a colour photograph"):
        data.load_photos("all", folder=tmp_path)


def test_bad_arguments_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="split"):
        data.load_photos("validation")
    with pytest.raises(ValueError, match="at least 32"):
        data.load_photos(size=16)
    with pytest.raises(ValueError, match="not a folder"):
        data.load_photos(folder=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="No images"):
        data.load_photos(folder=tmp_path)


def test_missing_photographs_name_their_package(monkeypatch):
    monkeypatch.setattr(data, "PHOTOS", (
        ("Gone", "/nonexistent/Gone.jpg", "mate-backgrounds"),
        ("Also", "/nonexistent/Also.jpg", "lomiri-wallpapers-20.04"),
    ))
    with pytest.raises(RuntimeError) as err:
        data.load_photos("all")
    message = str(err.value)
    assert "apt-get install mate-backgrounds" in message
    assert "apt-get install lomiri-wallpapers-20.04" in message
    assert "plasma" not in message


def test_every_package_is_declared_where_binder_installs_it():
    apt = (config.ROOT / "apt.txt").read_text().split()
    requirements = (config.ROOT / "requirements.txt").read_text().lower()
    for _, _, package in data.PHOTOS:
        assert package in data.PHOTO_PACKAGES
        assert package in apt or package in requirements, package


def test_photo_names_are_unique():
    names = [n for n, _, _ in data.PHOTOS]
    assert len(names) == len(set(names)) and data._TEST_PHOTOS <= set(names)


def _installed() -> bool:
    return all(data._photo_path(p).is_file() for _, p, _ in data.PHOTOS)


@pytest.mark.skipif(not _installed(), reason="the photo packages are not installed")
def test_the_books_photographs_split_by_photo():
    train, train_names = data.load_photos("train", size=64)
    test, test_names = data.load_photos("test", size=64)
    assert sorted(test_names) == sorted(data._TEST_PHOTOS)
    assert len(test) >= 10  # enough photos for an interval that resamples them
    # the test photos span every package of PHOTOS (PHOTO_PACKAGES also lists the manifest's)
    assert ({pkg for n, _, pkg in data.PHOTOS if n in data._TEST_PHOTOS}
            == {pkg for _, _, pkg in data.PHOTOS})
    assert len(train) + len(test) == len(data.PHOTOS) and not set(train_names) & set(test_names)
    for im in train + test:
        assert min(im.shape[:2]) == 64 and im.shape[2] == 3
        assert 0.0 <= im.min() and im.max() <= 1.0
        # colour photographs, not grey: some pixels have clearly different channels
        assert np.percentile(im.max(axis=-1) - im.min(axis=-1), 90) > 0.05


# ------------------------------------------------ the curated manifest data/photos.csv

KINDS = {"landscape", "object", "animal", "people", "plant", "urban", "other"}
_PYTHON_PACKAGES = {"scikit-image": "skimage", "scikit-learn": "sklearn"}


def _package_installed(package: str) -> bool:
    if package in _PYTHON_PACKAGES:
        return importlib.util.find_spec(_PYTHON_PACKAGES[package]) is not None
    if shutil.which("dpkg-query") is None:
        return False
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                            capture_output=True, text=True).stdout
    return status.endswith("installed")


MANIFEST = data.photo_manifest()
PACKAGES = sorted({row["package"] for row in MANIFEST})


def test_manifest_columns_and_values():
    with open(data.PHOTO_MANIFEST, newline="", encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == data.PHOTO_MANIFEST_COLUMNS
    assert len(MANIFEST) > 300
    for row in MANIFEST:
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", row["name"]), row["name"]
        assert row["kind"] in KINDS and row["alpha"] in (0, 1), row
        assert min(row["width"], row["height"]) >= 32, row  # the network's smallest window
        assert re.fullmatch(r"[0-9a-f]{64}", row["hash"]), row
        assert row["path"].startswith(("/usr/share/", "skimage:", "sklearn:")), row
    order = [(row["package"], row["name"].lower()) for row in MANIFEST]
    assert order == sorted(order)


def test_manifest_names_are_unique():
    names = [row["name"].lower() for row in MANIFEST]
    assert len(names) == len(set(names))
    assert len({row["path"] for row in MANIFEST}) == len(MANIFEST)


def test_manifest_splits_hold_out_whole_scenes():
    assert {row["split"] for row in MANIFEST} == set(data.PHOTO_SPLITS)
    split_of = {}
    for row in MANIFEST:
        assert split_of.setdefault(row["scene"], row["split"]) == row["split"], row["scene"]
    share = {s: sum(v == s for v in split_of.values()) / len(split_of) for s in data.PHOTO_SPLITS}
    assert 0.15 <= share["test"] <= 0.3 and 0.07 <= share["val"] <= 0.15, share


def test_manifest_test_split_spans_packages_and_landscapes():
    test = data.photo_manifest("test")
    assert data._TEST_PHOTOS <= {row["name"] for row in test}
    assert {row["package"] for row in test} == set(PACKAGES)
    landscapes = [row for row in MANIFEST if row["kind"] == "landscape"]
    assert sum(row["split"] == "test" for row in landscapes) >= 0.3 * len(landscapes)


def test_manifest_packages_are_declared_where_binder_installs_them():
    apt = (config.ROOT / "apt.txt").read_text().split()
    requirements = (config.ROOT / "requirements.txt").read_text().lower()
    for package in PACKAGES:
        assert package in data.PHOTO_PACKAGES, package
        assert package in apt or f"{package}==" in requirements, package


@pytest.mark.parametrize("package", PACKAGES)
def test_manifest_files_are_present_when_their_package_is(package):
    if not _package_installed(package):
        pytest.skip(f"{package} is not installed ({data.PHOTO_PACKAGES[package]})")
    from PIL import Image

    for row in data.photo_manifest():
        if row["package"] != package:
            continue
        path = data._photo_path(row["path"])
        assert path.is_file(), f"{row['name']}: {path} is missing though {package} is installed"
        with Image.open(path) as im:
            assert im.size == (row["width"], row["height"]), row["name"]
            assert ("A" in im.mode or "transparency" in im.info) >= bool(row["alpha"]), row


def test_kept_photos_are_not_copies_of_one_another():
    """Hashes recomputed from the files: no two kept photos within the dedupe threshold."""
    rows = [row for row in MANIFEST if _package_installed(row["package"])]
    if len(rows) < 2:
        pytest.skip("none of the photo packages is installed: " + ", ".join(PACKAGES))
    paths = [data._photo_path(row["path"]) for row in rows]
    hashes = [data.photo_hash(p) for p in paths]
    mirrored = [data.photo_hash(p, mirror=True) for p in paths]
    for row, h in zip(rows, hashes):  # the manifest's hash is the file's (decoders may differ)
        assert data.photo_hash_distance(row["hash"], h) <= 8, row["name"]
    bits = np.array([np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8)) for h in hashes])
    flip = np.array([np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8)) for h in mirrored])
    near = np.minimum((bits[:, None] != bits[None]).sum(-1), (bits[:, None] != flip[None]).sum(-1))
    np.fill_diagonal(near, 256)
    i, j = np.unravel_index(np.argmin(near), near.shape)
    assert near[i, j] > data.PHOTO_DEDUPE_THRESHOLD, (rows[i]["name"], rows[j]["name"], near[i, j])


def test_photo_hash_finds_resized_and_mirrored_copies(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.random((48, 64, 3))
    smooth = np.kron(noise[::4, ::4], np.ones((4, 4, 1)))  # a blocky "photo"
    Image.fromarray((255 * smooth).astype(np.uint8)).resize((640, 480)).save(tmp_path / "a.png")
    Image.open(tmp_path / "a.png").resize((200, 150)).save(tmp_path / "small.jpg", quality=80)
    Image.open(tmp_path / "a.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        tmp_path / "mirror.png")
    other = np.kron(rng.random((12, 16, 3)), np.ones((40, 40, 1)))
    Image.fromarray((255 * other).astype(np.uint8)).save(tmp_path / "other.png")
    h = {p.stem: data.photo_hash(p) for p in tmp_path.iterdir()}
    close = data.PHOTO_DEDUPE_THRESHOLD
    assert data.photo_hash_distance(h["a"], h["small"]) <= close
    assert data.photo_hash_distance(h["a"], h["mirror"]) > close
    assert data.photo_hash_distance(h["a"], data.photo_hash(tmp_path / "mirror.png",
                                                             mirror=True)) <= close
    assert data.photo_hash_distance(h["a"], h["other"]) > 3 * close


def test_photo_manifest_rejects_a_bad_split():
    with pytest.raises(ValueError, match="split must be one of 'train', 'val', 'test'"):
        data.photo_manifest("validation")
    with pytest.raises(ValueError, match="split"):
        data.photo_paths("Train")


def test_photo_manifest_splits_partition_it():
    parts = [data.photo_manifest(s) for s in data.PHOTO_SPLITS]
    assert sum(map(len, parts)) == len(MANIFEST)
    assert all(row["split"] == s for s, part in zip(data.PHOTO_SPLITS, parts) for row in part)


def _write_manifest(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=data.PHOTO_MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_photo_paths_resolves_bundled_files_and_names_missing_packages(monkeypatch, tmp_path):
    row = dict(width=1, height=1, kind="object", scene="s", split="train", alpha=0, hash="0" * 64)
    manifest = tmp_path / "photos.csv"
    _write_manifest(manifest, [
        dict(row, name="china", package="scikit-learn", path="sklearn:china.jpg"),
        dict(row, name="chelsea", package="scikit-image", path="skimage:chelsea.png",
             split="test"),
    ])
    monkeypatch.setattr(data, "PHOTO_MANIFEST", manifest)
    china, chelsea = data.photo_paths("all")
    assert china.name == "china.jpg" and china.parent.name == "images" and china.is_file()
    assert chelsea.name == "chelsea.png" and chelsea.is_file()
    assert data.photo_paths("test") == [chelsea]
    _write_manifest(manifest, [
        dict(row, name="gone", package="tuxpaint-stamps-default",
             path="/nonexistent/stamps/gone.png"),
        dict(row, name="china", package="scikit-learn", path="sklearn:china.jpg"),
    ])
    with pytest.raises(RuntimeError) as err:
        data.photo_paths()
    assert "apt-get install tuxpaint-stamps-default" in str(err.value)
    assert "scikit-learn" not in str(err.value)
