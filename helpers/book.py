"""Publishing glue for the notebooks: values into the text, tables into the page.

* :func:`glue` -- ``myst_nb.glue`` with ``display=False`` that takes NumPy scalars (as the
  builtin number they hold), formats on request, and still runs where ``myst_nb`` is absent.
* :func:`markdown_table` -- a Markdown (MyST) table from rows, pipes escaped.
* :func:`show_table` -- the same table displayed in the notebook (``IPython.display``).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

_ALIGN: dict[str, str] = {"l": ":---", "c": ":---:", "r": "---:", "-": "---"}
"""The separator cell of each alignment code: left, centre, right, or the default."""


def glue(name: str, value: Any, fmt: str | None = None) -> Any:
    """Store a value for the book's text (``{glue:text}`name``) without displaying it.

    NumPy scalars and 0-d arrays become the builtin ``bool``, ``int``, ``float`` or ``str``
    they hold (``np.float64(0.5)`` would otherwise be stored as the text
    ``"np.float64(0.5)"``); ``float16``/``float32`` become the shortest float that prints as
    NumPy prints them (``np.float32(0.1)`` gives ``0.1``). Other objects (strings, figures)
    pass through unchanged.

    Args:
        name: the name the text refers to; no spaces, colons or backticks.
        value: a number, string, NumPy scalar or any object ``myst_nb.glue`` accepts.
        fmt: an optional format spec, e.g. ``".2f"`` or ``","``; the value is then glued as
            the formatted string.

    Returns:
        What was glued (the builtin value, or the formatted string); outside a Jupyter Book
        build (no ``myst_nb``) the same value is returned and nothing is stored. A notebook
        cell that ends with this call echoes it: assign it or end the line with ``;``.
    """
    if not isinstance(name, str) or not name or any(c.isspace() or c in ":`" for c in name):
        raise ValueError(f"glue needs a name without spaces, colons or backticks (the text "
                         f"refers to it as {{glue:text}}`name:format`), got {name!r}.")
    value = _builtin(value)
    if fmt is not None:
        if not isinstance(fmt, str):
            raise ValueError(f"fmt must be a format spec string such as '.2f', got {fmt!r}.")
        try:
            value = format(value, fmt)
        except (TypeError, ValueError) as error:
            raise ValueError(f"glue cannot format {name!r} = {value!r} with {fmt!r} ({error}); "
                             "use a spec that fits the value's type, e.g. '.3g' for a number."
                             ) from error
    try:
        myst_nb = importlib.import_module("myst_nb")
    except ImportError:
        return value
    myst_nb.glue(name, value, display=False)
    return value


def markdown_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
                   align: Sequence[str] | None = None) -> str:
    """Return a Markdown (MyST) table.

    Args:
        rows: the table body, one sequence of cells per row, as many cells as ``headers``.
            Cells are written with ``str`` (NumPy scalars as the builtin value); ``|`` is
            escaped and line breaks become spaces, so a cell never breaks the table.
        headers: the column titles.
        align: one code per column: ``"l"`` (left), ``"c"`` (centre), ``"r"`` (right) or
            ``"-"`` (the renderer's default), e.g. ``"lrr"``; None leaves every column default.

    Returns:
        The table: a header line, a separator line and one line per row.
    """
    headers = list(headers)
    if not headers:
        raise ValueError("markdown_table needs at least one header (the column titles).")
    width = len(headers)
    codes = ["-"] * width if align is None else list(align)
    if len(codes) != width or any(code not in _ALIGN for code in codes):
        raise ValueError(f"align needs one of 'l', 'c', 'r' or '-' for each of the {width} "
                         f"columns (e.g. {'l' + 'r' * (width - 1)!r}), got {align!r}.")
    lines = [_row(headers), "|" + "|".join(_ALIGN[code] for code in codes) + "|"]
    for i, row in enumerate(rows):
        if isinstance(row, str) or not isinstance(row, Sequence | np.ndarray):
            raise ValueError(f"markdown_table: row {i} must be a sequence of cells, got "
                             f"{type(row).__name__}.")
        if len(row) != width:
            raise ValueError(f"markdown_table: row {i} has {len(row)} cells but there are "
                             f"{width} headers; give every row one cell per column.")
        lines.append(_row(row))
    return "\n".join(lines)


def show_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
               align: Sequence[str] | None = None) -> None:
    """Display a Markdown table in the notebook (``IPython.display.Markdown``).

    Args:
        rows: the table body, as for :func:`markdown_table`.
        headers: the column titles.
        align: one alignment code per column, as for :func:`markdown_table`.
    """
    from IPython.display import Markdown, display

    display(Markdown(markdown_table(rows, headers, align)))


def _builtin(value: Any) -> Any:
    """A NumPy scalar or 0-d array as the builtin value it holds; anything else unchanged."""
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"glue takes one value, got an array of shape {value.shape}; glue "
                             "each number under its own name, or a formatted string.")
        value = value[()]
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))  # NumPy prints the shortest digits that round-trip the type
    if isinstance(value, np.generic):
        return value.item()
    return value


def _cell(value: Any) -> str:
    """One table cell: text with ``|`` escaped and no line breaks."""
    text = str(value.item() if isinstance(value, np.generic) else value)
    return " ".join(text.replace("|", r"\|").splitlines())


def _row(cells: Sequence[Any]) -> str:
    """One table line."""
    return "| " + " | ".join(_cell(c) for c in cells) + " |"
