import importlib

import pytest

from helpers import config


def test_quick_follows_environment(monkeypatch):
    monkeypatch.setenv("BOOK_QUICK", "1")
    assert importlib.reload(config).QUICK is True
    assert config.scale(full=100, quick=3) == 3
    monkeypatch.setenv("BOOK_QUICK", "0")
    assert importlib.reload(config).QUICK is False
    assert config.scale(full=100, quick=3) == 100
    monkeypatch.delenv("BOOK_QUICK")
    assert importlib.reload(config).QUICK is False


def test_unreadable_quick_value_is_rejected(monkeypatch):
    monkeypatch.setenv("BOOK_QUICK", "fast")
    with pytest.raises(ValueError, match="BOOK_QUICK"):
        config.is_quick()


def test_seeds_are_stable_and_extendable():
    assert config.seeds(3) == (0, 1, 2)
    assert config.seeds(7) == (0, 1, 2, 3, 4, 5, 6)
    with pytest.raises(ValueError, match="at least one seed"):
        config.seeds(0)


def test_scale_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="positive sizes"):
        config.scale(full=0, quick=1)


def test_cache_dir_is_per_scale_and_rejects_paths(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path)
    path = config.cache_dir("chapter")
    assert path.is_dir() and path.parent.name in {"quick", "full"}
    with pytest.raises(ValueError, match="plain folder names"):
        config.cache_dir("../escape")


def test_cache_folder_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert importlib.reload(config).cache_dir("c").parent.parent == tmp_path / "elsewhere"
    monkeypatch.delenv("BOOK_CACHE_DIR")
    assert importlib.reload(config).CACHE_DIR == config.DATA_DIR / "cache"


def test_is_live_is_false_in_builds_and_at_quick_scale(monkeypatch):
    monkeypatch.setenv("BOOK_QUICK", "0")
    monkeypatch.setenv("BOOK_BUILD", "1")
    assert not config.is_live()
    monkeypatch.setenv("BOOK_BUILD", "0")
    assert config.is_live()
    monkeypatch.setenv("BOOK_QUICK", "1")
    assert not config.is_live()


def test_cache_key_changes_with_settings_data_and_dtype():
    import numpy as np

    x = np.arange(6, dtype=np.float32)
    key = config.cache_key({"lr": 0.1}, x)
    assert len(key) == 20 and key == config.cache_key({"lr": 0.1}, x.copy())
    assert config.cache_key({"lr": 0.2}, x) != key
    assert config.cache_key({"lr": 0.1}, x + 1) != key
    assert config.cache_key({"lr": 0.1}, x.astype(np.float64)) != key
    assert config.cache_key({"lr": 0.1}, x.reshape(2, 3)) != key
    with pytest.raises(ValueError, match="JSON-serialisable"):
        config.cache_key({"x": object()})
    with pytest.raises(ValueError, match="dict of settings"):
        config.cache_key(["lr"])


def test_lean_malloc_is_accepted_by_glibc_and_skipped_elsewhere(monkeypatch):
    import ctypes
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert config.lean_malloc() is True
    monkeypatch.setattr(ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
    assert config.lean_malloc() is False  # no C library found: nothing changes, no error
