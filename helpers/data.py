"""Dataset loaders: Fashion-MNIST from a Debian package, synthetic data, photographs.

Every loader works offline from data shipped in Debian or PyPI packages; a missing source
raises one clear error naming the package or command that provides it.
"""

from __future__ import annotations

import csv
import importlib.util
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


# ---------------------------------------------------------------- photographs (colorization)

PHOTO_PACKAGES = {
    "mate-backgrounds": "apt-get install mate-backgrounds",
    "plasma-workspace-wallpapers": "apt-get install plasma-workspace-wallpapers",
    "lomiri-wallpapers-20.04": "apt-get install lomiri-wallpapers-20.04",
    "lomiri-wallpapers-16.04": "apt-get install lomiri-wallpapers-16.04",
    "scikit-image": "pip install scikit-image",
    "lxqt-themes": "apt-get install lxqt-themes",
    "tuxpaint-data": "apt-get install tuxpaint-data",
    "tuxpaint-stamps-default": "apt-get install tuxpaint-stamps-default",
    "scikit-learn": "pip install scikit-learn",
}
"""The packages that ship the book's photographs, and the command that installs each."""

_MATE = "/usr/share/backgrounds/mate/nature/{}.jpg"
_PLASMA = "/usr/share/wallpapers/{}/contents/images/{}.jpg"
_LOMIRI = "/usr/share/backgrounds/{}.jpg"
# Twelve test photos, chosen to span every package and kind of scene (flowers, insects,
# mountains, sky, animals): a third of the photographs, so that resampling them means something.
_TEST_PHOTOS = {"Garden", "LadyBird", "Storm", "YellowFlower", "Path", "EveningGlow", "Kite",
                "Kleiber", "picosdeeuropa", "Dragonfly", "friends", "chelsea"}

# Curated by looking at every image the packages ship: only real photographs are kept.
# Left out: illustrations and abstract art (MATE's abstract/desktop sets, most Plasma
# wallpapers, three of Lomiri 20.04's four, Lomiri 16.04's analogpattern, umang, and the
# rendered greentock and free), near-monochrome photos (Plasma's ColdRipple and Grey), and
# scikit-image's astronomy, microscopy and retina images. Looked at and not used: every
# image of ukui-wallpapers and gnome-backgrounds (illustrations, patterns, renders).
PHOTOS: tuple[tuple[str, str, str], ...] = tuple(
    [(n, _MATE.format(n), "mate-backgrounds") for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")]
    + [(n, _PLASMA.format(n, "800x600"), "plasma-workspace-wallpapers") for n in (
        "BytheWater", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite", "OneStandsOut",
        "Path", "summer_1am")]
    + [("ColorfulCups", _PLASMA.format("ColorfulCups", "2560x1600"),
        "plasma-workspace-wallpapers"),
       ("Kleiber", _LOMIRI.format("Kleiber_by_Lukas_Baubkus"), "lomiri-wallpapers-20.04")]
    + [(n.split("_by_")[0], _LOMIRI.format(n), "lomiri-wallpapers-16.04") for n in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "friends_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi",
        "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
        "sunset_by_Aitzol_Berasategi")]
    + [(n, f"skimage:{n}.{ext}", "scikit-image") for n, ext in (
        ("astronaut", "png"), ("chelsea", "png"), ("coffee", "png"),
        ("motorcycle_left", "png"), ("rocket", "jpg"))]
)
"""The book's photographs as ``(name, path, package)``; ``skimage:`` paths are relative to
scikit-image's bundled data folder."""

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


_BUNDLED_PHOTOS = {"skimage": ("skimage", "data"), "sklearn": ("sklearn", "datasets/images")}
"""Path prefixes of photos bundled in Python packages: ``prefix: (module, folder in it)``."""


def _photo_path(path: str) -> Path:
    """Resolve ``skimage:<file>`` / ``sklearn:<file>`` to the installed file; others unchanged."""
    prefix, _, name = path.partition(":")
    if prefix in _BUNDLED_PHOTOS and name:
        module, folder = _BUNDLED_PHOTOS[prefix]
        spec = importlib.util.find_spec(module)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            return Path("/nonexistent") / path
        return Path(list(spec.submodule_search_locations)[0]) / folder / name
    return Path(path)


