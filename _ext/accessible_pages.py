"""Sphinx extension: fixes, in the written pages, what axe-core and LinkChecker find in markup
the book does not write itself (tests/test_site.py runs both on every page).

- The bibliography: docutils writes ``<div role="list" class="citation-list">`` whose entries
  carry ``role="doc-biblioentry"``, a role ARIA deprecated, so the list has no list items
  (axe: ``aria-required-children``, critical; ``aria-deprecated-role``). Entries become
  ``role="listitem"``.
- matplotlib's JavaScript animation (``to_jshtml``) has a frame slider without a label (axe:
  ``label``, critical). It gets ``aria-label="Animation frame"``. Its repetition-mode form
  has ``action="#n"``, a link to an anchor no page has (LinkChecker: anchor not found); the
  form is never submitted, so the attribute is dropped.

The pages are rewritten once, after the build (``build-finished``), for every HTML builder.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

_BIBLIOENTRY = re.compile(r'(<div\b[^>]*\bclass="citation"[^>]*\brole=)"doc-biblioentry"')
_SLIDER = re.compile(r'<input\b(?![^>]*\baria-label=)([^>]*\bid="_anim_slider[^"]*")')
_FORM_ACTION = re.compile(r'(<form\b[^>]*?)\s+action="#n"(?=[^>]*\bname="_anim_loop_select)')


def fix_page(html: str) -> str:
    """Return `html` with the bibliography's list items, the animation sliders' labels and
    without the animation forms' dead ``#n`` action.

    Args:
        html: one written page.

    Returns:
        The page, changed only where one of the two patterns occurs.
    """
    html = _BIBLIOENTRY.sub(r'\1"listitem"', html)
    html = _SLIDER.sub(r'<input aria-label="Animation frame"\1', html)
    return _FORM_ACTION.sub(r"\1", html)


def _fix_pages(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = fix_page(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
