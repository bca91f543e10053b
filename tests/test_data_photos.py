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
    assert {pkg for n, _, pkg in data.PHOTOS if n in data._TEST_PHOTOS} == set(data.PHOTO_PACKAGES)
    assert len(train) + len(test) == len(data.PHOTOS) and not set(train_names) & set(test_names)
    for im in train + test:
        assert min(im.shape[:2]) == 64 and im.shape[2] == 3
        assert 0.0 <= im.min() and im.max() <= 1.0
        # colour photographs, not grey: some pixels have clearly different channels
        assert np.percentile(im.max(axis=-1) - im.min(axis=-1), 90) > 0.05