def _read_photo(path: Path, size: int) -> np.ndarray:
    """Read an image as float32 RGB in [0, 1], scaled so its shorter side is ``size`` px."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in {"RGB", "RGBA", "P", "CMYK", "YCbCr"}:
            raise ValueError(f"{path} is a {im.mode} image, not a colour photograph; "
                             "leave it out of the folder.")
        scale = size / min(im.size)
        target = (max(size, round(im.size[0] * scale)), max(size, round(im.size[1] * scale)))
        im.draft("RGB", target)  # JPEG: decode at a reduced size, much faster
        im = im.convert("RGB").resize(target, Image.Resampling.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255.0


def load_photos(split: str = "train", size: int = 128,
                folder: str | Path | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Load colour photographs at a working resolution, split by photo into train and test.

    Without ``folder``, the book's curated ``PHOTOS`` (Debian wallpaper packages and
    scikit-image); twelve of them are held out as test photos. With ``folder``, every image in
    it (sorted by name; every fifth is a test photo), e.g. the post's 2,687 outdoor scenes
    of 256×256 px unpacked into one folder.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: the shorter side of every returned image, in pixels (at least 32).
        folder: optional folder of your own images.

    Returns:
        ``(images, names)``: float32 RGB arrays of shape ``(H, W, 3)`` in [0, 1], and names.

    Raises:
        RuntimeError: naming the package (and install command) of any missing photograph.
    """
    if split not in {"train", "test", "all"}:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}.")
    if size < 32:
        raise ValueError(f"size must be at least 32 px (the network's window), got {size}.")
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{str(folder)!r} is not a folder; pass a folder of images.")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        if not files:
            raise ValueError(f"No images ({', '.join(PHOTO_SUFFIXES)}) in {str(folder)!r}.")
        chosen = [(p.stem, p) for i, p in enumerate(files)
                  if split == "all" or (i % 5 == 4) == (split == "test")]
    else:
        entries = [(n, _photo_path(p), pkg) for n, p, pkg in PHOTOS
                   if split == "all" or (n in _TEST_PHOTOS) == (split == "test")]
        missing = sorted({pkg for _, p, pkg in entries if not p.is_file()})
        if missing:
            raise RuntimeError(
                "Photographs are missing; install the package(s) that ship them: "
                + "; ".join(f"{pkg} (`{PHOTO_PACKAGES[pkg]}`)" for pkg in missing) + ".")
        chosen = [(n, p) for n, p, _ in entries]
    return [_read_photo(p, size) for _, p in chosen], [n for n, _ in chosen]


# ------------------------------------------- curated photo manifest (colorizer training)

PHOTO_MANIFEST = Path(__file__).resolve().parent.parent / "data" / "photos.csv"
"""Every colour photograph the Debian and Python packages ship, once each, with its split
(``data/README.md`` says how it was curated)."""

PHOTO_SPLITS = ("train", "val", "test")
"""Splits of the manifest: whole scenes are held out, never crops of a training photo."""

PHOTO_MANIFEST_COLUMNS = ("name", "package", "path", "width", "height", "kind", "scene",
                          "split", "alpha", "hash")

PHOTO_HASH_SIZE = 16
"""The hash keeps the lowest 16 x 16 = 256 frequencies of a 64 x 64 grey thumbnail."""

PHOTO_DEDUPE_THRESHOLD = 20
"""Two images whose hashes (as-is or one mirrored) differ in at most this many of the 256 bits
count as one photo: resized copies of one image differ in at most 14 bits, the kept photos in
34 or more (data/README.md says how this was checked)."""


def _dct_matrix(n: int) -> np.ndarray:
    """The (unnormalized) DCT-II basis: row ``k`` holds ``cos(pi * (2 m + 1) * k / (2 n))``."""
    k, m = np.arange(n)[:, None], np.arange(n)[None, :]
    return np.cos(np.pi * (2 * m + 1) * k / (2 * n))


def photo_hash(path: str | Path, *, mirror: bool = False) -> str:
    """Perceptual (DCT) hash of an image, for finding one photo shipped several times.

    The image (transparent pixels composited on mid grey, as the colorizer reads them) is
    shrunk to a 64 x 64 grey thumbnail; each of the 16 x 16 lowest-frequency DCT
    coefficients gives one bit: above the median of those coefficients (bar the mean) or not.
    Resizing, recompression and mild colour changes keep nearly every bit.

    Args:
        path: an image file PIL can read.
        mirror: hash the image mirrored left to right (to find mirrored copies).

    Returns:
        256 bits as 64 hexadecimal characters.
    """
    from PIL import Image

    side = 4 * PHOTO_HASH_SIZE
    with Image.open(path) as im:
        im.draft("RGB", (side, side))  # JPEG: decode at a reduced size
        rgba = im.convert("RGBA")
    grey = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    small = Image.alpha_composite(grey, rgba).convert("L")
    small = small.resize((side, side), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64)
    if mirror:
        pixels = pixels[:, ::-1]
    basis = _dct_matrix(side)[:PHOTO_HASH_SIZE]
    low = (basis @ pixels @ basis.T).ravel()
    return np.packbits(low > np.median(low[1:])).tobytes().hex()


def photo_hash_distance(a: str, b: str) -> int:
    """Number of bits in which two ``photo_hash`` values differ (0 to 256)."""
    x, y = (np.unpackbits(np.frombuffer(bytes.fromhex(h), np.uint8)) for h in (a, b))
    return int(np.count_nonzero(x != y))


