"""The whole book as one PDF, printed by the test browser (no LaTeX, nothing downloaded).

Sphinx's single-page HTML build of the book (``jupyter-book build --builder singlehtml``) is
served on 127.0.0.1 and opened in Debian's Chromium through Playwright; once MathJax has
typeset every formula, a table of contents (built from the chapters' headings, linked) is put
after the title, collapsed solutions and hidden cells are opened (paper cannot be clicked),
and the page is printed with ``page.pdf`` (A4, page numbers, PDF bookmarks and tags).

    .venv/bin/python _ext/book_pdf.py _build/singlehtml _build/pdf/book.pdf

``make pdf`` does this after building the single page; ``tests/test_pdf.py`` checks the result.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import chromium, serve  # noqa: E402  (the repository's browser set-up)

# Paper has no sidebars, buttons or search box; sections start on a new page.
PRINT_CSS = """
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article, .bd-footer,
.bd-footer-article, .prev-next-area, .toggle-hidden, button.toggle-button, .headerlink,
.skip-link, #pst-back-to-top, #jb-print-toc { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-page-width { max-width: 100% !important; }
body { font-size: 10.5pt; }
section.pdf-chapter { break-before: page; }
#pdf-toc { break-after: page; }
#pdf-toc ol { list-style: none; padding-left: 1.2em; }
#pdf-toc > ol { padding-left: 0; }
#pdf-toc a { text-decoration: none; color: inherit; }
figure, img, table, .cell_input, .cell_output, div.highlight { break-inside: avoid; }
pre { white-space: pre-wrap; word-break: break-word; }
"""

# In the single page every included document (each chapter, the references) is a section right
# after a `<span id="document-...">` marker; its own sections are listed under it.
TOC_JS = """() => {
  const main = document.querySelector('main') || document.body;
  const name = s => {
    const h = s.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4, :scope > h5');
    return h ? h.textContent.replace(/#\\s*$/, '').trim() : '';
  };
  const item = s => {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = '#' + s.id;
    a.textContent = name(s);
    li.appendChild(a);
    return li;
  };
  // The root page inlines the chapters where its toctree stands; on paper its own text comes
  // first, then the chapters and the references.
  const wrap = main.querySelector('.toctree-wrapper');
  if (wrap && wrap.closest('section')) {
    let top = wrap.closest('section');
    while (top.parentElement.closest('section')) top = top.parentElement.closest('section');
    top.after(wrap);
  }
  const docs = [...main.querySelectorAll('span[id^="document-"]')]
    .map(m => m.nextElementSibling).filter(e => e && e.tagName === 'SECTION');
  const nav = document.createElement('nav');
  nav.id = 'pdf-toc';
  nav.setAttribute('aria-label', 'Table of contents');
  nav.innerHTML = '<h2>Contents</h2>';
  const top = document.createElement('ol');
  nav.appendChild(top);
  docs.forEach(doc => {
    doc.classList.add('pdf-chapter');
    const li = item(doc), sub = document.createElement('ol');
    doc.querySelectorAll(':scope > section').forEach(s => sub.appendChild(item(s)));
    li.appendChild(sub);
    top.appendChild(li);
  });
  // After the theme's print title (whose own one-level contents is hidden), else the first h1.
  const title = document.getElementById('jb-print-docs-body') || main.querySelector('section h1');
  (title || main.firstElementChild).insertAdjacentElement('afterend', nav);
  return docs.length;
}"""

OPEN_HIDDEN_JS = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  document.querySelectorAll(
    '.tag_hide-input .cell_input, .tag_hide-cell, .tag_hide-output .cell_output')
    .forEach(e => { e.style.display = 'block'; });
  document.querySelectorAll('.dropdown .admonition-title, .dropdown')
    .forEach(e => e.classList.remove('toggle-hidden'));
}"""

WAIT_FOR_MATH_JS = """async () => {
  if (!window.MathJax || !MathJax.startup) return 0;
  await MathJax.startup.promise;
  return document.querySelectorAll('mjx-container').length;
}"""


def root_page(site: Path) -> Path:
    """Return the single page of the build in `site`, following `index.html`'s redirect."""
    index = site / "index.html"
    if not index.is_file():
        raise ValueError(f"No index.html in {site}: build the single page first "
                         "(`jupyter-book build --builder singlehtml .`, or `make pdf`).")
    redirect = re.search(r'http-equiv="refresh"[^>]*url=([^"\']+)', index.read_text(), re.I)
    return site / redirect[1] if redirect else index


def print_book(site: Path, pdf: Path) -> dict:
    """Print the single-page book in `site` to `pdf`.

    Args:
        site: the folder of the singlehtml build (holds ``index.html``).
        pdf: the PDF to write; its folder is created.

    Returns:
        What was printed: the number of chapters in the table of contents and of formulas.
    """
    root = root_page(site)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, serve(site) as url, chromium(Path(tmp)) as browser:
        page = browser.new_page()
        page.goto(url + root.relative_to(site).as_posix(), wait_until="networkidle")
        formulas = page.evaluate(WAIT_FOR_MATH_JS)
        raw = page.evaluate("() => [...document.querySelectorAll('main .math')]"
                            ".filter(e => !e.querySelector('mjx-container')).length")
        if raw:
            raise RuntimeError(f"{raw} formulas were not typeset by MathJax; the PDF would "
                               "show their TeX. Is _static/mathjax in the build?")
        page.add_style_tag(content=PRINT_CSS)
        page.evaluate(OPEN_HIDDEN_JS)
        chapters = page.evaluate(TOC_JS)
        page.evaluate("() => Promise.all([...document.images].map(i => i.decode().catch(() => 0)))")
        page.emulate_media(media="print")
        page.pdf(path=str(pdf), format="A4", print_background=True, outline=True, tagged=True,
                 margin={"top": "18mm", "bottom": "18mm", "left": "16mm", "right": "16mm"},
                 display_header_footer=True, header_template="<span></span>",
                 footer_template='<div style="font-size:8pt;width:100%;text-align:center">'
                                 '<span class="pageNumber"></span> / '
                                 '<span class="totalPages"></span></div>')
        page.close()
    return {"chapters": chapters, "formulas": formulas}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the singlehtml build folder")
    parser.add_argument("pdf", type=Path, help="the PDF to write")
    args = parser.parse_args(argv)
    info = print_book(args.site, args.pdf)
    size = args.pdf.stat().st_size / 2**20
    print(f"Wrote {args.pdf} ({size:.1f} MB): {info['chapters']} top-level sections in the "
          f"table of contents, {info['formulas']} formulas typeset.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
