"""Binder's inputs, checked as far as they can be offline: repo2docker reads `apt.txt` on
Ubuntu 24.04 (noble), where one unknown name stops the whole build, so every name there
carries its evidence (README, "Binder"); `runtime.txt` names the Python the lock was made for."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _apt_lines() -> list[tuple[str, str]]:
    lines = []
    for raw in (ROOT / "apt.txt").read_text().splitlines():
        name, _, note = raw.partition("#")  # what repo2docker keeps is the part before '#'
        if name.strip():
            lines.append((name.strip(), note.strip()))
    return lines


def test_every_apt_name_is_a_package_name_with_its_noble_evidence():
    lines = _apt_lines()
    assert lines, "apt.txt lists no package"
    for name, note in lines:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name), f"not one Debian package name: {name!r}"
        assert "noble" in note, f"apt.txt: {name} has no note on Ubuntu noble (see README, Binder)"


def test_the_readme_names_every_package_without_noble_evidence():
    readme = (ROOT / "README.md").read_text()
    unproven = [name for name, note in _apt_lines() if note.startswith("no noble record")]
    missing = [name for name in unproven if f"`{name}`" not in readme]
    assert not missing, f"README's Binder section must name {missing}"


def test_runtime_is_the_python_of_the_lock():
    runtime = (ROOT / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+", runtime), runtime
    assert f"--python-version {runtime.removeprefix('python-')}" in (
        ROOT / "requirements.txt").read_text()
