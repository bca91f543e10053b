"""Run scale, seeds and paths shared by every chapter.

The book runs at *full* scale by default and at *quick* scale when the environment
variable ``BOOK_QUICK=1`` is set. Quick scale only shrinks sizes; the code path is the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np

ROOT: Path = Path(__file__).resolve().parent.parent
"""The repository root."""

DATA_DIR: Path = ROOT / "data"
"""Where data sources are described and generated caches are written."""

CACHE_DIR: Path = Path(os.environ.get("BOOK_CACHE_DIR") or DATA_DIR / "cache")
"""Generated caches (trained weights, prepared crops); ignored by git. The environment
variable ``BOOK_CACHE_DIR`` moves them elsewhere (``make bench`` uses an empty one)."""

SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""The seeds every repeated experiment draws from, in order."""


def is_quick() -> bool:
    """Return True when the environment asks for the quick scale (``BOOK_QUICK=1``)."""
    value = os.environ.get("BOOK_QUICK", "0").strip().lower()
    if value not in {"", "0", "1", "false", "true", "no", "yes"}:
        raise ValueError(
            f"BOOK_QUICK={value!r} is not understood; set it to 1 for the quick scale "
            "or 0 (or leave it unset) for the full scale."
        )
    return value in {"1", "true", "yes"}


QUICK: bool = is_quick()
"""True at quick scale (``BOOK_QUICK=1``), read once when the module is imported."""


def scale(full: int, quick: int) -> int:
    """Return ``quick`` at quick scale and ``full`` otherwise.

    Args:
        full: the size used by the published book.
        quick: the smaller size used by CI's notebook run.

    Returns:
        The size for the current scale.
    """
    if full < 1 or quick < 1:
        raise ValueError(f"scale() needs positive sizes, got full={full}, quick={quick}.")
    return quick if QUICK else full


def seeds(n: int) -> tuple[int, ...]:
    """Return the first ``n`` of the book's seeds (more are generated if needed)."""
    if n < 1:
        raise ValueError(f"Ask for at least one seed, got n={n}.")
    return tuple(SEEDS) + tuple(range(len(SEEDS), n)) if n > len(SEEDS) else SEEDS[:n]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (via Keras) in one call."""
    random.seed(seed)
    np.random.seed(seed)
    import keras  # imported here so that importing config stays light

    keras.utils.set_random_seed(seed)


def is_live() -> bool:
    """Return True in a reader's live session, where progress bars belong.

    False while the book is being built (``BOOK_BUILD=1``, set by ``make book``) and at quick
    scale (CI's notebook run), so that neither writes progress lines into pages or logs.
    """
    return os.environ.get("BOOK_BUILD", "0") != "1" and not is_quick()


CACHE_VERSION: int = 3
"""Part of every cache key: bump it when training code changes what a cached result holds."""


def cache_key(settings: dict, *arrays: np.ndarray) -> str:
    """Return the one cache key of the book: a hash of settings, arrays and ``CACHE_VERSION``.

    Args:
        settings: everything (JSON-serialisable) that changes the cached result.
        *arrays: data the result depends on (their bytes, dtype and shape are hashed).

    Returns:
        A 20-character hexadecimal key, stable across sessions and machines.
    """
    if not isinstance(settings, dict):
        raise ValueError(f"cache_key needs a dict of settings, got {type(settings).__name__}.")
    try:
        text = json.dumps({"settings": settings, "version": CACHE_VERSION}, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"cache_key settings must be JSON-serialisable (plain numbers, "
                         f"strings, lists, dicts): {err}") from err
    digest = hashlib.sha256(text.encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:20]


def cache_dir(name: str) -> Path:
    """Return (and create) a per-chapter cache folder under ``data/cache``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"Cache names are plain folder names, got {name!r}.")
    path = CACHE_DIR / ("quick" if QUICK else "full") / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name, from the ``model name`` line of ``cpuinfo`` (Linux).

    Args:
        cpuinfo: the file to read (Linux's ``/proc/cpuinfo``).

    Returns:
        The model name; the platform's own answer (``platform.processor()``, possibly "")
        where the file is missing or has no such line.
    """
    import platform

    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# glibc's mallopt parameters (malloc.h); values in bytes.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
LEAN_MALLOC = {_M_ARENA_MAX: 2, _M_MMAP_THRESHOLD: 128 * 1024, _M_TRIM_THRESHOLD: 128 * 1024}


def lean_malloc() -> bool:
    """Make glibc's allocator hand freed memory back to the system sooner.

    A long notebook trains several networks in one kernel; TensorFlow's many threads each get
    a malloc arena, and glibc keeps freed blocks in them for reuse, so the kernel's memory only
    grows (chapter 4 peaked above 2 GB, Binder's limit). Fewer arenas, large blocks always
    mapped on their own (returned when freed) and a low trim threshold keep it lower, at the
    cost of a few more system calls. Called once when ``helpers`` is imported; it affects
    allocations made afterwards. Does nothing where the C library is not glibc (macOS,
    Windows, musl).

    Returns:
        True when glibc accepted every setting.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        getattr(libc, "gnu_get_libc_version")  # noqa: B009  (raises AttributeError off glibc)
    except (OSError, AttributeError, TypeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in LEAN_MALLOC.items())
