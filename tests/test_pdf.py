"""The book as one PDF (`make pdf`), read back with poppler: every chapter's title and the
references are in it, the table of contents lists the chapters, the figures are embedded as
images, the numbered captions and the math came through.

Run by `make pdf` (full scale, after `make book`) and `make pdf-quick` (part of `make test`):
``PDF_FILE=_build/pdf/book.pdf SINGLE_DIR=_build/singlehtml pytest -m browser tests/test_pdf.py``
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.browser import ROOT, chapter_notebooks

pytestmark = pytest.mark.browser


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is missing: `apt-get install poppler-utils` (in apt-test.txt).")
    return path


@pytest.fixture(scope="module")
def pdf() -> Path:
    value = os.environ.get("PDF_FILE")
    if not value:
        pytest.skip("PDF_FILE is not set; run `make pdf` (or `make pdf-quick`).")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"No PDF at {path}: run `make pdf` first.")
    return path


@pytest.fixture(scope="module")
def single_page(pdf) -> str:
    """The single-page HTML the PDF was printed from."""
    folder = Path(os.environ.get("SINGLE_DIR") or pdf.parent.parent / "singlehtml")
    spec = importlib.util.spec_from_file_location("book_pdf", ROOT / "_ext" / "book_pdf.py")
    book_pdf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book_pdf)
    return book_pdf.root_page(folder).read_text()


def _text(pdf: Path, *pages: str) -> str:
    out = subprocess.run([_need("pdftotext"), "-layout", *pages, str(pdf), "-"], check=True,
                         capture_output=True, text=True).stdout
    return re.sub(r"\s+", " ", out)


@pytest.fixture(scope="module")
def text(pdf) -> str:
    return _text(pdf)


def _title(notebook: str) -> str:
    nb = json.loads((ROOT / f"{notebook}.ipynb").read_text())
    return "".join(nb["cells"][0]["source"]).splitlines()[0].lstrip("# ").strip()


def _flat(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def test_pdf_facts(pdf):
    info = subprocess.run([_need("pdfinfo"), str(pdf)], check=True, capture_output=True,
                          text=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])
    print(f"\n{pdf}: {pages} pages, {pdf.stat().st_size / 2**20:.1f} MB")
    assert pages > len(chapter_notebooks())  # at least a page per chapter and a contents page


@pytest.mark.parametrize("notebook", chapter_notebooks())
def test_every_chapter_title_is_in_the_pdf(text, notebook):
    assert _flat(_title(notebook)) in text, _title(notebook)


def test_the_contents_at_the_front_list_every_chapter(pdf):
    front = _text(pdf, "-f", "1", "-l", "3")
    assert "Contents" in front
    missing = [_title(n) for n in chapter_notebooks() if _flat(_title(n)) not in front]
    assert not missing, f"not in the table of contents: {missing}"


def test_the_references_are_in_the_pdf(text, single_page):
    # Every entry the bibliography lists on the page is printed: compare their first words.
    entries = re.findall(r'<div class="citation" id="id\d+"[^>]*>.*?<p>(.*?)</p>', single_page,
                         re.S)
    tail = single_page[single_page.rfind("References"):]
    entries = entries or re.findall(r"<dd><p>(.*?)</p>", tail, re.S)
    assert entries, "the single page has no bibliography"
    assert "References" in text
    missing = []
    for entry in entries:
        plain = _flat(re.sub(r"<[^>]+>", "", entry))
        if plain[:40] not in text:
            missing.append(plain[:80])
    assert not missing, f"bibliography entries not in the PDF: {missing}"


def test_the_figures_are_embedded(pdf, single_page):
    rasters = set(re.findall(r'<img[^>]+src="([^"]+\.(?:png|jpe?g|gif|webp))"', single_page))
    rasters |= set(re.findall(r'<img[^>]+src="(data:image/(?:png|jpeg)[^"]{0,64})', single_page))
    listing = subprocess.run([_need("pdfimages"), "-list", str(pdf)], check=True,
                             capture_output=True, text=True).stdout.splitlines()[2:]
    images = [row for row in listing if row.split()[2:3] == ["image"]]
    assert rasters, "the single page has no figures"
    assert len(images) >= len(rasters), (len(images), len(rasters))


def test_the_numbered_captions_and_the_math_came_through(text, single_page):
    numbers = {_flat(re.sub(r"<[^>]+>", "", n))
               for n in re.findall(r'<span class="caption-number">(.*?)</span>', single_page)}
    missing = sorted(n for n in numbers if n not in text)
    assert not missing, f"captions not in the PDF: {missing}"
    # MathJax typesets the page's math spans; their TeX source must not reach the paper.
    spans = r'<(?:span|div) class="math notranslate nohighlight">(.*?)</(?:span|div)>'
    sources = [_flat(html.unescape(m)) for m in re.findall(spans, single_page, re.S)]
    assert sources, "the single page has no math"
    raw = [s for s in sources if len(s) > 6 and s in text]
    assert not raw, f"math left as TeX in the PDF: {raw[:5]}"
