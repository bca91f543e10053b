"""Dataset loaders: Fashion-MNIST from a Debian package, synthetic data, photographs.

Every loader works offline from data shipped in Debian or PyPI packages; a missing source
raises one clear error naming the package or command that provides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` installs the IDX files."""

FASHION_MNIST_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

Split = tuple[np.ndarray, np.ndarray]


def _keras_dataset_dir(name: str) -> Path:
    """Return the folder where Keras' ``get_file`` looks for dataset ``name``."""
    from keras.src.backend import config as keras_config

    base = Path(os.path.expanduser(keras_config.keras_home()))
    if not os.access(base if base.exists() else base.parent, os.W_OK):
        base = Path("/tmp") / ".keras"  # the same fallback Keras' get_file uses
    return base / "datasets" / name


def _link_debian_files(source: Path, target: Path) -> bool:
    """Link the Debian package's files where Keras' loader finds them; True if all are there."""
    if not all((source / f).is_file() for f in FASHION_MNIST_FILES):
        return False
    target.mkdir(parents=True, exist_ok=True)
    for fname in FASHION_MNIST_FILES:
        link = target / fname
        if link.is_symlink() and link.resolve() != (source / fname).resolve():
            link.unlink()  # a link to another copy, or a dangling one
        if not link.exists():  # a file Keras downloaded earlier is kept
            link.symlink_to((source / fname).resolve())
    return True


def load_fashion_mnist(source_dir: str | Path | None = None) -> tuple[Split, Split]:
    """Load Fashion-MNIST as ``((x_train, y_train), (x_test, y_test))``, like Keras.

    The IDX files come from the Debian package ``dataset-fashion-mnist`` (or ``source_dir``)
    and are handed to ``keras.datasets.fashion_mnist.load_data``; without them, Keras' own
    download is tried.

    Args:
        source_dir: a folder holding the four ``*-ubyte.gz`` files; defaults to the
            Debian package's ``/usr/share/datasets/fashion-mnist``.

    Returns:
        uint8 images of shape ``(n, 28, 28)`` and uint8 labels of shape ``(n,)``.

    Raises:
        RuntimeError: if neither the files nor Keras' download are available.
    """
    import keras

    source = Path(source_dir) if source_dir is not None else FASHION_MNIST_DIR
    if source_dir is not None and not source.is_dir():
        raise ValueError(f"source_dir {str(source)!r} is not a folder; pass the folder "
                         "that holds the Fashion-MNIST *-ubyte.gz files.")
    _link_debian_files(source, _keras_dataset_dir("fashion-mnist"))
    try:
        return keras.datasets.fashion_mnist.load_data()
    except Exception as err:  # Keras raises several kinds when the download fails
        raise RuntimeError(
            f"Fashion-MNIST is not available: no IDX files in {source} and Keras could not "
            "download them. Install the Debian package (`apt-get install "
            "dataset-fashion-mnist`) or connect to the internet so that "
            "`keras.datasets.fashion_mnist.load_data()` can fetch them."
        ) from err
