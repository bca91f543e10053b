"""The two cells every chapter opens with, written by a script rather than by hand.

1. A markdown line right after the chapter's opening cell: how long the chapter takes at full
   and at quick scale on a 2-core machine and its peak memory, quoted from ``make bench``'s
   recorded results (``benchmarks/results/notebooks.json``), with that source.
2. The first code cell: it makes a notebook that left the repository (the site's download
   button, Colab) run by itself. Where ``helpers`` cannot be imported it clones the book's
   repository (URL and branch from ``_config.yml``'s ``repository``, the one place the book
   keeps them) and installs the pinned requirements (``requirements.txt``, the lock) and, on
   Colab, the Debian data packages of ``apt.txt``. Inside the repository it prints one line and
   does nothing. It is removed from the site (``remove-cell``), never from the notebook.

3. In JupyterLab (the book's other two doors) every cell the site removes (``remove-cell``: the
   set-up cell and the hidden assertions) opens collapsed, by the cell metadata JupyterLab
   reads (``jupyter.source_hidden``), so the assertions do not sit between the paragraphs.

Both cells are found by their tags (``run-cost``, ``book-setup``; nbstripout renumbers cell
ids), so running the script again replaces them in place and changes nothing when current:

    .venv/bin/python _ext/chapter_cells.py            # write the cells into every chapter
    .venv/bin/python _ext/chapter_cells.py --check    # exit 1 if a chapter is not current

``tests/test_chapter_cells.py`` fails when a chapter lacks the current cells.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = "benchmarks/results/notebooks.json"
COST_ID, SETUP_ID = "book-run-cost", "book-setup"  # ids when written (nbstripout renumbers)
COST_TAG, SETUP_TAG = "run-cost", "book-setup"     # how the cells are found
COST_TAGS, SETUP_TAGS = [COST_TAG], ["remove-cell", SETUP_TAG]

_SETUP = '''\
# Set-up: lets this notebook run outside the book's repository (a download, Colab).
# Inside the repository, where the book's `helpers` package is importable, it does nothing.
import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

if importlib.util.find_spec("helpers"):
    print("The book's helpers are importable here: nothing to install.")
else:
    url = os.environ.get("BOOK_REPOSITORY",
                         "{url}")
    branch = os.environ.get("BOOK_BRANCH", "{branch}")
    book = Path("{name}").resolve()
    if not book.exists():
        subprocess.run(["git", "clone", "--depth", "1", "--branch", branch, url, str(book)],
                       check=True)
    if "google.colab" in sys.modules:  # Colab: the Debian data packages too
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        for line in (book / "apt.txt").read_text().splitlines():
            if package := line.split("#")[0].strip():
                if subprocess.run(["apt-get", "install", "-y", "-qq", package]).returncode:
                    print(f"{{package}} is not available here; the chapters that need it say so.")
    # The lock: every package at the version the book was built and tested with.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                   cwd=book, check=True)
    sys.path.insert(0, str(book))
    changed = [m for m in ("numpy", "tensorflow", "keras")
               if m in sys.modules and sys.modules[m].__version__ != version(m)]
    if changed:
        raise RuntimeError(f"{{changed}} changed under the running kernel: restart it, run all.")
    print(f"Installed the book from {{url}} ({{branch}}) into {{book}}.")'''


def repository() -> tuple[str, str]:
    """Return the book's repository URL and branch, as `_config.yml` sets them."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def clone_name() -> str:
    """Return the folder the set-up cell clones the book into (the repository's name)."""
    return Path(urlparse(repository()[0]).path).name.removesuffix(".git")


def setup_source() -> str:
    """Return the source of the self-sufficient first code cell."""
    url, branch = repository()
    return _SETUP.format(url=url, branch=branch, name=clone_name())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def _memory(mb: float) -> str:
    return f"{mb:.0f} MB" if mb < 1000 else f"{mb / 1024:.1f} GB"


def source_digest(nb) -> str:
    """Return a digest of a chapter's own cells (kinds and sources, not this script's cells).

    ``make bench`` records it beside each measurement, so the cost line can tell whether the
    recorded run measured the chapter as it is now. Outputs, ids and metadata do not count.
    """
    digest = hashlib.sha256()
    for cell in nb.cells:
        if _managed(cell) is None:
            digest.update(f"{cell.cell_type}\0{cell.source}\0".encode())
    return digest.hexdigest()[:16]


