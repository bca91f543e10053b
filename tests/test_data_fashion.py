import gzip

import numpy as np
import pytest

from helpers import data


def _write_idx(folder, n):
    """Write a tiny, valid Fashion-MNIST-shaped IDX set with known content."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\x00" * 8 + labels.tobytes())
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\x00" * 16 + images.tobytes())
    return images, labels


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Point Keras' own cache (what its loader reads) at a fresh folder."""
    from keras.src.backend import config as keras_config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


def test_loader_hands_package_files_to_keras(tmp_path, keras_home):
    source = tmp_path / "debian"
    source.mkdir()
    images, labels = _write_idx(source, 5)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(source)
    np.testing.assert_array_equal(x_train, images)
    np.testing.assert_array_equal(y_test, labels)
    assert x_train.dtype == np.uint8 and x_train.shape == (5, 28, 28)
    assert (keras_home / "datasets" / "fashion-mnist" / data.FASHION_MNIST_FILES[0]).is_symlink()


def test_loader_relinks_when_the_source_changes(tmp_path, keras_home):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _write_idx(first, 3)
    _write_idx(second, 4)
    assert data.load_fashion_mnist(first)[0][0].shape[0] == 3
    assert data.load_fashion_mnist(second)[0][0].shape[0] == 4


def test_loader_names_both_remedies_when_no_source(tmp_path, keras_home, monkeypatch):
    import keras

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError) as err:
        data.load_fashion_mnist(empty)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "keras.datasets.fashion_mnist.load_data()" in str(err.value)


def test_loader_rejects_a_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        data.load_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.skipif(not data.FASHION_MNIST_DIR.is_dir(),
                    reason="dataset-fashion-mnist not installed")
def test_debian_package_gives_the_real_dataset():
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
