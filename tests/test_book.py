"""helpers.book: glue with NumPy scalars and without myst_nb, and Markdown tables that render."""

import sys
import types

import IPython.core.formatters
import numpy as np
import pytest
from markdown_it import MarkdownIt

from helpers import book


@pytest.fixture
def glued(monkeypatch):
    """A stand-in myst_nb that records every glue call as (name, value, display)."""
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, variable, display=True: calls.append((name, variable, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    return calls


def test_glue_converts_numpy_scalars_to_builtins_and_never_displays(glued):
    assert book.glue("f64", np.float64(0.25)) == 0.25
    book.glue("f32", np.float32(0.1))
    book.glue("i64", np.int64(3))
    book.glue("flag", np.bool_(True))
    book.glue("zero_d", np.array(2.5))
    book.glue("text", "kept")
    values = {name: value for name, value, _ in glued}
    assert all(display is False for _, _, display in glued)
    assert type(values["f64"]) is float and values["f64"] == 0.25
    # The float32 nearest 0.1 is 0.10000000149...; glued as the 0.1 that NumPy prints.
    assert type(values["f32"]) is float and repr(values["f32"]) == "0.1"
    assert type(values["i64"]) is int and values["i64"] == 3
    assert values["flag"] is True
    assert type(values["zero_d"]) is float and values["zero_d"] == 2.5
    assert values["text"] == "kept"


def test_glue_formats_on_request(glued):
    assert book.glue("acc", np.float32(0.91234), fmt=".1%") == "91.2%"
    assert book.glue("runs", np.int64(12345), fmt=",") == "12,345"
    assert glued == [("acc", "91.2%", False), ("runs", "12,345", False)]


def test_glue_runs_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes `import myst_nb` fail
    with pytest.raises(ImportError):
        __import__("myst_nb")
    value = book.glue("slope", np.float64(1.5))
    assert value == 1.5 and type(value) is float
    assert book.glue("slope", 1.5, fmt=".2f") == "1.50"


def test_glue_stores_the_builtin_text_with_the_real_myst_nb(monkeypatch):
    pytest.importorskip("myst_nb")
    seen = []
    original = IPython.core.formatters.format_display_data

    def recording(obj, *args, **kwargs):
        bundle = original(obj, *args, **kwargs)
        seen.append((obj, bundle[0]["text/plain"]))
        return bundle

    monkeypatch.setattr(IPython.core.formatters, "format_display_data", recording)
    book.glue("half", np.float64(0.5))
    book.glue("count", np.int64(7))
    # Without the conversion myst_nb stores "np.float64(0.5)", which {glue:text} cannot format.
    assert [text for _, text in seen] == ["0.5", "7"]
    assert [type(obj) for obj, _ in seen] == [float, int]


@pytest.mark.parametrize(("name", "value", "fmt", "message"), [
    ("two words", 1.0, None, "without spaces"),
    ("a:b", 1.0, None, "colons"),
    ("", 1.0, None, "name"),
    ("x", np.arange(3.0), None, "shape"),
    ("x", "text", ".2f", "cannot format"),
    ("x", 1.0, 2, "format spec"),
])
def test_glue_rejects_bad_input_with_a_readable_error(glued, name, value, fmt, message):
    with pytest.raises(ValueError, match=message):
        book.glue(name, value, fmt=fmt)
    assert glued == []


def _cells(html: str) -> list[str]:
    """The text of every body cell of a rendered table."""
    body = html.split("<tbody>")[1]
    return [part.split(">", 1)[1].split("</td>")[0] for part in body.split("<td")[1:]]


def test_markdown_table_escapes_pipes_and_renders_one_cell_per_column():
    rows = [["a | b", np.float64(0.5), "line\nbreak"], ["`x|y`", np.int64(3), "plain"]]
    text = book.markdown_table(rows, ["name", "value", "note"], align="lrc")
    lines = text.splitlines()
    assert lines[0] == "| name | value | note |"
    assert lines[1] == "|:---|---:|:---:|"
    assert lines[2] == r"| a \| b | 0.5 | line break |"
    assert len(lines) == 4
    html = MarkdownIt("commonmark").enable("table").render(text)
    # Unescaped, the pipes would add cells to both rows (and break the second row's code).
    assert _cells(html) == ["a | b", "0.5", "line break", "<code>x|y</code>", "3", "plain"]
    assert 'style="text-align:right"' in html and 'style="text-align:center"' in html


def test_markdown_table_without_align_uses_default_columns():
    text = book.markdown_table([(1, 2)], ("a", "b"))
    assert text.splitlines()[1] == "|---|---|"


@pytest.mark.parametrize(("rows", "headers", "align", "message"), [
    ([[1, 2, 3]], ["a", "b"], None, "row 0 has 3 cells"),
    ([[1, 2], [3]], ["a", "b"], None, "row 1 has 1 cells"),
    (["ab"], ["a", "b"], None, "sequence of cells"),
    ([[1, 2]], [], None, "at least one header"),
    ([[1, 2]], ["a", "b"], "l", "one of 'l'"),
    ([[1, 2]], ["a", "b"], "lx", "one of 'l'"),
])
def test_markdown_table_rejects_bad_input(rows, headers, align, message):
    with pytest.raises(ValueError, match=message):
        book.markdown_table(rows, headers, align)


def test_show_table_displays_the_markdown(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    rows, headers = [["x | y", 1]], ["name", "n"]
    assert book.show_table(rows, headers, align="lr") is None
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Markdown)
    assert shown[0].data == book.markdown_table(rows, headers, align="lr")
