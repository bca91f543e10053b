"""Sphinx extension: serve MathJax from the site itself, so pages need no CDN.

MathJax 3 comes from the PyPI package ``django-static-mathjax`` (pinned in requirements.txt);
its ``es5`` build is copied to ``_static/mathjax`` and ``mathjax_path`` points there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx


def _mathjax_es5() -> Path:
    try:
        import mathjax  # installed by django-static-mathjax
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "The offline MathJax copy is missing: `pip install -r requirements.txt` "
            "(it provides django-static-mathjax)."
        ) from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise RuntimeError(f"No tex-chtml.js in {es5}; reinstall django-static-mathjax.")
    return es5


def _copy_mathjax(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(_mathjax_es5(), target, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