def cost_source(notebook: str, bench: dict, digest: str | None = None) -> str:
    """Return the chapter's "before you run it" line, quoted from `make bench`'s results.

    Args:
        notebook: the chapter's file name, e.g. ``01_l1_l2_regularization.ipynb``.
        bench: the parsed ``benchmarks/results/notebooks.json``.
        digest: the chapter's ``source_digest``; when given and the recorded runs carry
            another one (or none), the line says they measured an earlier version.

    Returns:
        One markdown paragraph.
    """
    runs = {r["scale"]: r for r in bench["notebooks"] if r["notebook"] == notebook}
    if set(runs) != {"full", "quick"}:
        return (f"**Before you run it:** `make bench` has not measured this chapter yet "
                f"(`{BENCH}` has no full- and quick-scale run of `{notebook}`).")
    machine = bench["machine"]
    peak = max(r["peak_rss_mb"] for r in runs.values())
    load = runs["full"].get("load_average")
    # the run's own threads count in the load, up to about one per core: more means other work
    busy = "" if load is None else f" at a load average of {load:.1f}" + (
        " (other work shared the machine, which slows a run)"
        if load > machine["cpus"] + 0.5 else "")
    cpu = f" ({runs['full']['cpu']})" if runs["full"].get("cpu") else ""  # kinds differ a lot
    measured = (f"took {_duration(runs['full']['seconds'])} at full scale and "
                f"{_duration(runs['quick']['seconds'])} at quick scale (`BOOK_QUICK=1`), with a "
                f"peak memory of {_memory(peak)}, on a {machine['cpus']}-core machine{cpu}{busy} "
                f"with "
                f"{(bench.get('caches') or 'cold').split()[0]} caches, as `make bench` recorded "
                f"in `{BENCH}`")
    current = digest is None or all(r.get("source") == digest for r in runs.values())
    if current:
        first = f"**Before you run it:** *Run All* {measured}; yours will differ."
    else:
        first = (f"**Before you run it:** `make bench` has not measured this version of the "
                 f"chapter yet. An earlier version {measured}; this one may differ a lot.")
    return (first + " Downloaded alone or opened in Colab, the notebook's first code cell "
            "fetches the book and installs its pinned packages first (see the README).")


def _cell(kind: str, source: str, cell_id: str, tags: list[str]):
    make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    cell = make(source, id=cell_id)
    cell.metadata["tags"] = list(tags)
    return cell


def update(nb, notebook: str, bench: dict) -> None:
    """Put the current cost line and set-up cell in `nb`, right after its opening cell.

    Args:
        nb: the chapter, as read by nbformat; changed in place.
        notebook: its file name (the key in the benchmark results).
        bench: the parsed benchmark results.
    """
    nb.cells = [c for c in nb.cells if _managed(c) is None]
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise ValueError(f"{notebook}: the first cell must be the markdown cell with the title.")
    cost = cost_source(notebook, bench, source_digest(nb))
    nb.cells[1:1] = [_cell("markdown", cost, COST_ID, COST_TAGS),
                     _cell("code", setup_source(), SETUP_ID, SETUP_TAGS)]
    for cell in nb.cells:
        if _removed(cell):
            cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
    nb.nbformat, nb.nbformat_minor = 4, max(nb.nbformat_minor, 5)  # cell ids need 4.5


def _removed(cell) -> bool:
    """True for a code cell the site removes, which JupyterLab should show collapsed."""
    return cell.cell_type == "code" and "remove-cell" in cell.get("metadata", {}).get("tags", [])


def _managed(cell) -> str | None:
    """Return the tag that marks `cell` as one of this script's, or None."""
    tags = cell.get("metadata", {}).get("tags", [])
    return next((t for t in (COST_TAG, SETUP_TAG) if t in tags), None)


def stale(path: Path, bench: dict) -> list[str]:
    """Return what is not current in the chapter at `path` (empty when it is)."""
    nb = nbformat.read(path, as_version=4)
    found: dict[str, list[tuple[int, object]]] = {COST_TAG: [], SETUP_TAG: []}
    for i, cell in enumerate(nb.cells):
        if tag := _managed(cell):
            found[tag].append((i, cell))
    problems = []
    for tag, kind, source, tags, index in [
            (COST_TAG, "markdown", cost_source(path.name, bench, source_digest(nb)), COST_TAGS, 1),
            (SETUP_TAG, "code", setup_source(), SETUP_TAGS, 2)]:
        if len(found[tag]) != 1:
            problems.append(f"{len(found[tag])} cells tagged {tag!r}, not 1")
            continue
        i, cell = found[tag][0]
        if i != index:
            problems.append(f"the {tag!r} cell is cell {i}, not {index}")
        if cell.cell_type != kind or cell.source != source:
            problems.append(f"the {tag!r} cell is not the current one")
        if cell.metadata.get("tags") != tags:
            problems.append(f"the {tag!r} cell has tags {cell.metadata.get('tags')}, not {tags}")
    open_in_lab = [i for i, c in enumerate(nb.cells)
                   if _removed(c) and not c.metadata.get("jupyter", {}).get("source_hidden")]
    if open_in_lab:
        problems.append(f"hidden cells {open_in_lab} are not collapsed in JupyterLab")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and _managed(code[0]) != SETUP_TAG:
        problems.append("the set-up cell is not the first code cell")
    return problems


def chapters() -> list[Path]:
    """The chapter notebooks: ``NN_*.ipynb`` in file-name order, then the ``appendix_*.ipynb``."""
    folder = ROOT / "chapters"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb")) + sorted(folder.glob("appendix_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="chapters to update (default: every chapter and appendix)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if stale")
    args = parser.parse_args(argv)
    bench = json.loads((ROOT / BENCH).read_text())
    paths = args.notebooks or chapters()
    bad = 0
    for path in paths:
        problems = stale(path, bench)
        if args.check:
            bad += bool(problems)
            print(f"{path}: {'; '.join(problems) or 'current'}")
        elif problems:
            nb = nbformat.read(path, as_version=4)
            update(nb, path.name, bench)
            nbformat.validate(nb)
            nbformat.write(nb, path)
            print(f"{path}: updated")
        else:
            print(f"{path}: already current")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