def photo_manifest(split: str = "all") -> list[dict]:
    """Read the curated photo manifest ``data/photos.csv``.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.

    Returns:
        One dict per photo with the CSV's columns; ``width``, ``height`` and ``alpha`` as int.

    Raises:
        ValueError: if ``split`` is not one of the above.
    """
    if split not in (*PHOTO_SPLITS, "all"):
        raise ValueError(f"split must be one of {', '.join(map(repr, PHOTO_SPLITS))} or "
                         f"'all', got {split!r}.")
    with open(PHOTO_MANIFEST, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("width", "height", "alpha"):
            row[key] = int(row[key])
    return [row for row in rows if split == "all" or row["split"] == split]


def photo_paths(split: str = "all") -> list[Path]:
    """Files of the manifest's photos in ``split``, in the manifest's order.

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.

    Returns:
        Absolute paths; ``skimage:`` and ``sklearn:`` entries resolved in the installed package.

    Raises:
        ValueError: if ``split`` is unknown.
        RuntimeError: naming the package (and install command) of any missing file.
    """
    rows = photo_manifest(split)
    paths = [_photo_path(row["path"]) for row in rows]
    missing = sorted({row["package"] for row, p in zip(rows, paths) if not p.is_file()})
    if missing:
        raise RuntimeError(
            "Photographs are missing; install the package(s) that ship them: "
            + "; ".join(f"{pkg} (`{PHOTO_PACKAGES.get(pkg, 'apt-get install ' + pkg)}`)"
                        for pkg in missing) + ".")
    return paths


# ----------------------------------------------------- line with outliers (regularization)


def make_line_data(n: int = 50, n_outliers: int = 5, *, slope: float = 2.0,
                   intercept: float = 0.0, noise: float = 0.5, x_range: tuple = (0.5, 9.5),
                   outlier_x: float = 8.0, outlier_offset: float = -10.0,
                   n_test: int = 10, seed: int = 0) -> tuple[Split, Split]:
    """Sample points on the line ``y = slope * x + intercept + noise`` with a group of outliers.

    ``n`` inputs are evenly spaced over ``x_range``; ``n_test`` of them, drawn at random,
    are held out as clean test points (on the line, with noise). Of the training points,
    the ``n_outliers`` closest to ``outlier_x`` are moved by ``outlier_offset``: a group of
    outliers that pulls a fitted line away from the trend.

    Args:
        n: total number of points (train and test).
        n_outliers: how many training points become outliers (0 for none).
        slope: slope of the true line.
        intercept: intercept of the true line.
        noise: standard deviation of the Gaussian noise added to every ``y``.
        x_range: ``(low, high)`` of the inputs.
        outlier_x: where along ``x`` the group of outliers sits.
        outlier_offset: how far (in ``y``) the outliers are moved off the line.
        n_test: how many points are held out for testing.
        seed: seed of the noise and of the split.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, float32 arrays of shape ``(n_points,)``,
        each split sorted by ``x``.
    """
    if n_test < 1 or n - n_test < 2:
        raise ValueError(f"Need at least one test point and two training points, got n={n}, "
                         f"n_test={n_test}.")
    if not 0 <= n_outliers <= n - n_test:
        raise ValueError(f"n_outliers must be between 0 and the number of training points "
                         f"({n - n_test}), got {n_outliers}.")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and cannot be negative, got {noise}.")
    low, high = (float(v) for v in x_range)
    if not low < high:
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range}.")
    rng = np.random.default_rng(seed)
    x = np.linspace(low, high, n)
    y = slope * x + intercept + rng.normal(0.0, noise, n)
    test = np.zeros(n, bool)
    test[rng.choice(n, n_test, replace=False)] = True
    train_idx = np.flatnonzero(~test)
    outliers = train_idx[np.argsort(np.abs(x[train_idx] - outlier_x), kind="stable")[:n_outliers]]
    y[outliers] += outlier_offset
    as32 = lambda a: a.astype(np.float32)  # noqa: E731
    return (as32(x[~test]), as32(y[~test])), (as32(x[test]), as32(y[test]))


def make_line_draws(seeds, **kwargs) -> tuple[Split, Split]:
    """One independent draw of ``make_line_data`` per seed, stacked: one row per draw.

    Args:
        seeds: one seed per draw (the noise, the held-out split and so the outliers differ).
        **kwargs: passed to ``make_line_data`` (everything but ``seed``).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, float32 arrays of shape ``(draws, n_points)``,
        row ``i`` the draw with ``seeds[i]``.
    """
    seeds = [int(s) for s in np.ravel(seeds)]
    if not seeds:
        raise ValueError("Pass at least one seed, one per draw of the data.")
    if "seed" in kwargs:
        raise ValueError("Pass the seeds as the first argument, one per draw, not seed=.")
    draws = [make_line_data(seed=s, **kwargs) for s in seeds]
    stack = lambda part, i: np.stack([d[part][i] for d in draws])  # noqa: E731
    return (stack(0, 0), stack(0, 1)), (stack(1, 0), stack(1, 1))
