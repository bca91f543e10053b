"""Sphinx extension: pages that work offline and load cleanly.

- MathJax is served from the site itself: MathJax 3 comes from the PyPI package
  ``django-static-mathjax`` (pinned in requirements.txt); its ``es5`` build is copied to
  ``_static/mathjax`` and ``mathjax_path`` points there.
- Inline scripts registered twice (sphinx-thebe's configuration under Jupyter Book 1.0.4,
  which makes the browser report "Identifier 'THEBE_JS_URL' has already been declared")
  are written once.
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


def _drop_duplicate_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # Inline scripts come with filename None or '' depending on who registered them.
        filename = getattr(script, "filename", script) or ""
        key = (str(filename), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _copy_mathjax)
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
