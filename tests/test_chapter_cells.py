"""Every chapter opens with the cells `_ext/chapter_cells.py` writes (its run-cost line and its
self-sufficient set-up cell), a chapter downloaded alone runs by itself, and every code cell the
page shows fits a screen.

The offline run: the quickest chapter of `make bench` is copied alone into an empty folder and
executed at quick scale by a kernel whose environment lacks the book's package, with
``BOOK_REPOSITORY`` pointing at a local clone. Trade-off, to keep it cheap and offline: that
environment is a fresh venv that *sees* the book's installed packages (a ``.pth`` line adds
`.venv`'s site-packages, whose own ``.pth`` files, among them the editable `helpers`, are not
run) and pip runs with ``--no-index``, so the set-up cell's `pip install -r requirements.txt`
finds every pinned package already satisfied and only installs `helpers` from the clone. It
checks the cell's logic (detect, clone, install, import) end to end; downloading the lock from
the registry is not exercised here (README gives the measured fresh install time).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("chapter_cells", ROOT / "_ext" / "chapter_cells.py")
cells = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cells)
BENCH = json.loads((ROOT / cells.BENCH).read_text())


@pytest.mark.parametrize("path", cells.chapters(), ids=lambda p: p.stem)
def test_chapter_opens_with_the_current_cells(path):
    problems = cells.stale(path, BENCH)
    assert not problems, (f"{path.name}: {'; '.join(problems)}. "
                          "Run `.venv/bin/python _ext/chapter_cells.py`.")


def _chapter(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A title\n\nThe question."),
                *[nbformat.v4.new_code_cell(s) for s in sources]]
    return nb


def test_update_inserts_once_and_keeps_the_chapter(tmp_path):
    path = tmp_path / "01_l1_l2_regularization.ipynb"
    nbformat.write(_chapter("x = 1", "print(x)"), path)
    assert cells.stale(path, BENCH)
    for _ in range(2):  # the second run must change nothing
        nb = nbformat.read(path, as_version=4)
        cells.update(nb, path.name, BENCH)
        nbformat.write(nb, path)
        first = path.read_text()
    assert path.read_text() == first
    assert cells.stale(path, BENCH) == []
    nb = nbformat.read(path, as_version=4)
    assert [c.source for c in nb.cells][3:] == ["x = 1", "print(x)"]
    assert nb.cells[0].source.startswith("# A title")


def test_stale_notices_an_edited_or_moved_cell(tmp_path):
    path = tmp_path / "02_activation_functions.ipynb"
    nb = _chapter("import helpers")
    cells.update(nb, path.name, BENCH)
    nb.cells[2].source += "\nprint('edited')"
    nb.cells.insert(1, nbformat.v4.new_code_cell("import os"))
    nbformat.write(nb, path)
    problems = " ".join(cells.stale(path, BENCH))
    assert "not the current one" in problems and "not the first code cell" in problems


def test_hidden_cells_open_collapsed_in_jupyterlab_and_visible_ones_do_not(tmp_path):
    path = tmp_path / "03_rrelu_evaluation.ipynb"
    nb = _chapter("shown = 1", "assert shown == 1")
    nb.cells[2].metadata["tags"] = ["remove-cell"]
    cells.update(nb, path.name, BENCH)
    hidden = [c.metadata.get("jupyter", {}).get("source_hidden", False) for c in nb.cells
              if c.cell_type == "code"]
    assert hidden == [True, False, True]  # the set-up cell, the shown cell, the assertion
    nb.cells[-1].metadata["jupyter"]["source_hidden"] = False
    nbformat.write(nb, path)
    assert any("not collapsed in JupyterLab" in p for p in cells.stale(path, BENCH))


def test_cells_are_found_by_tag_after_nbstripout_renumbers_the_ids(tmp_path):
    path = tmp_path / "03_rrelu_evaluation.ipynb"
    nb = _chapter("import helpers")
    cells.update(nb, path.name, BENCH)
    for i, cell in enumerate(nb.cells):
        cell.id = str(i)  # what nbstripout does
    nbformat.write(nb, path)
    assert cells.stale(path, BENCH) == []
    cells.update(nb, path.name, BENCH)
    assert len(nb.cells) == 4


def test_cost_line_quotes_make_bench_with_its_source():
    bench = {"machine": {"cpus": 2}, "caches": "cold", "notebooks": [
        {"notebook": "07_x.ipynb", "scale": "full", "seconds": 125.0, "peak_rss_mb": 1740.0},
        {"notebook": "07_x.ipynb", "scale": "quick", "seconds": 24.6, "peak_rss_mb": 900.0}]}
    line = cells.cost_source("07_x.ipynb", bench)
    for part in ("2.1 min at full", "25 s at quick", "1.7 GB", "2-core", cells.BENCH):
        assert part in line, (part, line)
    assert "has not measured" in cells.cost_source("08_y.ipynb", bench)
    assert "load average" not in line  # a record without the load says nothing of it
    bench["notebooks"][0]["load_average"] = 4.96
    assert "2-core machine at a load average of 5.0 (other work shared" in cells.cost_source(
        "07_x.ipynb", bench)
    bench["notebooks"][0]["load_average"] = 0.7
    line = cells.cost_source("07_x.ipynb", bench)
    assert "at a load average of 0.7 with" in line and "other work" not in line
    bench["notebooks"][0]["load_average"] = 2.3  # a run on both cores counts about 2 itself
    assert "other work" not in cells.cost_source("07_x.ipynb", bench)
    bench["machine"]["cpus"] = 1  # ... but on one core 2.3 means something else ran too
    assert "other work shared" in cells.cost_source("07_x.ipynb", bench)
    assert "machine (" not in cells.cost_source("07_x.ipynb", bench)  # no CPU recorded, none named
    bench["notebooks"][0]["cpu"] = "AMD EPYC"  # the full-scale run's CPU is named beside its time
    assert "1-core machine (AMD EPYC) at a load average" in cells.cost_source("07_x.ipynb", bench)


def test_setup_cell_takes_the_repository_from_config_yml():
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    source = cells.setup_source()
    assert f'"{repo["url"].rstrip("/")}"' in source and f'"{repo["branch"]}"' in source
    compile(source, "setup cell", "exec")


def test_setup_cell_does_nothing_inside_the_repository(tmp_path):
    # This interpreter imports helpers (the book's venv): the cell prints one line, writes nothing.
    run = subprocess.run([sys.executable, "-c", cells.setup_source()], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines() == ["The book's helpers are importable here: "
                                               "nothing to install."]
    assert list(tmp_path.iterdir()) == []


def _quickest_chapter() -> Path:
    quick = {r["notebook"]: r["seconds"] for r in BENCH["notebooks"] if r["scale"] == "quick"}
    present = [p for p in cells.chapters() if p.name in quick]
    if not present:
        pytest.skip(f"{cells.BENCH} has no quick-scale run of any chapter")
    return min(present, key=lambda p: quick[p.name])


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.slow
def test_a_chapter_downloaded_alone_runs_at_quick_scale(tmp_path):
    chapter = _quickest_chapter()
    origin = tmp_path / "origin"  # stands in for the repository URL of _config.yml
    _git("clone", "--quiet", str(ROOT), str(origin), cwd=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                          text=True).stdout.strip()
    (Path(site) / "book-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / chapter.name).write_bytes(chapter.read_bytes())
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "BOOK_CACHE_DIR", "BOOK_BUILD", "VIRTUAL_ENV"}}
    env.update(BOOK_QUICK="1", BOOK_REPOSITORY=str(origin),
               BOOK_BRANCH=_git("rev-parse", "--abbrev-ref", "HEAD", cwd=origin),
               PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", TF_CPP_MIN_LOG_LEVEL="2")
    lacks = subprocess.run([python, "-c", "import importlib.util as u; "
                            "print(u.find_spec('helpers') is None, u.find_spec('keras') is None)"],
                           cwd=reader, env=env, capture_output=True, text=True, check=True)
    assert lacks.stdout.split() == ["True", "False"], "the test kernel must lack only the book"

    run = subprocess.run([python, "-m", "nbconvert", "--to", "notebook", "--execute",
                          "--ExecutePreprocessor.timeout=900", "--output", "executed.ipynb",
                          chapter.name], cwd=reader, env=env, capture_output=True, text=True,
                         timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    executed = nbformat.read(reader / "executed.ipynb", as_version=4)
    setup = next(c for c in executed.cells if cells.SETUP_TAG in c.metadata.get("tags", []))
    said = "".join(o.get("text", "") for o in setup.outputs)
    assert f"Installed the book from {origin}" in said, said
    assert (reader / cells.clone_name() / "helpers" / "__init__.py").is_file()
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors[:1]


def test_cost_line_says_when_make_bench_measured_an_earlier_version(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                         nbformat.v4.new_code_cell("x = 1")])
    digest = cells.source_digest(nb)
    rows = [{"notebook": "07_x.ipynb", "scale": s, "seconds": 30.0, "peak_rss_mb": 500.0,
             "source": digest} for s in ("full", "quick")]
    bench = {"machine": {"cpus": 2}, "caches": "cold", "notebooks": rows}
    assert "has not measured this version" not in cells.cost_source("07_x.ipynb", bench, digest)
    cells.update(nb, "07_x.ipynb", bench)  # the script's own cells do not change the digest
    assert cells.source_digest(nb) == digest
    nb.cells[-1].source = "x = 2"
    edited = cells.source_digest(nb)
    assert edited != digest
    line = cells.cost_source("07_x.ipynb", bench, edited)
    assert "has not measured this version" in line and "30 s at full" in line


def test_bench_merges_a_partial_run_into_the_recorded_one():
    spec = importlib.util.spec_from_file_location("bench_nb", ROOT / "benchmarks/notebooks.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    old = [{"notebook": "01.ipynb", "scale": "full", "seconds": 1.0},
           {"notebook": "02.ipynb", "scale": "full", "seconds": 2.0}]
    merged = bench.merge_rows(old, [{"notebook": "02.ipynb", "scale": "full", "seconds": 9.0}])
    assert [(r["notebook"], r["seconds"]) for r in merged] == [("01.ipynb", 1.0), ("02.ipynb", 9.0)]


@pytest.mark.parametrize("path", cells.chapters(), ids=lambda p: p.name)
def test_every_worked_solution_is_collapsed_with_its_output(path):
    # A solution's prose sits in a dropdown; the code cell after it (which computes the solution)
    # is tagged hide-cell, so its output, the answer, is collapsed too (hide-input showed it).
    nb = nbformat.read(path, as_version=4)
    solutions = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and "{admonition} Solution" in c.source]
    assert solutions, f"{path.name}: no worked solutions"
    for i in solutions:
        following = nb.cells[i + 1]
        assert following.cell_type == "code", (path.name, i)
        assert "hide-cell" in following.metadata.get("tags", []), (path.name, i + 1)


VISIBLE_CELL_LINES = 40  # a code cell the page shows fits a screen
HIDDEN_SOURCE = {"remove-cell", "remove-input"}  # hide-cell and hide-input only collapse it


def long_visible_cells(nb, limit: int = VISIBLE_CELL_LINES) -> list[tuple[int, int]]:
    """Return (cell index, lines) of each code cell whose source the page shows, over `limit`."""
    return [(i, n) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and not HIDDEN_SOURCE & set(c.metadata.get("tags", []))
            and (n := len(c.source.splitlines())) > limit]


def test_long_visible_cells_counts_only_what_the_page_shows():
    long = "\n".join(f"x{i} = {i}" for i in range(VISIBLE_CELL_LINES + 1))
    nb = _chapter("x = 1", long, long, long, long, "\n".join(["y = 2"] * VISIBLE_CELL_LINES))
    for cell, tag in zip(nb.cells[3:6], ("remove-cell", "remove-input", "hide-cell")):
        cell.metadata["tags"] = [tag]
    assert long_visible_cells(nb) == [(2, VISIBLE_CELL_LINES + 1), (5, VISIBLE_CELL_LINES + 1)]


@pytest.mark.parametrize("path", cells.chapters(), ids=lambda p: p.stem)
def test_every_visible_code_cell_fits_a_screen(path):
    # Split a longer cell at a natural boundary, or move plotting mechanics into helpers.
    long = long_visible_cells(nbformat.read(path, as_version=4))
    assert not long, (f"{path.name}: code cells over {VISIBLE_CELL_LINES} lines: "
                      + ", ".join(f"cell {i} ({n} lines)" for i, n in long))
